-- validate: parse and check every bronze row not validated yet (and, in replay mode, every quarantined row).
-- Rules (values trimmed first, codes compared case-insensitively); the parsing macros are in setup.sql:
--   order_id / customer_id / product_id not empty; product_id in products
--   order_ts / updated_at: ISO-8601 extended date-time 'YYYY-MM-DD[T ]HH:MM[:SS[.ffffff]][Z|+HH[:MM]]',
--                          no offset means UTC; impossible dates (2024-02-30) are rejected
--   quantity: digits only, integer > 0; unit_price: digits with an optional '.fraction' (>= 0, <= 6 decimals)
--   currency in fx_rates; country in countries; status in placed, paid, shipped, cancelled, refunded
-- A line that could not be parsed gets the single reason malformed_line (its fields do not exist).
-- Only the decision is written (work.batches, work.verdicts): the values stay in bronze (append-only).

-- Reference data is reloaded from the reference folder on every run, so a fix there takes effect (replay).
CREATE OR REPLACE TABLE ref.products AS
SELECT trim(product_id) AS product_id, upper(trim(product_id)) AS product_key, trim(name) AS name, trim(category) AS category
FROM read_csv(getvariable('reference_dir') || '/products.csv', header = true, all_varchar = true)
WHERE coalesce(trim(product_id), '') <> ''
QUALIFY row_number() OVER (PARTITION BY upper(trim(product_id)) ORDER BY product_id) = 1;

CREATE OR REPLACE TABLE ref.countries AS
SELECT upper(trim(country_code)) AS country_code, trim(name) AS name
FROM read_csv(getvariable('reference_dir') || '/countries.csv', header = true, all_varchar = true)
WHERE coalesce(trim(country_code), '') <> ''
QUALIFY row_number() OVER (PARTITION BY upper(trim(country_code)) ORDER BY name) = 1;

CREATE OR REPLACE TABLE ref.fx_rates AS
SELECT upper(trim(currency)) AS currency, try_cast(trim(rate_to_usd) AS DECIMAL(18, 8)) AS rate_to_usd
FROM read_csv(getvariable('reference_dir') || '/fx_rates.csv', header = true, all_varchar = true)
WHERE coalesce(trim(currency), '') <> '' AND try_cast(trim(rate_to_usd) AS DECIMAL(18, 8)) > 0
QUALIFY row_number() OVER (PARTITION BY upper(trim(currency)) ORDER BY rate_to_usd) = 1;

-- The slice to validate: bronze rows after the watermark (fixed now, so rows_in is counted on its own),
-- plus, in replay mode, the quarantined rows not already waiting in the queue.
SET VARIABLE v_from = (SELECT last_row_id FROM meta.watermarks WHERE step = 'validate');
SET VARIABLE v_to = (SELECT coalesce(max(_row_id), 0) FROM bronze.orders_raw);
CREATE TEMP TABLE _replay AS
SELECT _row_id FROM silver.orders_rejected
WHERE getvariable('mode') = 'replay' AND _row_id <= getvariable('v_from')
  AND _row_id NOT IN (SELECT _row_id FROM work.verdicts);
SET VARIABLE v_rows_in = (SELECT count(*) FROM bronze.orders_raw
                          WHERE _row_id > getvariable('v_from') AND _row_id <= getvariable('v_to'))
                         + (SELECT count(*) FROM _replay);

-- Every verdict, in memory; only rejections (and replayed rows) are written to the queue.
CREATE TEMP TABLE _v AS
SELECT _row_id, ok, reasons, replayed
FROM (
    SELECT *, len(reasons) = 0 AS ok
    FROM (
        SELECT *,
            CASE WHEN _parse_error IS NOT NULL THEN ['malformed_line']
            ELSE list_filter([
                CASE WHEN v_order_id IS NULL THEN 'missing_order_id' END,
                CASE WHEN v_customer_id IS NULL THEN 'missing_customer_id' END,
                CASE WHEN v_product_id IS NULL THEN 'missing_product_id' END,
                CASE WHEN v_product_id IS NOT NULL AND ref_product_id IS NULL THEN 'unknown_product' END,
                CASE WHEN v_order_ts IS NULL THEN 'invalid_order_ts' END,
                CASE WHEN v_updated_at IS NULL THEN 'invalid_updated_at' END,
                CASE WHEN v_quantity IS NULL OR v_quantity <= 0 THEN 'invalid_quantity' END,
                CASE WHEN v_unit_price IS NULL THEN 'invalid_unit_price' END,
                CASE WHEN ref_rate IS NULL THEN 'unknown_currency' END,
                CASE WHEN ref_country IS NULL THEN 'unknown_country' END,
                CASE WHEN v_status IS NULL OR v_status NOT IN ('placed', 'paid', 'shipped', 'cancelled', 'refunded')
                     THEN 'invalid_status' END
            ], lambda x: x IS NOT NULL) END AS reasons
        FROM (
            SELECT
                i._row_id, i._parse_error, i.replayed,
                work.id_val(i.order_id) AS v_order_id,
                work.id_val(i.customer_id) AS v_customer_id,
                work.id_val(i.product_id) AS v_product_id,
                CASE WHEN work.ts_ok(i.order_ts) THEN work.ts_val(i.order_ts) END AS v_order_ts,
                CASE WHEN work.ts_ok(i.updated_at) THEN work.ts_val(i.updated_at) END AS v_updated_at,
                CASE WHEN work.qty_ok(i.quantity) THEN work.qty_val(i.quantity) END AS v_quantity,
                CASE WHEN work.price_ok(i.unit_price) THEN work.price_val(i.unit_price) END AS v_unit_price,
                work.status_val(i.status) AS v_status,
                p.product_id AS ref_product_id,
                fx.rate_to_usd AS ref_rate,
                c.country_code AS ref_country
            FROM (
                SELECT *, false AS replayed FROM bronze.orders_raw
                WHERE _row_id > getvariable('v_from') AND _row_id <= getvariable('v_to')
                UNION ALL
                SELECT *, true FROM bronze.orders_raw WHERE _row_id IN (SELECT _row_id FROM _replay)
            ) i
            LEFT JOIN ref.products p ON p.product_key = work.code_val(i.product_id)
            LEFT JOIN ref.fx_rates fx ON fx.currency = work.code_val(i.currency)
            LEFT JOIN ref.countries c ON c.country_code = work.code_val(i.country)
        )
    )
);

INSERT INTO work.verdicts
SELECT _row_id, getvariable('run_id'), ok, reasons FROM _v WHERE NOT ok OR replayed;
INSERT INTO work.batches
SELECT getvariable('run_id'), getvariable('v_from'), getvariable('v_to'), 'validated' WHERE getvariable('v_rows_in') > 0;
INSERT INTO work.batch_products
SELECT getvariable('run_id'), product_key, product_id FROM ref.products WHERE getvariable('v_rows_in') > 0;
INSERT INTO work.batch_fx
SELECT getvariable('run_id'), currency, rate_to_usd FROM ref.fx_rates WHERE getvariable('v_rows_in') > 0;

UPDATE meta.watermarks SET last_row_id = greatest(last_row_id, getvariable('v_to')) WHERE step = 'validate';

SELECT
    getvariable('v_rows_in') AS rows_in,
    count(*) AS rows_out,
    count(*) FILTER (WHERE ok) AS valid,
    count(*) FILTER (WHERE NOT ok) AS rejected,
    count(*) FILTER (WHERE replayed) AS replayed
FROM _v;
