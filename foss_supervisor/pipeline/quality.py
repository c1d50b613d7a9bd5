"""Declared quality rules, compiled to the SQL of a validate + quarantine step (``kind: quality``).

A step declares what to check and where rows go; the loader turns it into ordinary step SQL (so the
worker's sandbox, ``pipeline validate`` and the metrics contract apply unchanged)::

    - name: check
      kind: quality
      depends_on: [ingest]
      params:
        source: trips_bronze.trips_raw       # the rows to check: those whose key is above every key seen
        valid: trips_silver.trips_valid      # rows that pass every rule (the source's columns)
        rejected: trips_silver.trips_rejected  # rows that fail: the source's columns + reasons VARCHAR[]
        key: _row_id                         # an increasing column (default _row_id)
        columns:
          trip_id: [not_null, unique]
          payment_type: [{accepted_values: [card, cash]}]
          fare: [{accepted_range: {min_value: 0, max_value: 1000}}]
          pickup_zone: [{relationships: {to: trips_ref.zones, field: zone}}]
          pickup_at: [{pattern: '^\\d{4}-\\d{2}-\\d{2}'}]
        tests:                               # per row, a custom SQL predicate that must be true
          - {name: dropoff_after_pickup, expression: "dropoff_at >= pickup_at"}
        unparsed: {column: _parse_error, reason: malformed_line}  # optional, see below
        raw: trips_bronze.trips_raw          # optional: a rejected row keeps this table's row (_raw_values)

Rules, named as dbt tests read (dbt core and dbt_utils): ``not_null`` (NULL or blank text fails),
``unique`` (a value seen twice among the new rows, or already valid, fails; NULLs are not compared),
``accepted_values`` (compared as trimmed text), ``accepted_range`` (``min_value``/``max_value``,
``inclusive`` default true; non-numbers fail), ``pattern`` (regular expression, partial match),
``relationships`` (the value exists in ``to``'s ``field``), and ``tests`` (``expression`` per row; a row
where it is not true fails). NULLs pass every rule but not_null. A failing row gets one reason per failed
rule: ``column:rule`` (``trip_id:not_null``) or the test's name. A rule may name its reason, as dbt names a
test: ``{not_null: {name: missing_trip_id}}``, ``{accepted_values: {values: [a, b], name: bad_kind}}``,
``{relationships: {to: .., field: .., name: unknown_zone}}``; rules sharing a name give that reason once,
so "missing or not in the list" reads as one reason. Reasons keep the order the rules are declared in.
``unparsed``: a row whose ``column`` is not NULL (ingest's ``_parse_error``: a line that could not be split
into fields) gets the single reason ``reason`` and no rule is run on it (its fields do not exist).
Replay: in a run of mode ``replay`` the rows in ``rejected`` are checked again (the reference data may have
been fixed): each leaves ``rejected`` and goes to ``valid`` when it now passes, or back to ``rejected`` with
its new reasons. Metrics: rows_in (new and re-checked rows), rows_out and valid (passed), rejected,
replayed (re-checked), released (re-checked rows that now pass).
Thresholds (the step's ``thresholds``, ``severity``/``min_pass_rate``/``max_rejected`` of a rule or a test)
make a run warn or fail on what it checked: see thresholds.py; a rule or test with a threshold adds the
metric ``rejected.<reason>``.
This module only writes SQL text: no DuckDB here (the daemon loads specs).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from foss_supervisor.config import gates
from foss_supervisor.config.gates import YamlNumber
from foss_supervisor.pipeline.errors import PipelineConfigError, Problems
from foss_supervisor.pipeline.origins import mark
from foss_supervisor.pipeline.rules import gated
from foss_supervisor.pipeline.thresholds import THRESHOLD_KEYS, Threshold, failing_metric, parse_threshold

__all__ = ["RULES", "compile_quality"]

RULES = ("not_null", "unique", "accepted_values", "accepted_range", "pattern", "relationships")
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_TABLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}\.[a-z_][a-z0-9_]{0,62}$")
_PARAMS = {"source", "valid", "rejected", "key", "columns", "tests", "unparsed", "raw"}


def _lit(value: Any) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


_NUMBER = gates.number()
_REGEX = gates.regex()
_BOOL = gates.boolean()
_VALUE = gates.text(4096)


def _num(arg: Mapping[str, Any], name: str, file: str, key: str) -> str:
    """A finite bound as SQL: ``repr`` of a NaN or an infinity would be an unknown column at run time."""
    return repr(gated(arg, name, _NUMBER, 0, file, f"{key}.accepted_range.{name}"))


def _value(value: Any, file: str, key: str) -> str:
    """An accepted value as a SQL literal: text or a finite number (compared as trimmed text). A YAML number
    form that is not plain decimal is the text as written (``017`` stays ``017``), but not ``.nan``/``.inf``."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise PipelineConfigError(file, key, f"accepted values are text or numbers, got {gates.shown(value)}")
    reading = value.reading if isinstance(value, YamlNumber) else value
    if isinstance(reading, float) and not math.isfinite(reading):
        raise PipelineConfigError(
            file, key, f"accepted values are text or finite numbers, got {gates.shown(reading)} (quote it for text)"
        )
    if isinstance(value, str):
        return _lit(gated({"v": value}, "v", _VALUE, "", file, key))
    return _lit(gated({"v": value}, "v", _NUMBER, 0, file, key))


