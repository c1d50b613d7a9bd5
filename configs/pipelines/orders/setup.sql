-- Idempotent schema for the orders pipeline; runs in its own transaction before every run.
-- Layers: bronze (raw lines), silver (clean, deduplicated), gold (marts); ref holds the lookup files and
-- work the parsing view. The file ledger (meta.files, meta.file_seen) is created by the engine, and the
-- tables of the declared steps (silver.orders_valid, silver.orders_rejected, silver.orders,
-- silver.orders_superseded) by the steps themselves, shaped like work.orders_parsed.
CREATE SCHEMA IF NOT EXISTS meta;
CREATE SCHEMA IF NOT EXISTS ref;
CREATE SCHEMA IF NOT EXISTS bronze;
CREATE SCHEMA IF NOT EXISTS work;
CREATE SCHEMA IF NOT EXISTS silver;
CREATE SCHEMA IF NOT EXISTS gold;

CREATE TABLE IF NOT EXISTS meta.run_reports (
    run_id VARCHAR NOT NULL,
    pipeline VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    report JSON NOT NULL
);

CREATE TABLE IF NOT EXISTS ref.products (product_id VARCHAR, product_key VARCHAR, name VARCHAR, category VARCHAR);
CREATE TABLE IF NOT EXISTS ref.countries (country_code VARCHAR, name VARCHAR);
CREATE TABLE IF NOT EXISTS ref.fx_rates (currency VARCHAR, rate_to_usd DECIMAL(18, 8));

-- Bronze: every line of every file, as text: its fields, or, when it could not be split into fields,
-- the whole line in _raw_line with the reason in _parse_error (the ingest step appends to it).
CREATE TABLE IF NOT EXISTS bronze.orders_raw (
    _row_id BIGINT NOT NULL,
    _batch_id VARCHAR NOT NULL,
    _source_file VARCHAR NOT NULL,
    _source_sha256 VARCHAR NOT NULL,
    _source_line BIGINT NOT NULL,
    _ingested_at TIMESTAMPTZ NOT NULL,
    _raw_line VARCHAR,
    _parse_error VARCHAR,
    order_id VARCHAR, customer_id VARCHAR, order_ts VARCHAR, product_id VARCHAR, quantity VARCHAR,
    unit_price VARCHAR, currency VARCHAR, country VARCHAR, status VARCHAR, updated_at VARCHAR
);

-- The parsing rules: each bronze line as typed, normalized values, NULL where the text is not acceptable;
-- validate's quality rules then only ask "is it there, is it known". Values are trimmed; codes compare
-- case-insensitively (currency, country upper, status lower); timestamps are ISO-8601 extended date-times
-- 'YYYY-MM-DD[T ]HH:MM[:SS[.ffffff]][Z|+HH[:MM]]' (no offset means UTC; impossible dates such as 2024-02-30
-- are NULL); quantity is digits only; unit_price digits with an optional fraction of up to 6 decimals.
-- product_id is spelled as in products.csv and rate_to_usd is the rate of the currency, both from the
-- reference data of the run that validates the row (it is copied with the row, so it stays).
-- amount_usd is exact: quantity x unit_price x rate, no rounding before gold.
CREATE OR REPLACE MACRO work.iso_ts(x) AS CASE
    WHEN regexp_full_match(trim(x), '\d{4}-\d{2}-\d{2}[T ](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,6})?)?(?:Z|[+-](?:[01]\d|2[0-3])(?::?[0-5]\d)?)?')
    THEN try_cast(trim(x) AS TIMESTAMPTZ) END;
CREATE OR REPLACE VIEW work.orders_parsed AS
SELECT order_id, customer_id, order_ts, product_id, quantity, unit_price, currency, country, status, updated_at,
       rate_to_usd,
       CAST(CAST(quantity AS DECIMAL(38, 6)) * CAST(unit_price AS DECIMAL(38, 6)) AS DECIMAL(38, 6))
           * CAST(rate_to_usd AS DECIMAL(38, 8)) AS amount_usd,
       _row_id, _batch_id, _source_file, _source_line, product_key, _raw_line, _parse_error
FROM (
    SELECT nullif(trim(b.order_id), '') AS order_id,
           nullif(trim(b.customer_id), '') AS customer_id,
           work.iso_ts(b.order_ts) AS order_ts,
           p.product_id,
           CASE WHEN regexp_full_match(trim(b.quantity), '[0-9]{1,9}')
                THEN try_cast(trim(b.quantity) AS INTEGER) END AS quantity,
           CASE WHEN regexp_full_match(trim(b.unit_price), '[0-9]{1,12}(?:\.[0-9]{1,6})?')
                THEN try_cast(trim(b.unit_price) AS DECIMAL(18, 6)) END AS unit_price,
           nullif(upper(trim(b.currency)), '') AS currency,
           nullif(upper(trim(b.country)), '') AS country,
           lower(trim(b.status)) AS status,
           work.iso_ts(b.updated_at) AS updated_at,
           fx.rate_to_usd,
           b._row_id, b._batch_id, b._source_file, b._source_line,
           nullif(upper(trim(b.product_id)), '') AS product_key, b._raw_line, b._parse_error
    FROM bronze.orders_raw b
    LEFT JOIN ref.products p ON p.product_key = upper(trim(b.product_id))
    LEFT JOIN ref.fx_rates fx ON fx.currency = upper(trim(b.currency))
);

-- The quarantine as an operator reads it: each rejected row with its reasons and its text as it arrived.
CREATE TABLE IF NOT EXISTS silver.orders_quarantine (
    _row_id BIGINT NOT NULL, _source_file VARCHAR, _source_line BIGINT, reasons VARCHAR[] NOT NULL,
    _raw_line VARCHAR, _parse_error VARCHAR,
    order_id VARCHAR, customer_id VARCHAR, order_ts VARCHAR, product_id VARCHAR, quantity VARCHAR,
    unit_price VARCHAR, currency VARCHAR, country VARCHAR, status VARCHAR, updated_at VARCHAR,
    quarantined_run VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS gold.daily_revenue (day DATE, country VARCHAR, orders BIGINT, revenue_usd DECIMAL(18, 2));
CREATE TABLE IF NOT EXISTS gold.product_sales (product_id VARCHAR, category VARCHAR, units BIGINT, revenue_usd DECIMAL(18, 2));
CREATE TABLE IF NOT EXISTS gold.customer_ltv (
    customer_id VARCHAR, orders BIGINT, revenue_usd DECIMAL(18, 2),
    first_order_ts TIMESTAMPTZ, last_order_ts TIMESTAMPTZ
);
