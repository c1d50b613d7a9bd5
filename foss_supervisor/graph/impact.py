"""Impact before a change: which steps' SQL a new config changes, what they rebuild, and what they would break.

Given the running pipelines and the new ones (their specs, and what the worker read of each one's SQL,
``PipelineService.lineage``'s ``scripts`` with their ``columns``), :func:`assess` says, per pipeline:

- ``changed_steps``: steps added, or whose SQL, Python callable or parameters changed (``setup_changed``:
  the setup SQL); ``removed_steps``;
- ``downstream_tables``: every table those steps write, and every table downstream of them in the new graph
  (a step reading one of them and what it writes, a view derived from one, a pipeline with one as its
  ``inputs:`` or running ``after:`` one of those pipelines), sorted.

And ``breaking``: each column a changed step wrote before and no longer writes (``dropped``) or writes with
another type (``retyped``; only when both types are derived, see :mod:`foss_supervisor.pipeline.worker.columns`),
that a step (or a pipeline's setup view) of the new config reads by name, or that a table's ``contract:``
declares (a retype breaks a contract that declares another type than the new one). A column of a table whose
new column list is incomplete (``*`` over an unknown table) is never called dropped: that is not known.

Pure data: no I/O, no DuckDB (the daemon never imports it).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from foss_supervisor.graph.model import Graph

if TYPE_CHECKING:
    from foss_supervisor.pipeline.engine.spec import PipelineSpec, StepSpec

__all__ = ["assess", "canonical_type", "changes", "contract_gaps", "refusal", "sql_meaning"]

#: type names DuckDB takes as synonyms, to the names it prints (``duckdb.sqltype(x)``)
_SYNONYMS = {
    "TEXT": "VARCHAR",
    "STRING": "VARCHAR",
    "CHAR": "VARCHAR",
    "BPCHAR": "VARCHAR",
    "NVARCHAR": "VARCHAR",
    "INT": "INTEGER",
    "INT4": "INTEGER",
    "SIGNED": "INTEGER",
    "INT8": "BIGINT",
    "LONG": "BIGINT",
    "INT2": "SMALLINT",
    "SHORT": "SMALLINT",
    "INT1": "TINYINT",
    "BOOL": "BOOLEAN",
    "LOGICAL": "BOOLEAN",
    "FLOAT4": "FLOAT",
    "REAL": "FLOAT",
    "FLOAT8": "DOUBLE",
    "DATETIME": "TIMESTAMP",
    "TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE",
    "NUMERIC": "DECIMAL",
    "BYTEA": "BLOB",
    "BINARY": "BLOB",
}
_TYPE = re.compile(r"([A-Z][A-Z0-9_ ]*?)\s*(\([0-9, ]*\))?((?:\[\])*)")


def canonical_type(written: str) -> str:
    """A DuckDB type name as DuckDB prints it (``text`` -> ``VARCHAR``, ``DECIMAL(18, 2)`` -> ``DECIMAL(18,2)``,
    ``NUMERIC`` -> ``DECIMAL(18,3)``), so a contract's type compares with a derived one."""
    text = " ".join(written.upper().split())
    m = _TYPE.fullmatch(text)
    if m is None:
        return text
    base, args, lists = m.group(1).strip(), (m.group(2) or "").replace(" ", ""), m.group(3)
    base = _SYNONYMS.get(base, base)
    if base == "DECIMAL" and not args:
        args = "(18,3)"
    return f"{base}{args}{lists}"


_SQL_PIECES = re.compile(
    r"""(?P<text>'(?:[^']|'')*'|"(?:[^"]|"")*")"""  # a string literal or a quoted name: kept as written
    r"|(?P<comment>--[^\n]*|/\*.*?\*/)"  # a comment (an origin marker is one): dropped
    r"|(?P<space>\s+)",  # a run of white space: one space
    re.S,
)


def sql_meaning(sql: str) -> str:
    """``sql`` without what does not change what it does: comments (origin markers among them, whose YAML line
    numbers move when a line is added above) and runs of white space outside literals. Two texts with the same
    meaning run the same statements; used to tell a changed step from an edited comment."""

    def piece(m: re.Match[str]) -> str:
        if m.group("text") is not None:
            return m.group("text")
        return "" if m.group("comment") is not None else " "

    once = _SQL_PIECES.sub(piece, sql)  # a comment between two spaces leaves three: a second pass makes one
    return _SQL_PIECES.sub(piece, once).strip()