def _rule(col: str, raw: Any, file: str, key: str) -> tuple[str, str | None, Threshold | None]:
    """(reason, SQL condition that is TRUE when the row FAILS, the rule's own threshold); unique returns no
    condition (handled by a window)."""
    reason, failing, limit_raw = _rule_condition(col, raw, file, key)
    if limit_raw is None:
        return reason, failing, None
    return reason, failing, parse_threshold(limit_raw, reason, file, f"{key}.{next(iter(raw))}")


def _rule_condition(col: str, raw: Any, file: str, key: str) -> tuple[str, str | None, dict[str, Any] | None]:
    """(reason, failing condition, the threshold keys the rule's argument carried, if any)."""
    c = f"s.{col}"
    text = f"trim(CAST({c} AS VARCHAR))"
    name: Any = None
    arg: Any = None
    if isinstance(raw, str):
        name = raw
    elif isinstance(raw, dict) and len(raw) == 1:
        [(name, arg)] = raw.items()
    if name not in RULES:  # named as the author wrote it (a Python repr of a mapping read as noise)
        what = f"unknown rule {name!r}" if isinstance(name, str) else "a rule is a name or {name: argument}"
        raise PipelineConfigError(file, key, f"{what}: rules are {', '.join(RULES)} (a name, or {{name: argument}})")
    reason = f"{col}:{name}"
    limit: dict[str, Any] | None = None
    if isinstance(arg, dict) and ("name" in arg or THRESHOLD_KEYS & set(arg)):
        arg = dict(arg)
        limit = {k: arg.pop(k) for k in THRESHOLD_KEYS & set(arg)} or None
        if "name" in arg:
            reason = arg.pop("name")
            if not isinstance(reason, str) or not _IDENT.match(reason):
                raise PipelineConfigError(file, f"{key}.{name}.name", "a reason name is a lower-case identifier")
        if name == "accepted_values" and set(arg) == {"values"}:
            arg = arg["values"]
        elif name in ("not_null", "unique"):
            if arg:
                raise PipelineConfigError(
                    file, f"{key}.{name}", f"{name} takes only a name, severity, min_pass_rate and max_rejected"
                )
            arg = None
    if name == "not_null":
        # typeof() folds to a constant, so typed columns skip the text test (formatting a timestamp is costly)
        return reason, f"{c} IS NULL OR (typeof({c}) = 'VARCHAR' AND {text} = '')", limit
    if name == "unique":
        return reason, None, limit
    if name == "accepted_values":
        if not isinstance(arg, list) or not arg:
            raise PipelineConfigError(file, key, "accepted_values takes a non-empty list of values")
        return reason, f"{c} IS NOT NULL AND {text} NOT IN ({', '.join(_value(v, file, key) for v in arg)})", limit
    if name == "accepted_range":
        if not isinstance(arg, dict) or not ({"min_value", "max_value"} & set(arg)):
            raise PipelineConfigError(file, key, "accepted_range takes {min_value: n, max_value: n, inclusive: bool}")
        inclusive = gated(arg, "inclusive", _BOOL, True, file, f"{key}.accepted_range.inclusive")
        lo, hi = (">=", "<=") if inclusive else (">", "<")
        conds = []
        low = _num(arg, "min_value", file, key) if "min_value" in arg else None
        high = _num(arg, "max_value", file, key) if "max_value" in arg else None
        if (
            low is not None
            and high is not None
            and (float(low) > float(high) or (float(low) == float(high) and not inclusive))
        ):
            raise PipelineConfigError(
                file, f"{key}.accepted_range", f"min_value {low} must be below max_value {high}: no value passes"
            )
        if low is not None:
            conds.append(f"try_cast({c} AS DOUBLE) {lo} {low}")
        if high is not None:
            conds.append(f"try_cast({c} AS DOUBLE) {hi} {high}")
        return reason, f"{c} IS NOT NULL AND NOT coalesce({' AND '.join(conds)}, false)", limit
    if name == "pattern":
        if not isinstance(arg, str) or not arg:
            raise PipelineConfigError(file, key, "pattern takes a regular expression")
        arg = gated({"pattern": arg}, "pattern", _REGEX, "", file, key)
        return reason, f"{c} IS NOT NULL AND NOT regexp_matches(CAST({c} AS VARCHAR), {_lit(arg)})", limit
    # relationships
    if not isinstance(arg, dict) or not _TABLE.match(str(arg.get("to", ""))) or not _IDENT.match(str(arg.get("field"))):
        raise PipelineConfigError(file, key, "relationships takes {to: schema.table, field: column}")
    # NOT IN over the non-NULL keys: a hash anti-join, cheaper than a correlated NOT EXISTS
    keys = f"SELECT CAST({arg['field']} AS VARCHAR) FROM {arg['to']} WHERE {arg['field']} IS NOT NULL"  # noqa: S608
    return reason, f"{c} IS NOT NULL AND {text} NOT IN ({keys})", limit


