-- Idempotent schema for the orders pipeline; runs in its own transaction before every run.
-- Layers: bronze (raw lines), silver (clean, deduplicated), gold (marts); meta and work are bookkeeping.
CREATE SCHEMA IF NOT EXISTS meta;
CREATE SCHEMA IF NOT EXISTS ref;
CREATE SCHEMA IF NOT EXISTS bronze;
CREATE SCHEMA IF NOT EXISTS work;
CREATE SCHEMA IF NOT EXISTS silver;
CREATE SCHEMA IF NOT EXISTS gold;

-- The file ledger (meta.files, meta.file_seen) is created by the engine: see foss_supervisor/pipeline/ledger.py.
CREATE TABLE IF NOT EXISTS meta.watermarks (step VARCHAR NOT NULL, last_row_id BIGINT NOT NULL);
INSERT INTO meta.watermarks SELECT 'validate', 0 WHERE NOT EXISTS (SELECT 1 FROM meta.watermarks WHERE step = 'validate');
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
-- the whole line in _raw_line with the reason in _parse_error.
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

-- Parsing rules shared by validate (which checks them) and standardize (which recomputes the typed
-- values of the rows validate accepted from bronze, so only the verdict is written between the two).
-- *_ok says whether the text is acceptable; *_val is its typed value (meaningful only when *_ok).
CREATE OR REPLACE MACRO work.id_val(x) AS nullif(trim(x), '');
CREATE OR REPLACE MACRO work.code_val(x) AS upper(trim(x));
CREATE OR REPLACE MACRO work.status_val(x) AS lower(trim(x));
CREATE OR REPLACE MACRO work.ts_ok(x) AS regexp_full_match(trim(x),
    '\d{4}-\d{2}-\d{2}[T ](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,6})?)?(?:Z|[+-](?:[01]\d|2[0-3])(?::?[0-5]\d)?)?');
CREATE OR REPLACE MACRO work.ts_val(x) AS try_cast(trim(x) AS TIMESTAMPTZ);
CREATE OR REPLACE MACRO work.qty_ok(x) AS regexp_full_match(trim(x), '[0-9]{1,9}');
CREATE OR REPLACE MACRO work.qty_val(x) AS try_cast(trim(x) AS INTEGER);
CREATE OR REPLACE MACRO work.price_ok(x) AS regexp_full_match(trim(x), '[0-9]{1,12}(?:\.[0-9]{1,6})?');
CREATE OR REPLACE MACRO work.price_val(x) AS try_cast(trim(x) AS DECIMAL(18, 6));

-- Work queue between steps: each step consumes its input in the same transaction that writes its output,
-- so a step that is retried after a crash finds exactly the input it had. Only decisions are written, never
-- copies of the rows (bronze is append-only and keeps the values):
--   work.batches: one row per validate run: the bronze slice (from_row_id, to_row_id] it checked, and how
--     far the slice went: validated -> quarantined -> decided; standardize removes it.
--   work.verdicts: the rejected rows of a slice with their reasons, plus every row re-checked by a replay
--     (valid or not). A row of a slice without a verdict passed.
--   work.batch_products / work.batch_fx: the reference data a batch was validated with, so standardize
--     uses the same product spelling and rate even if the reference folder changed in between.
--   Superseded versions of a decided batch are in silver.orders_superseded; the rest are the winners.
CREATE TABLE IF NOT EXISTS work.batches (
    batch_run VARCHAR NOT NULL, from_row_id BIGINT NOT NULL, to_row_id BIGINT NOT NULL, stage VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS work.verdicts (
    _row_id BIGINT NOT NULL, batch_run VARCHAR NOT NULL, is_valid BOOLEAN NOT NULL, reasons VARCHAR[] NOT NULL
);
CREATE TABLE IF NOT EXISTS work.batch_products (batch_run VARCHAR NOT NULL, product_key VARCHAR, product_id VARCHAR);
CREATE TABLE IF NOT EXISTS work.batch_fx (batch_run VARCHAR NOT NULL, currency VARCHAR, rate_to_usd DECIMAL(18, 8));
-- The rows of the queue that passed validation, with their batch (range rows without a rejection, and
-- replayed rows that passed).
CREATE OR REPLACE VIEW work.valid_rows AS
SELECT r._row_id, bt.batch_run, bt.stage
FROM work.batches bt JOIN bronze.orders_raw r ON r._row_id > bt.from_row_id AND r._row_id <= bt.to_row_id
WHERE r._row_id NOT IN (SELECT _row_id FROM work.verdicts WHERE NOT is_valid)
UNION ALL
SELECT v._row_id, v.batch_run, bt.stage
FROM work.verdicts v JOIN work.batches bt ON bt.batch_run = v.batch_run
WHERE v.is_valid;

CREATE TABLE IF NOT EXISTS silver.orders_rejected (
    _row_id BIGINT NOT NULL, _batch_id VARCHAR, _source_file VARCHAR, _source_line BIGINT, _raw_line VARCHAR,
    reasons VARCHAR[] NOT NULL,
    parse_error VARCHAR,
    order_id VARCHAR, customer_id VARCHAR, order_ts VARCHAR, product_id VARCHAR, quantity VARCHAR,
    unit_price VARCHAR, currency VARCHAR, country VARCHAR, status VARCHAR, updated_at VARCHAR,
    rejected_run VARCHAR NOT NULL,
    rejected_at TIMESTAMPTZ NOT NULL
);
-- Versions that lost deduplication (to a later updated_at, or to a later ingestion on a tie).
CREATE TABLE IF NOT EXISTS silver.orders_superseded (
    _row_id BIGINT NOT NULL,
    order_id VARCHAR NOT NULL,
    updated_at TIMESTAMPTZ,
    superseded_by_row_id BIGINT NOT NULL,
    was VARCHAR NOT NULL,             -- new (lost on arrival) | pending | current (replaced in silver)
    superseded_run VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS silver.orders (
    order_id VARCHAR NOT NULL, customer_id VARCHAR NOT NULL, order_ts TIMESTAMPTZ NOT NULL,
    product_id VARCHAR NOT NULL, quantity INTEGER NOT NULL, unit_price DECIMAL(18, 6) NOT NULL,
    currency VARCHAR NOT NULL, country VARCHAR NOT NULL, status VARCHAR NOT NULL, updated_at TIMESTAMPTZ NOT NULL,
    rate_to_usd DECIMAL(18, 8) NOT NULL, amount_usd DECIMAL(38, 14) NOT NULL,
    _row_id BIGINT NOT NULL, _batch_id VARCHAR, _source_file VARCHAR, _source_line BIGINT, _run_id VARCHAR
);
CREATE TABLE IF NOT EXISTS silver.orders_enriched AS
    SELECT *, NULL::VARCHAR AS product_name, NULL::VARCHAR AS category, NULL::VARCHAR AS country_name
    FROM silver.orders WHERE false;

CREATE TABLE IF NOT EXISTS gold.daily_revenue (day DATE, country VARCHAR, orders BIGINT, revenue_usd DECIMAL(18, 2));
CREATE TABLE IF NOT EXISTS gold.product_sales (product_id VARCHAR, category VARCHAR, units BIGINT, revenue_usd DECIMAL(18, 2));
CREATE TABLE IF NOT EXISTS gold.customer_ltv (
    customer_id VARCHAR, orders BIGINT, revenue_usd DECIMAL(18, 2),
    first_order_ts TIMESTAMPTZ, last_order_ts TIMESTAMPTZ
);
