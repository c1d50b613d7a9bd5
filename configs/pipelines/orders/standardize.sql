-- standardize: upsert the deduplication winners (valid rows of decided batches not superseded) into
-- silver.orders with amount_usd, then close those batches. The typed values are recomputed from bronze
-- with the macros validate checked them with (setup.sql): currency/country upper, status lower, timestamps
-- TIMESTAMPTZ in UTC; product_id (as spelled in products.csv) and the rate come from the reference data the
-- batch was validated with. amount_usd is exact (no rounding before gold).
CREATE TEMP TABLE _batch AS SELECT batch_run FROM work.batches WHERE stage = 'decided';
CREATE TEMP TABLE _win AS
SELECT _row_id, batch_run FROM work.valid_rows
WHERE stage = 'decided' AND _row_id NOT IN (SELECT _row_id FROM silver.orders_superseded);

DELETE FROM silver.orders
WHERE order_id IN (SELECT work.id_val(b.order_id) FROM bronze.orders_raw b SEMI JOIN _win w ON w._row_id = b._row_id);

INSERT INTO silver.orders
SELECT order_id, customer_id, order_ts, product_id, quantity, unit_price, currency, country, status, updated_at,
       rate_to_usd,
       CAST(CAST(quantity AS DECIMAL(38, 6)) * CAST(unit_price AS DECIMAL(38, 6)) AS DECIMAL(38, 6))
           * CAST(rate_to_usd AS DECIMAL(38, 8)) AS amount_usd,
       _row_id, _batch_id, _source_file, _source_line, getvariable('run_id')
FROM (
    SELECT work.id_val(b.order_id) AS order_id, work.id_val(b.customer_id) AS customer_id,
           work.ts_val(b.order_ts) AS order_ts, p.product_id, work.qty_val(b.quantity) AS quantity,
           work.price_val(b.unit_price) AS unit_price, work.code_val(b.currency) AS currency,
           work.code_val(b.country) AS country, work.status_val(b.status) AS status,
           work.ts_val(b.updated_at) AS updated_at, fx.rate_to_usd,
           b._row_id, b._batch_id, b._source_file, b._source_line
    FROM _win w
    JOIN bronze.orders_raw b ON b._row_id = w._row_id
    JOIN work.batch_products p ON p.batch_run = w.batch_run AND p.product_key = work.code_val(b.product_id)
    JOIN work.batch_fx fx ON fx.batch_run = w.batch_run AND fx.currency = work.code_val(b.currency)
);

SET VARIABLE s_rows_out = (SELECT count(*) FROM silver.orders WHERE _run_id = getvariable('run_id')
                           AND _row_id IN (SELECT _row_id FROM _win));
DELETE FROM work.verdicts WHERE batch_run IN (SELECT batch_run FROM _batch);
DELETE FROM work.batch_products WHERE batch_run IN (SELECT batch_run FROM _batch);
DELETE FROM work.batch_fx WHERE batch_run IN (SELECT batch_run FROM _batch);
DELETE FROM work.batches WHERE batch_run IN (SELECT batch_run FROM _batch);

SELECT (SELECT count(*) FROM _win) AS rows_in, getvariable('s_rows_out') AS rows_out;
