-- deduplicate: per order_id keep the version with the latest updated_at; a tie goes to the one ingested
-- later (larger _row_id: files are ingested in name order, lines in file order). New valid rows compete
-- with winners already waiting for standardize (pending) and with the current row in silver.orders.
-- Only the decision is written (narrow); standardize moves the winning rows into silver.
CREATE TEMP TABLE _new AS
SELECT _row_id, order_id, updated_at FROM work.validated
WHERE is_valid AND _row_id NOT IN (SELECT _row_id FROM work.dedup_decisions);

CREATE TEMP TABLE _ranked AS
SELECT *, row_number() OVER (PARTITION BY order_id ORDER BY updated_at DESC, _row_id DESC) AS rn
FROM (
    SELECT order_id, _row_id, updated_at, 'new' AS src FROM _new
    UNION ALL
    SELECT d.order_id, d._row_id, d.updated_at, 'pending' FROM work.dedup_decisions d
    WHERE d.winner AND d.order_id IN (SELECT order_id FROM _new)
    UNION ALL
    SELECT s.order_id, s._row_id, s.updated_at, 'current' FROM silver.orders s
    WHERE s.order_id IN (SELECT order_id FROM _new)
);

INSERT INTO silver.orders_superseded
SELECT r._row_id, r.order_id, r.updated_at, w._row_id, r.src, getvariable('run_id')
FROM _ranked r JOIN _ranked w ON w.order_id = r.order_id AND w.rn = 1
WHERE r.rn > 1;

UPDATE work.dedup_decisions SET winner = false
WHERE _row_id IN (SELECT _row_id FROM _ranked WHERE src = 'pending' AND rn > 1);

INSERT INTO work.dedup_decisions
SELECT _row_id, order_id, updated_at, rn = 1, getvariable('run_id') FROM _ranked WHERE src = 'new';

SELECT
    (SELECT count(*) FROM _new) AS rows_in,
    count(*) FILTER (WHERE src = 'new' AND rn = 1) AS rows_out,
    count(*) FILTER (WHERE src = 'new' AND rn = 1) AS kept,
    count(*) FILTER (WHERE src = 'new' AND rn > 1) AS superseded,
    count(*) FILTER (WHERE src = 'current' AND rn > 1) AS updated
FROM _ranked;