_VOLATILE = "'_batch_id', '_ingested_at', '_source_sha256'"


def _quarantine(tables: Mapping[str, str], row_key: str, exclude: str, key: str) -> tuple[str, str]:
    """(DDL before, the INSERT of failing rows into ``rejected``). With ``raw`` (the bronze table a typed
    ``source`` view parses) each failing row keeps that table's row as it arrived, as JSON in ``_raw_values``:
    the text that failed (``"dep_delay": "abc"``), not the NULL the view made of it, and ingest's
    ``_raw_line``, ``_source_file`` and ``_source_line`` (not the columns that differ between two ingests
    of the same line: ``_batch_id``, ``_ingested_at``, ``_source_sha256``)."""
    rejected, raw = tables["rejected"], tables.get("raw")
    if raw is None:
        return "", f"INSERT INTO {rejected} BY NAME SELECT * {exclude} FROM _quality WHERE len(reasons) > 0;"  # noqa: S608
    at = mark(f"{key}.raw", "raw table")
    ddl = f"ALTER TABLE {rejected} ADD COLUMN IF NOT EXISTS _raw_values JSON;{at}\n"
    insert = f"""INSERT INTO {rejected} BY NAME
SELECT q.* {exclude}, CASE WHEN _raw_row.{row_key} IS NOT NULL THEN to_json(_raw_row) END AS _raw_values
FROM _quality q LEFT JOIN (SELECT COLUMNS(lambda c: c NOT IN ({_VOLATILE})) FROM {raw}) _raw_row{at}
     ON _raw_row.{row_key} = q.{row_key}{at}
WHERE len(q.reasons) > 0;"""  # noqa: S608 (identifiers checked by compile_quality)
    return ddl, insert


