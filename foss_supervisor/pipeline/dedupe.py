# ruff: noqa: S608  (this module writes SQL: every identifier is checked against a strict pattern first)
"""Deduplication declared in YAML (``kind: deduplicate``), compiled to step SQL like quality rules.

::

    - name: dedupe
      kind: deduplicate
      depends_on: [check]
      params:
        source: trips_silver.trips_valid     # rows to merge: those whose row_id was never merged
        target: trips_silver.trips           # one row per key: the latest by order_by
        superseded: trips_silver.trips_superseded  # rows that lost (with was, superseded_by)
        key: [trip_id]                       # the business key
        order_by: [updated_at]               # latest wins; ties go to the row ingested last (row_id)
        row_id: _row_id                      # an increasing, unique column (default _row_id)

New rows compete with each other and with the target's current row of the same key; the winner is in the
target afterwards, every loser (new, or a current row replaced) goes to ``superseded`` with two more columns:
``was`` ('new': lost on arrival, or 'current': replaced) and ``superseded_by`` (the winner's row_id). A source
row is new when its row_id is in neither table, so rows a quality replay released later are merged too,
in their place by ordering (their row_id is older). Metrics: rows_in
(new rows), rows_out and kept (new rows that are now current), replaced (current rows that lost), superseded
(all losers); rows_in + replaced == kept + superseded. This module only writes SQL text (no DuckDB).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from foss_supervisor.pipeline.errors import PipelineConfigError
from foss_supervisor.pipeline.origins import mark

__all__ = ["compile_deduplicate"]

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_TABLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}\.[a-z_][a-z0-9_]{0,62}$")
_ORDER = re.compile(r"^([a-z_][a-z0-9_]{0,62})(?:\s+(asc|desc))?$", re.I)
_PARAMS = {"source", "target", "superseded", "key", "order_by", "row_id"}


def _columns(value: Any, file: str, key: str, pattern: re.Pattern[str]) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and pattern.match(v) for v in value):
        raise PipelineConfigError(file, key, "must be a column name or a non-empty list of them")
    return value


def compile_deduplicate(params: Mapping[str, Any], *, file: str, key: str) -> str:
    """The step SQL for ``params`` (see the module docstring); PipelineConfigError names the bad key."""
    unknown = sorted(set(params) - _PARAMS)
    if unknown:
        raise PipelineConfigError(file, f"{key}.{unknown[0]}", f"unknown key (allowed: {', '.join(sorted(_PARAMS))})")
    tables: dict[str, str] = {}
    for name in ("source", "target", "superseded"):
        value = params.get(name)
        if not isinstance(value, str) or not _TABLE.match(value):
            raise PipelineConfigError(file, f"{key}.{name}", "must be a lower-case schema.table name")
        tables[name] = value
    keys = _columns(params.get("key"), file, f"{key}.key", _IDENT)
    order = [
        f"{m[1]} {(m[2] or 'desc').upper()} NULLS LAST"
        for m in (
            _ORDER.match(o)
            for o in _columns(params.get("order_by", []) or ["_row_id"], file, f"{key}.order_by", _ORDER)
        )
        if m
    ]
    row_id = params.get("row_id", "_row_id")
    if not isinstance(row_id, str) or not _IDENT.match(row_id):
        raise PipelineConfigError(file, f"{key}.row_id", "must be a column name")
    src, target, lost = tables["source"], tables["target"], tables["superseded"]
    part = ", ".join(keys)
    # rows are ranked on these columns only (a window over whole rows moves every column through the sort)
    thin = ", ".join(dict.fromkeys([*keys, *(o.split()[0] for o in order), row_id]))
    seen = f"SELECT {row_id} FROM {target} UNION ALL SELECT {row_id} FROM {lost}"
    block = key.rpartition(".params")[0] or key
    order_cols = ", ".join(dict.fromkeys(o.split()[0] for o in order))
    # one probe per declaration first (no rows read): a table or column the source lacks fails in the probe of
    # the key that names it, so the error speaks of that key's YAML line (origins.py), not of the SQL below
    return f"""-- compiled from the deduplicate declaration of this step{mark(block, "deduplicate block")}
SELECT * FROM {src} LIMIT 0;{mark(f"{key}.source", "source table")}
SELECT {part} FROM {src} LIMIT 0;{mark(f"{key}.key", "key columns")}
SELECT {order_cols} FROM {src} LIMIT 0;{mark(f"{key}.order_by", "order_by columns")}
SELECT {row_id} FROM {src} LIMIT 0;{mark(f"{key}.row_id", "row_id column")}
CREATE TABLE IF NOT EXISTS {target} AS SELECT * FROM {src} WHERE false;{mark(f"{key}.target", "target table")}
CREATE TABLE IF NOT EXISTS {lost} AS{mark(f"{key}.superseded", "superseded table")}
SELECT *, NULL::VARCHAR AS was, NULL::BIGINT AS superseded_by FROM {src} WHERE false;
SELECT {thin} FROM {target} LIMIT 0;{mark(f"{key}.target", "target table")}
SELECT {row_id}, was, superseded_by FROM {lost} LIMIT 0;{mark(f"{key}.superseded", "superseded table")}
CREATE TEMP TABLE _new AS SELECT {thin} FROM {src} WHERE {row_id} NOT IN ({seen});
CREATE TEMP TABLE _ranked AS
SELECT {row_id}, _current, row_number() OVER w AS _rank, first_value({row_id}) OVER w AS _winner
FROM (SELECT {thin}, false AS _current FROM _new
      UNION ALL
      SELECT {thin}, true AS _current FROM {target} WHERE ({part}) IN (SELECT ({part}) FROM _new))
WINDOW w AS (PARTITION BY {part} ORDER BY {", ".join(order)}, {row_id} DESC);
INSERT INTO {lost} BY NAME
SELECT s.*, 'new' AS was, r._winner AS superseded_by
FROM {src} s JOIN _ranked r ON r.{row_id} = s.{row_id} WHERE r._rank > 1 AND NOT r._current
UNION ALL BY NAME
SELECT t.*, 'current' AS was, r._winner AS superseded_by
FROM {target} t JOIN _ranked r ON r.{row_id} = t.{row_id} WHERE r._rank > 1 AND r._current;
DELETE FROM {target} WHERE {row_id} IN (SELECT {row_id} FROM _ranked WHERE _current AND _rank > 1);
INSERT INTO {target} BY NAME
SELECT * FROM {src} WHERE {row_id} IN (SELECT {row_id} FROM _ranked WHERE _rank = 1 AND NOT _current);
SELECT (SELECT count(*) FROM _new) AS rows_in,
       count(*) FILTER (WHERE _rank = 1 AND NOT _current) AS rows_out,
       count(*) FILTER (WHERE _rank = 1 AND NOT _current) AS kept,
       count(*) FILTER (WHERE _rank > 1 AND _current) AS replaced,
       count(*) FILTER (WHERE _rank > 1) AS superseded
FROM _ranked;
"""