def _definition(step: StepSpec) -> tuple[Any, ...]:
    """What a step does: an edited comment, or a line added above a generated block (its origin markers' line
    numbers move), is not a change."""
    return (step.kind.value, sql_meaning(step.sql or ""), step.callable, repr(sorted(step.params.items())))


def _written(scripts: Mapping[str, Any], key: str) -> dict[str, dict[str, Any]] | None:
    found = scripts.get(key)
    columns = found.get("columns") if isinstance(found, Mapping) else None
    writes = columns.get("writes") if isinstance(columns, Mapping) else None
    return dict(writes) if isinstance(writes, Mapping) else None


def _downstream(graph: Graph, starts: set[str]) -> list[str]:
    """Tables reached from ``starts`` along the way data flows (see the module's docstring)."""
    out: dict[str, list[str]] = {}
    for e in graph.edges:
        if e.kind in ("writes", "reads", "derives", "inputs", "after", "depends_on"):
            out.setdefault(e.source, []).append(e.target)
    steps_of: dict[str, list[str]] = {}
    for n in graph.nodes:
        if n.kind == "step" and n.pipeline:
            steps_of.setdefault(f"pipeline:{n.pipeline}", []).append(n.id)
    seen = set(starts)
    todo = deque(starts)
    while todo:
        node = todo.popleft()
        for nxt in out.get(node, []) + steps_of.get(node, []):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return sorted(n.removeprefix("table:") for n in seen if n.startswith("table:"))


def _readers(scripts: Mapping[str, Any], table: str, column: str, skip: str) -> list[str]:
    """``step:P/S`` (or ``setup:P``) of each script but ``skip`` that reads ``table.column`` by name."""
    found = []
    for key, script in scripts.items():
        columns = script.get("columns") if isinstance(script, Mapping) else None
        reads = columns.get("reads") if isinstance(columns, Mapping) else None
        entry = reads.get(table) if isinstance(reads, Mapping) else None
        if key != skip and isinstance(entry, Mapping) and column in (entry.get("columns") or ()):
            found.append(key)
    return sorted(found)


def _breaks(
    spec: PipelineSpec,
    step: StepSpec,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    contracts: Mapping[str, Mapping[str, str]],
) -> list[dict[str, Any]]:
    pipeline = spec.name
    key = f"step:{pipeline}/{step.name}"
    before, after = _written(old, key), _written(new, key)
    if before is None or after is None:
        return []
    out = []
    for table, was in sorted(before.items()):
        now = after.get(table)
        if not isinstance(now, Mapping):
            continue  # no longer written: the table stays as it is, not rebuilt
        now_types = {c["name"]: c.get("type") for c in now.get("columns") or ()}
        for col in was.get("columns") or ():
            name, old_type = col["name"], col.get("type")
            if name not in now_types:
                if now.get("unknown"):
                    continue  # the new list is incomplete: whether it is still there is not known
                change, new_type = "dropped", None
            elif old_type and now_types[name] and canonical_type(old_type) != canonical_type(str(now_types[name])):
                change, new_type = "retyped", now_types[name]
            else:
                continue
            consumers = [
                k.replace("step:", "step ").replace("setup:", "setup of ") for k in _readers(new, table, name, key)
            ]
            declared = (contracts.get(table) or {}).get(name)
            if declared is not None and (new_type is None or canonical_type(declared) != canonical_type(new_type)):
                consumers.append(f"contract tables.{table}.contract.{name} ({declared})")
            if consumers:
                out.append(
                    {
                        "file": str(step.sql_path or spec.path),  # a quality or deduplicate step: its YAML
                        "pipeline": pipeline,
                        "step": step.name,
                        "table": table,
                        "column": name,
                        "change": change,
                        "was": old_type,
                        "now": new_type,
                        "consumers": consumers,
                    }
                )
    return out


def changes(old_specs: Mapping[str, PipelineSpec], new_specs: Mapping[str, PipelineSpec]) -> dict[str, Any]:
    """Per pipeline of both with a change: ``{"changed_steps": [StepSpec], "removed_steps": [name], "setup_changed"}``
    (steps added, or whose kind, SQL, callable or parameters changed)."""
    out: dict[str, Any] = {}
    for name in sorted(old_specs.keys() & new_specs.keys()):
        old, new = old_specs[name], new_specs[name]
        before = {s.name: _definition(s) for s in old.steps}
        changed = [s for s in new.steps if before.get(s.name) != _definition(s)]
        removed = sorted(before.keys() - {s.name for s in new.steps})
        setup_changed = sql_meaning(old.setup_sql or "") != sql_meaning(new.setup_sql or "")
        if changed or removed or setup_changed:
            out[name] = {"changed_steps": changed, "removed_steps": removed, "setup_changed": setup_changed}
    return out


