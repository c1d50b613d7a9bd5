-- standardize: upsert the deduplication winners into silver.orders with amount_usd, then clear the
-- decided rows from the work queue. Codes were already normalised by validate (currency/country upper,
-- status lower, product_id as spelled in products.csv), timestamps are TIMESTAMPTZ in UTC. amount_usd is
-- exact (no rounding before gold).
CREATE TEMP TABLE _win AS SELECT _row_id, order_id FROM work.dedup_decisions WHERE winner;

DELETE FROM silver.orders WHERE order_id IN (SELECT order_id FROM _win);

INSERT INTO silver.orders
SELECT v.order_id, v.customer_id, v.order_ts, v.product_id, v.quantity, v.unit_price, v.currency, v.country,
       v.status, v.updated_at, v.rate_to_usd,
       CAST(CAST(v.quantity AS DECIMAL(38, 6)) * CAST(v.unit_price AS DECIMAL(38, 6)) AS DECIMAL(38, 6))
           * CAST(v.rate_to_usd AS DECIMAL(38, 8)) AS amount_usd,
       v._row_id, v._batch_id, v._source_file, v._source_line, getvariable('run_id')
FROM work.validated v SEMI JOIN _win w ON w._row_id = v._row_id;

SET VARIABLE s_rows_out = (SELECT count(*) FROM silver.orders WHERE _run_id = getvariable('run_id')
                           AND _row_id IN (SELECT _row_id FROM _win));
DELETE FROM work.validated WHERE _row_id IN (SELECT _row_id FROM work.dedup_decisions);
DELETE FROM work.dedup_decisions;

SELECT (SELECT count(*) FROM _win) AS rows_in, getvariable('s_rows_out') AS rows_out;