def _test(test: Any, file: str, tkey: str, limits: list[Threshold]) -> list[tuple[str, str, str]]:
    """A ``tests`` item as its (reason, failing condition, origin marker); its threshold appended to ``limits``."""
    if (
        not isinstance(test, dict)
        or not {"name", "expression"} <= set(test) <= {"name", "expression", *THRESHOLD_KEYS}
        or not _IDENT.match(str(test["name"]))
    ):
        raise PipelineConfigError(
            file, tkey, "a test is {name: lower_case_name, expression: SQL predicate} (and a threshold's keys)"
        )
    if ";" in str(test["expression"]):
        raise PipelineConfigError(file, f"{tkey}.expression", "one SQL expression, without ';'")
    if THRESHOLD_KEYS & set(test):
        limits.append(parse_threshold({k: test[k] for k in THRESHOLD_KEYS & set(test)}, test["name"], file, tkey))
    condition = f"NOT coalesce(({test['expression']}), false)"
    return [(str(test["name"]), condition, mark(f"{tkey}.expression", f"test {test['name']}"))]


def compile_quality(params: Mapping[str, Any], *, file: str, key: str) -> tuple[str, tuple[Threshold, ...]]:
    """The step SQL for ``params`` (see the module docstring) and the thresholds its rules and tests declare;
    PipelineConfigError names every bad key at once (each rule, test and table on its own; a mistake in one
    does not hide another's)."""
    found = Problems()
    for extra in sorted(set(params) - _PARAMS):
        found.add(file, f"{key}.{extra}", f"unknown key (allowed: {', '.join(sorted(_PARAMS))})")
    tables = {}
    for name in ("source", "valid", "rejected", "raw"):
        value = params.get(name)
        if name == "raw" and value is None:
            continue
        if not isinstance(value, str) or not _TABLE.match(value):
            found.add(file, f"{key}.{name}", "must be a lower-case schema.table name")
        tables[name] = str(value)
    row_key = params.get("key", "_row_id")
    if not isinstance(row_key, str) or not _IDENT.match(row_key):
        found.add(file, f"{key}.key", "must be a lower-case column name")
    columns = params.get("columns", {})
    tests = params.get("tests", [])
    if not isinstance(columns, dict) or not isinstance(tests, list) or not (columns or tests):
        found.add(file, f"{key}.columns", "declare rules per column (a mapping) and/or tests (a list)")
        columns, tests = (columns if isinstance(columns, dict) else {}), (tests if isinstance(tests, list) else [])
    checks: list[tuple[str, str, str]] = []  # (reason, failing condition, origin marker)
    unique: dict[str, str] = {}  # column -> the origin marker of its (first) unique rule
    limits: list[Threshold] = []
    for col, rules in columns.items():
        ckey = f"{key}.columns.{col}"
        if not _IDENT.match(str(col)) or col == "reasons":
            found.add(file, ckey, "column names are lower-case identifiers (not 'reasons')")
            continue
        if not isinstance(rules, list) or not rules:
            found.add(file, ckey, "must be a list of rules")
            continue
        for j, raw in enumerate(rules):
            compiled = found.attempt(_rule, col, raw, file, f"{ckey}[{j}]")  # at the rule item's own line
            if compiled is None:
                continue
            reason, failing, limit = compiled
            limits.extend([limit] if limit is not None else [])
            if failing is None:
                unique.setdefault(col, mark(f"{ckey}[{j}]", f"rule {reason}"))
                seen = f"SELECT CAST({col} AS VARCHAR) FROM {tables['valid']} WHERE {col} IS NOT NULL"  # noqa: S608
                failing = f"s.{col} IS NOT NULL AND (s._n_{col} > 1 OR CAST(s.{col} AS VARCHAR) IN ({seen}))"
            checks.append((reason, failing, mark(f"{ckey}[{j}]", f"rule {reason}")))
    for i, test in enumerate(tests):
        checks.extend(found.attempt(_test, test, file, f"{key}.tests[{i}]", limits) or [])
    unparsed = params.get("unparsed")
    if unparsed is not None and (
        not isinstance(unparsed, dict)
        or set(unparsed) != {"column", "reason"}
        or not all(isinstance(v, str) and _IDENT.match(v) for v in unparsed.values())
    ):
        found.add(file, f"{key}.unparsed", "is {column: column_name, reason: reason_name}")
    found.raise_any()
    row_key = str(row_key)  # a name: refused above otherwise
    grouped: dict[str, list[str]] = {}
    for reason, cond, origin in checks:  # rules sharing a reason give it once, where the first is declared
        grouped.setdefault(reason, []).append(f"({cond}){origin}\n")
    src, valid, rejected = tables["source"], tables["valid"], tables["rejected"]
    windows = "".join(f"\n        , count(*) OVER (PARTITION BY {c}) AS _n_{c}{at}" for c, at in unique.items())
    drop = ", ".join(f"_n_{c}" for c in unique)
    exclude_valid = f"EXCLUDE (reasons{', ' + drop if drop else ''})"
    exclude_rejected = f"EXCLUDE ({drop})" if drop else ""
    cases = ",\n".join(  # a condition per line, ended by its origin: its errors name the rule (origins.py)
        f"        CASE WHEN {'          OR '.join(conds)}          THEN {_lit(reason)} END"
        for reason, conds in grouped.items()
    )
    reasons = f"list_filter([\n{cases}\n    ], lambda r: r IS NOT NULL)"
    per_rule = "".join(  # the failing rows of each rule with a threshold, a metric of its own
        f',\n       count(*) FILTER (WHERE list_contains(reasons, {_lit(r)})) AS "{failing_metric(r)}"'
        for r in dict.fromkeys(t.reason for t in limits if t.reason is not None)
    )
    if unparsed is not None:
        where = mark(f"{key}.unparsed", "unparsed")
        unparsed_reason = _lit(unparsed["reason"])
        reasons = (
            f"CASE WHEN s.{unparsed['column']} IS NOT NULL{where}\n    THEN [{unparsed_reason}] ELSE {reasons} END"
        )
    block, at_rejected = key.rpartition(".params")[0] or key, mark(f"{key}.rejected", "rejected table")
    raw_column, insert_rejected = _quarantine(tables, row_key, exclude_rejected, key)
    sql = f"""-- compiled from the quality rules of this step{mark(block, "quality block")}
CREATE TABLE IF NOT EXISTS {valid} AS SELECT * FROM {src} WHERE false;{mark(f"{key}.valid", "valid table")}
CREATE TABLE IF NOT EXISTS {rejected} AS SELECT *, []::VARCHAR[] AS reasons FROM {src} WHERE false;{at_rejected}
{raw_column}SET VARIABLE q_from = (SELECT max({row_key}){mark(f"{key}.key", "key column")}
                       FROM (SELECT {row_key} FROM {valid} UNION ALL SELECT {row_key} FROM {rejected}));
CREATE TEMP TABLE _quality AS
SELECT s.*, {reasons} AS reasons
FROM (SELECT *{windows}
      FROM {src}{mark(f"{key}.source", "source table")}
      WHERE getvariable('q_from') IS NULL OR {row_key} > getvariable('q_from')
         OR (getvariable('mode') = 'replay' AND {row_key} IN (SELECT {row_key} FROM {rejected}))) s;
DELETE FROM {rejected} WHERE {row_key} IN (SELECT {row_key} FROM _quality);
INSERT INTO {valid} BY NAME SELECT * {exclude_valid} FROM _quality WHERE len(reasons) = 0;
{insert_rejected}
SELECT count(*) AS rows_in, count(*) FILTER (WHERE len(reasons) = 0) AS rows_out,
       count(*) FILTER (WHERE len(reasons) = 0) AS valid, count(*) FILTER (WHERE len(reasons) > 0) AS rejected,
       count(*) FILTER (WHERE {row_key} <= getvariable('q_from')) AS replayed,
       count(*) FILTER (WHERE {row_key} <= getvariable('q_from') AND len(reasons) = 0) AS released{per_rule}
FROM _quality;
"""  # noqa: S608 (identifiers checked above; values quoted by _lit)
    return sql, tuple(limits)
