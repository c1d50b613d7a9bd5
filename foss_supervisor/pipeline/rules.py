"""Rules a pipeline declaration follows beyond its shape: what it owns, what it reads, what it publishes.

- ownership: ``schemas`` (declared, or those its SQL creates with CREATE SCHEMA plus the ingest table's and
  the ledger's), ``ledger`` (default ``meta`` when owned, else ``<name>_meta``), ``inputs`` of other pipelines;
- isolation: two pipelines of one runner never own the same schema (check_isolation);
- landing ``patterns`` (the watcher and discover honour the same list);
- what it ``publish``es, each table's Hive partition columns, how many published runs are kept and in
  which format (Parquet run folders or Delta tables);
- the parameters of the shipped Python steps, checked at load time;
- the steps' dependency order (no cycles).

Stdlib only, like engine/spec.py: the daemon loads pipelines without DuckDB.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from foss_supervisor.config.gates import Gate, GateError
from foss_supervisor.config.schema import PIPELINE_SCHEMA
from foss_supervisor.pipeline.errors import PipelineConfigError, Problems

if TYPE_CHECKING:
    from foss_supervisor.pipeline.engine.spec import PipelineSpec, StepSpec

__all__ = [
    "DEFAULT_PATTERNS",
    "DEFAULT_PUBLISH_KEEP",
    "Published",
    "check_isolation",
    "check_shipped_params",
    "dependency_order",
    "gated",
    "load_access",
    "load_patterns",
    "load_publish",
    "schema_of",
]

T = TypeVar("T")


def gated(raw: Mapping[str, Any], key: str, gate: Gate[T], default: T, file: str, dotted: str = "") -> T:
    """``raw[key]`` through ``gate`` (``default`` when absent or null), or a PipelineConfigError at ``dotted``."""
    if key not in raw or raw[key] is None:
        return default
    try:
        return gate(raw[key])
    except GateError as exc:
        raise PipelineConfigError(file, (dotted or key) + exc.at, exc.reason) from None


def _leaf(key: str) -> Gate[Any]:
    gate = PIPELINE_SCHEMA[key]
    assert isinstance(gate, Gate)
    return gate


#: published runs kept on disk (the current one included) unless a pipeline declares ``publish_keep``
DEFAULT_PUBLISH_KEEP = 3


class Published(TypedDict):
    """What a pipeline publishes: the PipelineSpec fields of the same names."""

    publish: tuple[str, ...]
    publish_partition_by: tuple[tuple[str, tuple[str, ...]], ...]  # (schema.table, its partition columns)
    publish_keep: int
    publish_format: str  # "parquet" | "delta"


def load_publish(raw: Mapping[str, Any], schemas: frozenset[str], file: str) -> Published:
    """``publish``, ``publish_partition_by`` as (schema.table, columns) pairs, ``publish_keep`` and
    ``publish_format`` (``parquet``, the default, or ``delta``).

    Every published name is one of the pipeline's schemas or a table of one; every partition column names
    a published table (``schema.table.column``). Raises PipelineConfigError at the key (every bad key at once).
    """
    found = Problems()  # each key and each partition column told on its own (one does not hide another)
    publish = found.attempt(gated, raw, "publish", _leaf("publish"), (), file) or ()
    if not isinstance(raw.get("publish", []), list) or not all(p.split(".")[0] in schemas for p in publish):
        found.add(file, "publish", "must be a list of the pipeline's schemas or schema.table names")
    columns = found.attempt(gated, raw, "publish_partition_by", _leaf("publish_partition_by"), (), file) or ()
    partitions: dict[str, list[str]] = {}
    for i, dotted in enumerate(columns):
        table, _, column = dotted.rpartition(".")
        if table not in publish and table.split(".")[0] not in publish:
            found.add(file, f"publish_partition_by[{i}]", f"table {table!r} is not published (list it or its schema)")
        elif column in partitions.setdefault(table, []):
            found.add(file, f"publish_partition_by[{i}]", f"column {column!r} given twice")
        else:
            partitions[table].append(column)
    keep = found.attempt(gated, raw, "publish_keep", _leaf("publish_keep"), DEFAULT_PUBLISH_KEEP, file)
    fmt = found.attempt(gated, raw, "publish_format", _leaf("publish_format"), "parquet", file)
    found.raise_any()
    assert keep is not None and fmt is not None  # else found had their errors
    return Published(
        publish=tuple(publish),
        publish_partition_by=tuple((t, tuple(c)) for t, c in partitions.items()),
        publish_keep=keep,
        publish_format=fmt,
    )


#: landing files a pipeline reads unless it declares ``patterns`` (the watcher honours the same list)
DEFAULT_PATTERNS = ("*.csv", "*.jsonl", "*.ndjson", "*.parquet", "*.csv.gz", "*.jsonl.gz", "*.ndjson.gz")
_CREATE_SCHEMA_RE = re.compile(r"\bCREATE\s+SCHEMA\s+(?:IF\s+NOT\s+EXISTS\s+)?\"?([A-Za-z_][A-Za-z0-9_]*)", re.I)


def schema_of(table: Any) -> str | None:
    if isinstance(table, str) and table.count(".") == 1:
        return table.split(".", 1)[0].lower()
    return None


def load_access(
    raw: Mapping[str, Any], name: str, sql_texts: Sequence[str], steps: Sequence[StepSpec], file: str
) -> tuple[frozenset[str], frozenset[str], str]:
    """(owned schemas, declared inputs, ledger schema) as declared, or inferred when not declared."""

    def names(key: str) -> list[str]:
        value = raw.get(key)
        lowered = [v.lower() if isinstance(v, str) else v for v in value] if isinstance(value, list) else value
        return list(gated({key: lowered}, key, _gate(key), (), file))

    declared = names("schemas") if "schemas" in raw else None
    inputs = names("inputs")
    ledger_raw = gated(raw, "ledger", _gate("ledger"), None, file)
    if declared is not None:
        owned = set(declared)
    else:
        owned = {m.lower() for text in sql_texts for m in _CREATE_SCHEMA_RE.findall(text)}
        owned.update(s for step in steps if (s := schema_of(step.params.get("table"))) is not None)
    if ledger_raw is not None:
        ledger = ledger_raw
    elif "meta" in owned:
        ledger = "meta"
    else:
        ledger = re.sub(r"[^a-z0-9_]", "_", name.lower()) + "_meta"
    if declared is not None and ledger_raw is not None and ledger not in owned:
        raise PipelineConfigError(file, "ledger", f"schema {ledger!r} must be one of the pipeline's schemas")
    owned.add(ledger)
    for step in steps:
        schema = schema_of(step.params.get("table"))
        if schema is not None and schema not in owned:
            raise PipelineConfigError(
                file, f"steps.{step.name}.params.table", f"schema {schema!r} is not one of the pipeline's schemas"
            )
    clash = sorted(owned & {i.split(".", 1)[0] for i in inputs})
    if clash:
        raise PipelineConfigError(file, "inputs", f"{', '.join(clash)} already owned by this pipeline")
    return frozenset(owned), frozenset(inputs), ledger


def load_patterns(raw: Mapping[str, Any], steps: Sequence[StepSpec], file: str) -> tuple[str, ...]:
    """Landing file patterns: ``patterns``, else those of a discover step's params, else the defaults."""
    value: Any = raw.get("patterns")
    key = "patterns"
    if value is None:
        for step in steps:
            if "patterns" in step.params:
                value, key = step.params["patterns"], f"steps.{step.name}.params.patterns"
                break
    if value is None:
        return DEFAULT_PATTERNS
    if not isinstance(value, list) or not value:
        raise PipelineConfigError(file, key, "must be a non-empty list of file name patterns like '*.parquet'")
    return gated({"patterns": value}, "patterns", _gate("patterns"), (), file, key)


