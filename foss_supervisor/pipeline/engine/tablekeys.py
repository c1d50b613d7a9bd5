"""The keys a pipeline declares for the tables its steps write (a step's ``keys``), like dbt's ``unique_key``::

    - name: enrich
      sql: orders/enrich.sql
      keys:
        silver.orders_enriched: [order_id]     # schema.table: the columns that identify one row

What a key is for: ``pipeline diff`` and the rollback preview pair the rows of two states of the table by it
(rows added, removed and changed per key, worker/diff.py) instead of comparing whole rows, and a run's snapshot
records whether the key repeats (``unique_key``, worker/snapshots.py). A declared key is a promise the engine
does not enforce on writes: a key that repeats in the data makes the diff compare that table as whole rows
and say so (``key_repeats``). A PRIMARY KEY or UNIQUE constraint of the table wins over a declared key.

The rules, checked when the pipeline loads (PipelineConfigError naming file, line, ``steps.<name>.keys...``
and the reason): ``keys`` is a mapping of ``schema.table`` (lower case, in a schema the pipeline owns, not its
ledger's, which no snapshot keeps) to a non-empty list of distinct column names (spelled as the table spells
them); a table is keyed once in a pipeline, by one step's ``keys`` or as a ``deduplicate`` step's ``target``
(whose ``key`` is its key). Whether the columns exist is for ``pipeline validate`` (worker/validate.py), which
builds the tables. Stdlib only, like spec.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from foss_supervisor.pipeline.errors import PipelineConfigError

if TYPE_CHECKING:
    from foss_supervisor.pipeline.engine.spec import StepSpec

__all__ = ["KEYS", "TableKeys", "check_table_keys", "load_step_keys"]

#: the step key
KEYS = "keys"
#: ``((schema.table, (column, ...)), ...)`` in declaration order
TableKeys = tuple[tuple[str, tuple[str, ...]], ...]

_TABLE = re.compile(r"[a-z_][a-z0-9_]{0,62}\.[a-z_][a-z0-9_]{0,62}")
_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
#: at most this many tables a step, columns a key
MAX_TABLES = 200
MAX_COLUMNS = 32


def load_step_keys(raw: Mapping[str, Any], file: str, key: str) -> TableKeys:
    """The shape of step ``raw``'s ``keys`` (absent or null: none). ``key`` is the step's dotted key
    (``steps[3]``). Raises PipelineConfigError at ``<key>.keys``, ``<key>.keys.<table>`` or
    ``<key>.keys.<table>[i]``."""
    value = raw.get(KEYS)
    at = f"{key}.{KEYS}"
    if value is None:
        return ()
    if not isinstance(value, dict) or not value:
        raise PipelineConfigError(file, at, "must be a mapping of schema.table to a list of its key columns")
    if len(value) > MAX_TABLES:
        raise PipelineConfigError(file, at, f"keys at most {MAX_TABLES} tables")
    out: list[tuple[str, tuple[str, ...]]] = []
    for table, columns in value.items():
        if not isinstance(table, str) or not _TABLE.fullmatch(table):
            raise PipelineConfigError(file, f"{at}.{table}", "must be a lower-case schema.table name")
        where = f"{at}.{table}"
        if not isinstance(columns, list) or not columns:
            raise PipelineConfigError(file, where, "must be a non-empty list of column names, e.g. [order_id]")
        if len(columns) > MAX_COLUMNS:
            raise PipelineConfigError(file, where, f"a key has at most {MAX_COLUMNS} columns")
        for i, column in enumerate(columns):
            if not isinstance(column, str) or not _COLUMN.fullmatch(column):
                raise PipelineConfigError(
                    file, f"{where}[{i}]", "must be a column name (a letter or '_', then letters, digits, '_')"
                )
            if column in columns[:i]:
                raise PipelineConfigError(file, f"{where}[{i}]", f"column {column!r} is given twice")
        out.append((table, tuple(columns)))
    return tuple(out)


def check_table_keys(steps: Sequence[StepSpec], schemas: frozenset[str], ledger: str, file: str) -> None:
    """Each step's ``keys`` (``steps`` in file order) against what the pipeline owns: a table in one of
    ``schemas`` but ``ledger``, keyed once (a ``deduplicate`` step's ``target`` is keyed by its ``key``).
    Raises PipelineConfigError at ``steps[i].keys.<table>``."""
    keyed = {
        str(s.params["target"]): f"deduplicate step {s.name!r} (its target's key)"
        for s in steps
        if s.kind == "deduplicate" and s.params.get("target")
    }
    for index, step in enumerate(steps):
        for table, _ in step.keys:
            at = f"steps[{index}].{KEYS}.{table}"
            schema = table.partition(".")[0]
            if schema == ledger:
                raise PipelineConfigError(file, at, f"is in the ledger schema {ledger!r}, which no snapshot keeps")
            if schema not in schemas:
                owned = ", ".join(sorted(schemas - {ledger}))
                raise PipelineConfigError(file, at, f"schema {schema!r} is not the pipeline's (it owns: {owned})")
            if table in keyed:
                raise PipelineConfigError(file, at, f"is keyed twice: also by {keyed[table]}")
            keyed[table] = f"step {step.name!r}"
