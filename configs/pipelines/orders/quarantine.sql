-- quarantine: rejected rows go to silver.orders_rejected with every reason that applies.
-- Rows re-validated by a replay replace their old quarantine entry (or leave it, when they now pass).
CREATE TEMP TABLE _rej AS SELECT * FROM work.validated WHERE NOT is_valid;
CREATE TEMP TABLE _released AS
SELECT _row_id FROM work.validated WHERE is_valid AND _row_id IN (SELECT _row_id FROM silver.orders_rejected);

DELETE FROM silver.orders_rejected WHERE _row_id IN (SELECT _row_id FROM work.validated);

INSERT INTO silver.orders_rejected
SELECT _row_id, _batch_id, _source_file, _source_line, _raw_line, reasons, _parse_error,
       raw_order_id, raw_customer_id, raw_order_ts, raw_product_id, raw_quantity, raw_unit_price, raw_currency,
       raw_country, raw_status, raw_updated_at, getvariable('run_id'), now()
FROM _rej;

DELETE FROM work.validated WHERE NOT is_valid;

SELECT
    (SELECT count(*) FROM _rej) AS rows_in,
    (SELECT count(*) FROM silver.orders_rejected WHERE rejected_run = getvariable('run_id')
        AND _row_id IN (SELECT _row_id FROM _rej)) AS rows_out,
    (SELECT count(*) FROM _released) AS released;