def _gate(key: str) -> Gate[Any]:
    gate = PIPELINE_SCHEMA[key]
    assert isinstance(gate, Gate)
    return gate


def check_isolation(specs: Iterable[PipelineSpec]) -> None:
    """Refuse two pipelines of one warehouse that own the same schema (their tables or ledgers would mix).

    Raises PipelineConfigError naming the later pipeline's file, the schema and the other pipeline.
    """
    owner: dict[str, PipelineSpec] = {}
    for spec in specs:
        for schema in sorted(spec.schemas):
            other = owner.setdefault(schema, spec)
            if other is not spec:
                raise PipelineConfigError(
                    str(spec.path),
                    "schemas",
                    f"schema {schema!r} is also owned by pipeline {other.name!r} ({other.path}); pipelines of one"
                    " warehouse cannot share a schema: give each its own, and list the other's tables under inputs",
                )


_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_TABLE = re.compile(r"[a-z_][a-z0-9_]{0,62}\.[a-z_][a-z0-9_]{0,62}")
#: the parameters of the shipped Python steps: name -> (required, check, what it must be)
_SHIPPED_PARAMS: dict[str, dict[str, tuple[bool, Any, str]]] = {
    "foss_supervisor.pipeline.worker.ledger:discover": {
        "patterns": (
            False,
            lambda v: isinstance(v, list) and v and all(isinstance(p, str) for p in v),
            "a non-empty list of file name patterns",
        ),
    },
    "foss_supervisor.pipeline.worker.ingest:ingest": {
        "table": (True, lambda v: isinstance(v, str) and _TABLE.fullmatch(v), "a lower-case schema.table name"),
        "columns": (
            True,
            lambda v: isinstance(v, list) and v and all(isinstance(c, str) and _IDENTIFIER.match(c) for c in v),
            "a non-empty list of lower-case column names",
        ),
    },
    "foss_supervisor.pipeline.worker.report:report": {
        "bronze": (False, lambda v: isinstance(v, str) and v.count(".") == 1, "a schema.table name"),
    },
}


def check_shipped_params(func: str, params: Mapping[str, Any], file: str, key: str) -> None:
    """The shipped steps' parameters are checked at load time, not found missing by a run."""
    known = _SHIPPED_PARAMS.get(func)
    if known is None:
        return
    for name in params:
        if name not in known:
            raise PipelineConfigError(file, f"{key}.{name}", f"unknown parameter (allowed: {', '.join(sorted(known))})")
    for name, (required, check, what) in known.items():
        if name not in params:
            if required:
                raise PipelineConfigError(file, key, f"{func.rsplit(':', 1)[-1]} needs params.{name}: {what}")
        elif not check(params[name]):
            raise PipelineConfigError(file, f"{key}.{name}", f"must be {what}")


def dependency_order(steps: Sequence[StepSpec], file: str) -> list[StepSpec]:
    """``steps`` in an order where each comes after what it depends on: Kahn's algorithm, stable in declaration
    order so the run order is predictable. Raises PipelineConfigError naming the steps of a cycle."""
    remaining = {s.name: set(s.depends_on) for s in steps}
    ordered: list[StepSpec] = []
    while remaining:
        ready = [s for s in steps if s.name in remaining and not remaining[s.name]]
        if not ready:
            cycle = ", ".join(sorted(remaining))
            raise PipelineConfigError(file, "steps", f"dependency cycle among: {cycle}")
        for s in ready:
            ordered.append(s)
            del remaining[s.name]
        for deps in remaining.values():
            deps.difference_update(s.name for s in ready)
    return ordered