def assess(
    old_specs: Mapping[str, PipelineSpec],
    new_specs: Mapping[str, PipelineSpec],
    old_scripts: Mapping[str, Any],
    new_scripts: Mapping[str, Any],
    new_graph: Graph,
    contracts: Mapping[str, Mapping[str, str]],
) -> dict[str, Any]:
    """``{"pipelines": {NAME: {"changed_steps", "removed_steps", "setup_changed", "downstream_tables"}},
    "breaking": [{"file", "pipeline", "step", "table", "column", "change": "dropped" | "retyped", "was", "now",
    "consumers": [...]}]}``; only pipelines of both configs with a changed step or setup are listed (an added
    or removed pipeline is the reload plan's ``added``/``removed``)."""
    pipelines: dict[str, Any] = {}
    breaking: list[dict[str, Any]] = []
    for name, found in changes(old_specs, new_specs).items():
        starts = {f"step:{name}/{s.name}" for s in found["changed_steps"]}
        if found["setup_changed"]:  # what the setup makes (its views above all) and all that reads it
            starts |= {f"table:{t}" for t in _setup_tables(new_scripts, name)}
        pipelines[name] = {
            "changed_steps": [s.name for s in found["changed_steps"]],
            "removed_steps": found["removed_steps"],
            "setup_changed": found["setup_changed"],
            "downstream_tables": _downstream(new_graph, starts),
        }
        before = {s.name for s in old_specs[name].steps}
        for step in found["changed_steps"]:
            if step.name in before:
                breaking.extend(_breaks(new_specs[name], step, old_scripts, new_scripts, contracts))
    return {"pipelines": pipelines, "breaking": breaking}


def contract_gaps(scripts: Mapping[str, Any], contracts: Mapping[str, Mapping[str, str]]) -> list[dict[str, Any]]:
    """Each column of a ``contract:`` that the SQL making its table does not keep, as far as that is known:
    ``[{"table", "column", "declared", "found": type | None, "problem"}]``. A table no step writes (a program
    feeds it), a column list that is incomplete or a type that is not derived says nothing."""
    out = []
    for table, declared in sorted(contracts.items()):
        written: dict[str, str | None] = {}
        complete, by_step = True, False
        for key in scripts:
            entry = (_written(scripts, key) or {}).get(table)
            if not isinstance(entry, Mapping):
                continue
            by_step = by_step or key.startswith("step:")
            complete = complete and not entry.get("unknown")
            for col in entry.get("columns") or ():
                written[col["name"]] = written.get(col["name"]) or col.get("type")
        if not by_step:
            continue
        for column, ctype in sorted(declared.items()):
            found = written.get(column)
            if column not in written and complete:
                problem = "no step or setup of a pipeline writes it"
            elif found and canonical_type(found) != canonical_type(ctype):
                problem = f"the SQL makes it {found}"
            else:
                continue
            out.append({"table": table, "column": column, "declared": ctype, "found": found, "problem": problem})
    return out


def _setup_tables(scripts: Mapping[str, Any], pipeline: str) -> list[str]:
    """The views (and tables) a pipeline's setup makes from other tables."""
    return sorted((_written(scripts, f"setup:{pipeline}") or {}).keys())


def refusal(breaking: list[dict[str, Any]]) -> str:
    """The refusal of a change that breaks what reads it: each column with its file, step and consumers."""
    parts = []
    for b in breaking:
        what = "no longer produces" if b["change"] == "dropped" else f"changes the type ({b['was']} -> {b['now']}) of"
        where = f" ({b['file']})"
        parts.append(
            f"step {b['pipeline']}/{b['step']}{where} {what} {b['table']}.{b['column']}, "
            f"which {'; '.join(b['consumers'])} use{'s' if len(b['consumers']) == 1 else ''}"
        )
    return (
        "pipelines refused, the running ones stay: "
        + " and ".join(parts)
        + ": change those consumers (or the contract) in the same reload"
    )
