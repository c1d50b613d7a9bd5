-- quarantine: the rejected rows as they arrived (their text from bronze, with every reason), for whoever
-- fixes the data. validate (kind: quality) decides and keeps silver.orders_rejected; this step keeps
-- silver.orders_quarantine in step with it: new rejections are added, rows a replay re-checked with other
-- reasons are replaced, and rows a replay released (they now pass) leave. Only changed rows are touched.
CREATE TEMP TABLE _released AS
SELECT _row_id FROM silver.orders_quarantine WHERE _row_id NOT IN (SELECT _row_id FROM silver.orders_rejected);
CREATE TEMP TABLE _changed AS
SELECT _row_id, reasons FROM silver.orders_rejected
EXCEPT
SELECT _row_id, reasons FROM silver.orders_quarantine;

DELETE FROM silver.orders_quarantine
WHERE _row_id IN (SELECT _row_id FROM _released UNION ALL SELECT _row_id FROM _changed);

INSERT INTO silver.orders_quarantine
SELECT b._row_id, b._source_file, b._source_line, c.reasons, b._raw_line, b._parse_error,
       b.order_id, b.customer_id, b.order_ts, b.product_id, b.quantity, b.unit_price, b.currency,
       b.country, b.status, b.updated_at, getvariable('run_id')
FROM _changed c JOIN bronze.orders_raw b ON b._row_id = c._row_id
ORDER BY b._row_id;

SELECT (SELECT count(*) FROM _changed) AS rows_in,
       (SELECT count(*) FROM silver.orders_quarantine WHERE quarantined_run = getvariable('run_id')) AS rows_out,
       (SELECT count(*) FROM _released) AS released;
