-- deduplicate: per order_id keep the version with the latest updated_at; a tie goes to the one ingested
-- later (larger _row_id: files are ingested in name order, lines in file order). The valid rows of the
-- quarantined batches compete with winners already waiting for standardize (valid rows of decided
-- batches not superseded: pending) and with the current row in silver.orders. Only the losers are
-- written (silver.orders_superseded); the batch is then marked decided and standardize moves the winners.
-- order_id and updated_at are recomputed from bronze with the macros validate checked them with.
CREATE TEMP TABLE _new AS
SELECT b._row_id, work.id_val(b.order_id) AS order_id, work.ts_val(b.updated_at) AS updated_at
FROM work.valid_rows v JOIN bronze.orders_raw b ON b._row_id = v._row_id
WHERE v.stage = 'quarantined';

CREATE TEMP TABLE _ranked AS
SELECT *, row_number() OVER (PARTITION BY order_id ORDER BY updated_at DESC, _row_id DESC) AS rn
FROM (
    SELECT order_id, _row_id, updated_at, 'new' AS src FROM _new
    UNION ALL
    SELECT * FROM (
        SELECT work.id_val(b.order_id) AS order_id, b._row_id, work.ts_val(b.updated_at) AS updated_at, 'pending'
        FROM work.valid_rows v JOIN bronze.orders_raw b ON b._row_id = v._row_id
        WHERE v.stage = 'decided' AND v._row_id NOT IN (SELECT _row_id FROM silver.orders_superseded)
    ) WHERE order_id IN (SELECT order_id FROM _new)
    UNION ALL
    SELECT s.order_id, s._row_id, s.updated_at, 'current' FROM silver.orders s
    WHERE s.order_id IN (SELECT order_id FROM _new)
);

INSERT INTO silver.orders_superseded
SELECT r._row_id, r.order_id, r.updated_at, w._row_id, r.src, getvariable('run_id')
FROM _ranked r JOIN _ranked w ON w.order_id = r.order_id AND w.rn = 1
WHERE r.rn > 1;

UPDATE work.batches SET stage = 'decided' WHERE stage = 'quarantined';

SELECT
    (SELECT count(*) FROM _new) AS rows_in,
    count(*) FILTER (WHERE src = 'new' AND rn = 1) AS rows_out,
    count(*) FILTER (WHERE src = 'new' AND rn = 1) AS kept,
    count(*) FILTER (WHERE src = 'new' AND rn > 1) AS superseded,
    count(*) FILTER (WHERE src = 'current' AND rn > 1) AS updated
FROM _ranked;
