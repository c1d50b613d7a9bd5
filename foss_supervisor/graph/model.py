"""The graph: nodes (programs, pipelines, steps, folders, tables) and the edges between them.

Node ids are stable (they are names, never positions) and say their kind:

==================  ==========================================  =========================================
id                  node                                        ``layer``
==================  ==========================================  =========================================
``program:NAME``    a supervised program (a replica: ``web-0``)  none
``pipeline:NAME``   a pipeline                                  none
``step:PIPE/STEP``  a step of a pipeline                        as declared (``layer:``)
``table:S.T``       a table or view, ``schema.table`` lower     the schema's (``trips_gold`` is gold), else
                    case                                        the layer of the first step writing it
``folder:PATH``     a folder (absolute, normalised): a          none
                    pipeline's landing folder, a program's
                    ``feeds:``
==================  ==========================================  =========================================

Edges go the way data (or readiness) flows, ``{"source", "target", "kind"}``:

- ``depends_on``: program -> program that depends on it; step -> step that depends on it (same pipeline);
- ``after``: pipeline -> pipeline that runs after each of its good runs (``after:`` in the daemon config);
- ``inputs``: table -> pipeline that declares it (or its schema) under ``inputs:`` in its file;
- ``reads``: table or folder -> step; ``writes``: step -> table (from the SQL, or a Python step's contract);
- ``derives``: table -> view or table made from it by a pipeline's ``setup`` SQL (``CREATE VIEW ... AS``);
- ``feeds``: program -> table or folder (``feeds:``); ``needs``: table -> program (``needs:``).

A step's reads leave out the tables it writes itself (a step that appends to a table it also reads is a
writer of it, not a cycle). Each node carries its live ``state``: a program's supervisor state, a
pipeline's run in progress (``running``) or its last finished run's status, a step's state in that run, a
table with a freshness objective that objective's (``ok``, ``late``; :func:`with_objectives`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from foss_supervisor.base.jsonable import dataclass_to_json
from foss_supervisor.graph.contracts import python_contract

if TYPE_CHECKING:
    from foss_supervisor.config import Config
    from foss_supervisor.pipeline.engine.spec import PipelineSpec

__all__ = ["EDGE_KINDS", "NODE_KINDS", "Edge", "Graph", "Node", "build_graph", "table_layer", "with_objectives"]

NODE_KINDS = ("program", "pipeline", "step", "folder", "table")
EDGE_KINDS = ("depends_on", "after", "inputs", "reads", "writes", "derives", "feeds", "needs")
LAYERS = ("bronze", "silver", "gold")
#: what a CREATE makes that is not data (a macro, a sequence...): no node
_NOT_DATA = frozenset({"macro", "sequence", "schema", "index", "type", "secret"})


@dataclasses.dataclass(frozen=True, slots=True)
class Node:
    """One node; ``detail`` holds what its kind adds (a program's health, a table's ``object``: table/view)."""

    id: str
    kind: str
    name: str
    layer: str | None = None
    state: str | None = None
    pipeline: str | None = None  # a step's pipeline
    url: str | None = None  # the dashboard page that shows it
    detail: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclass_to_json(self)


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class Edge:
    source: str
    target: str
    kind: str

    def to_dict(self) -> dict[str, str]:
        return dataclass_to_json(self)


@dataclasses.dataclass(frozen=True, slots=True)
class Graph:
    """Nodes sorted by kind then id, edges sorted: the same inputs give the same graph, byte for byte."""

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"nodes": [n.to_dict() for n in self.nodes], "edges": [e.to_dict() for e in self.edges]}

    def around_pipeline(self, name: str) -> Graph:
        """The pipeline, its steps, every node one edge away from them, and the programs that feed or need
        those nodes. Raises KeyError for an unknown pipeline."""
        if f"pipeline:{name}" not in {n.id for n in self.nodes}:
            raise KeyError(name)
        keep = {f"pipeline:{name}"} | {n.id for n in self.nodes if n.kind == "step" and n.pipeline == name}
        keep |= {e.target for e in self.edges if e.source in keep} | {e.source for e in self.edges if e.target in keep}
        keep |= {e.source for e in self.edges if e.kind == "feeds" and e.target in keep}
        keep |= {e.target for e in self.edges if e.kind == "needs" and e.source in keep}
        return Graph(
            tuple(n for n in self.nodes if n.id in keep),
            tuple(e for e in self.edges if e.source in keep and e.target in keep),
        )


def with_objectives(graph: Graph, objectives: Iterable[Mapping[str, Any]]) -> Graph:
    """``graph`` with each objective (``Objectives.evaluate``'s shape) on its node: ``detail.objective`` is
    ``{"id", "kind", "state", "detail"}`` (a failing one before an ok one when a node has several), and a
    table, which has no state of its own, takes the objective's (``ok`` or ``late``)."""
    found: dict[str, Mapping[str, Any]] = {}
    for objective in objectives:
        if objective["node"] not in found or found[objective["node"]]["state"] == "ok":
            found[objective["node"]] = objective
    nodes = []
    for n in graph.nodes:
        if (o := found.get(n.id)) is not None:
            mark = {k: o[k] for k in ("id", "kind", "state", "detail")}
            n = dataclasses.replace(
                n, detail={**n.detail, "objective": mark}, state=o["state"] if n.kind == "table" else n.state
            )
        nodes.append(n)
    return Graph(tuple(nodes), graph.edges)


def table_layer(table: str) -> str | None:
    """The layer a schema's name says (``bronze``, ``trips_silver``, ``gold_marts``), None when it says none."""
    schema = table.split(".", 1)[0]
    return next((layer for layer in LAYERS if layer in schema.split("_")), None)


class _Builder:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.edges: set[Edge] = set()

    def node(self, node_id: str, **fields: Any) -> str:
        if node_id not in self.nodes:
            kind, _, name = node_id.partition(":")
            self.nodes[node_id] = Node(id=node_id, kind=kind, name=name)
        known = self.nodes[node_id]
        given = {k: v for k, v in fields.items() if v is not None and getattr(known, k) in (None, {})}
        self.nodes[node_id] = dataclasses.replace(known, **given)
        return node_id

    def data(self, node_id: str) -> str:
        """A table or folder node (a table's url and layer filled in)."""
        if node_id.startswith("table:"):
            table = node_id.removeprefix("table:")
            return self.node(node_id, layer=table_layer(table), url=f"/data-browser/{table}")
        return self.node(node_id)

    def edge(self, source: str, target: str, kind: str) -> None:
        if source != target:
            self.edges.add(Edge(source, target, kind))


def build_graph(
    config: Config,
    specs: Mapping[str, PipelineSpec],
    scripts: Mapping[str, Any],
    programs_live: Mapping[str, Mapping[str, Any]],
    pipelines_live: Mapping[str, Mapping[str, Any]],
) -> Graph:
    """The whole host's graph.

    ``scripts``: what the worker read of the SQL (``PipelineService.lineage()["scripts"]``: ``setup:P`` and
    ``step:P/S`` -> ``{"statements": [{"reads", "writes", "object"}]}``; missing scripts give no SQL edges);
    ``programs_live``: program name -> its ``status`` snapshot (``state``, ``health``); ``pipelines_live``:
    pipeline name -> its ``pipelines`` entry (``active_run``, ``last_run``, ``paused``).
    """
    b = _Builder()
    for name, prog in config.programs.items():
        live = programs_live.get(name, {})
        b.node(
            f"program:{name}",
            state=live.get("state"),
            url=f"/logs/{name}",
            detail={"health": live.get("health"), "group": prog.group or name},
        )
        for dep in prog.depends_on:
            b.edge(b.node(f"program:{dep}"), f"program:{name}", "depends_on")
        for target in prog.feeds:
            b.edge(f"program:{name}", b.data(_data_id(target)), "feeds")
        for table in prog.needs:
            b.edge(b.data(f"table:{table}"), f"program:{name}", "needs")
    for name, spec in specs.items():
        _add_pipeline(b, config, spec, scripts, pipelines_live.get(name, {}))
    _add_columns(b, specs, scripts)
    for name, spec in specs.items():  # after every table is known: a schema input stands for its tables
        for wanted in sorted(spec.inputs):
            matches = [i for i in b.nodes if i == f"table:{wanted}" or i.startswith(f"table:{wanted}.")]
            for table_id in matches or ([b.data(f"table:{wanted}")] if "." in wanted else []):
                b.edge(table_id, f"pipeline:{name}", "inputs")
    order = {k: i for i, k in enumerate(NODE_KINDS)}
    nodes = sorted(b.nodes.values(), key=lambda n: (order.get(n.kind, len(order)), n.id))
    return Graph(tuple(nodes), tuple(sorted(b.edges)))


def _add_columns(b: _Builder, specs: Mapping[str, PipelineSpec], scripts: Mapping[str, Any]) -> None:
    """Column lineage (pipeline/worker/columns.py) on the nodes: a table's ``detail.columns`` (``[{"name", "type",
    "from": ["schema.table.column"], "unknown"}]``, its setup's declaration, then each step writing it) and
    ``detail.columns_unknown`` (why the list is incomplete, "" when it is not); a step's ``detail.reads_columns``
    (``{"schema.table": ["column", ...]}``, ``"*"`` in the list when it reads columns not known by name)."""
    keys = [f"setup:{n}" for n in specs] + [f"step:{n}/{s.name}" for n, spec in specs.items() for s in spec.steps]
    tables: dict[str, dict[str, dict[str, Any]]] = {}
    unknown: dict[str, str] = {}
    for key in keys:
        found = scripts.get(key)
        columns = found.get("columns") if isinstance(found, Mapping) else None
        if not isinstance(columns, Mapping):
            continue
        for table, written in (columns.get("writes") or {}).items():
            known = tables.setdefault(f"table:{table}", {})
            for col in written.get("columns") or ():
                was = known.get(col["name"])
                known[col["name"]] = dict(col) if was is None or not was["from"] else was
            if written.get("unknown"):
                unknown.setdefault(f"table:{table}", written["unknown"])
        if key.startswith("step:") and (node := b.nodes.get(key)) is not None:
            reads = {
                t: [*r.get("columns", ()), *(["*"] if r.get("unknown") else [])]
                for t, r in (columns.get("reads") or {}).items()
            }
            b.nodes[key] = dataclasses.replace(node, detail={**node.detail, "reads_columns": reads})
    for table_id, cols in tables.items():
        if (node := b.nodes.get(table_id)) is not None:
            extra = {"columns": list(cols.values()), "columns_unknown": unknown.get(table_id, "")}
            b.nodes[table_id] = dataclasses.replace(node, detail={**node.detail, **extra})


def _data_id(target: str) -> str:
    """``schema.table`` -> ``table:...``; a path (resolved by the config loader) -> ``folder:...``."""
    return f"folder:{os.path.normpath(target)}" if "/" in target else f"table:{target}"


def _statements(scripts: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    found = scripts.get(key)
    statements = found.get("statements") if isinstance(found, Mapping) else None
    return [s for s in statements if isinstance(s, Mapping)] if isinstance(statements, list) else []


def _names(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _partition_detail(live: Mapping[str, Any]) -> dict[str, Any]:
    """A partitioned pipeline's ``{"partitions": {"key", "counts": {status: n}}}`` (each partition by its last
    partition run, pipeline/engine/backfill.py), else nothing."""
    summary = live.get("partitions")
    if not isinstance(summary, Mapping):
        return {}
    return {"partitions": {"key": summary.get("key"), "counts": dict(summary.get("counts") or {})}}


def _add_pipeline(
    b: _Builder, config: Config, spec: PipelineSpec, scripts: Mapping[str, Any], live: Mapping[str, Any]
) -> None:
    name = spec.name
    active, last = live.get("active_run"), live.get("last_run")
    run = active or last
    pipeline_state = (active or {}).get("status") or (last or {}).get("status")
    b.node(
        f"pipeline:{name}",
        state=pipeline_state,
        url="/pipeline-management",
        detail={"paused": bool(live.get("paused")), "description": spec.description} | _partition_detail(live),
    )
    pc = config.pipelines.get(name)
    landing = os.path.normpath(str(pc.landing if pc is not None else spec.folders.landing))
    b.node(f"folder:{landing}", detail={"landing_of": name})
    for other in pc.after if pc is not None else ():
        b.edge(b.node(f"pipeline:{other}"), f"pipeline:{name}", "after")

    for statement in _statements(scripts, f"setup:{name}"):  # views (and tables) made from other tables
        if statement.get("object") in _NOT_DATA:
            continue
        for written in _names(statement.get("writes")):
            view = b.data(f"table:{written}")
            if statement.get("object") == "view":
                b.nodes[view] = dataclasses.replace(b.nodes[view], detail={"object": "view"})
            for read in _names(statement.get("reads")):
                b.edge(b.data(f"table:{read}"), f"table:{written}", "derives")

    steps = {s.get("name"): s for s in (run or {}).get("steps") or () if isinstance(s, Mapping)}
    for step in spec.steps:
        step_id = b.node(
            f"step:{name}/{step.name}",
            layer=step.layer,
            state=steps.get(step.name, {}).get("state"),
            pipeline=name,
            url=f"/runs/{run['run_id']}" if run and step.name in steps and run.get("run_id") else None,
            detail={"step_kind": str(step.kind)},
        )
        for dep in step.depends_on:
            b.edge(f"step:{name}/{dep}", step_id, "depends_on")
        reads, writes = _step_refs(step.name, step.callable, step.params, spec.ledger, landing, name, scripts)
        for written in writes:
            b.edge(step_id, b.data(written), "writes")
        for read in reads:
            if read not in writes:
                b.edge(b.data(read), step_id, "reads")
        for written in writes:  # a table takes the layer of its first writer when its schema says none
            if b.nodes[written].layer is None and step.layer is not None:
                b.nodes[written] = dataclasses.replace(b.nodes[written], layer=step.layer)


def _step_refs(
    step: str,
    callable_ref: str | None,
    params: Mapping[str, Any],
    ledger: str,
    landing: str,
    pipeline: str,
    scripts: Mapping[str, Any],
) -> tuple[list[str], list[str]]:
    """(node ids read, node ids written) by one step: its SQL as the worker read it, else its contract."""
    if callable_ref is not None:
        return python_contract(callable_ref, params, ledger, landing)
    reads: list[str] = []
    writes: list[str] = []
    for statement in _statements(scripts, f"step:{pipeline}/{step}"):
        if statement.get("object") in _NOT_DATA:
            continue
        writes.extend(f"table:{t}" for t in _names(statement.get("writes")))
        reads.extend(f"table:{t}" for t in _names(statement.get("reads")))
    return _unique(reads), _unique(writes)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
