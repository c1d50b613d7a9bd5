-- quarantine: rejected rows of the validated batches go to silver.orders_rejected with every reason that
-- applies, their raw text read back from bronze. Rows re-validated by a replay replace their old quarantine
-- entry (or leave it, when they now pass). The verdicts stay queued (deduplicate and standardize skip the
-- rejected rows through them) until standardize closes the batch.
CREATE TEMP TABLE _batch AS SELECT batch_run FROM work.batches WHERE stage = 'validated';
CREATE TEMP TABLE _checked AS
SELECT _row_id, is_valid, reasons FROM work.verdicts WHERE batch_run IN (SELECT batch_run FROM _batch);
CREATE TEMP TABLE _rej AS SELECT _row_id, reasons FROM _checked WHERE NOT is_valid;
CREATE TEMP TABLE _released AS
SELECT _row_id FROM _checked WHERE is_valid AND _row_id IN (SELECT _row_id FROM silver.orders_rejected);

DELETE FROM silver.orders_rejected WHERE _row_id IN (SELECT _row_id FROM _checked);

INSERT INTO silver.orders_rejected
SELECT b._row_id, b._batch_id, b._source_file, b._source_line, b._raw_line, r.reasons, b._parse_error,
       b.order_id, b.customer_id, b.order_ts, b.product_id, b.quantity, b.unit_price, b.currency,
       b.country, b.status, b.updated_at, getvariable('run_id'), now()
FROM _rej r JOIN bronze.orders_raw b ON b._row_id = r._row_id
ORDER BY b._row_id;

UPDATE work.batches SET stage = 'quarantined' WHERE batch_run IN (SELECT batch_run FROM _batch);

SELECT
    (SELECT count(*) FROM _rej) AS rows_in,
    (SELECT count(*) FROM silver.orders_rejected WHERE rejected_run = getvariable('run_id')
        AND _row_id IN (SELECT _row_id FROM _rej)) AS rows_out,
    (SELECT count(*) FROM _released) AS released;
