"""Why a pipeline, step, table or run is not as wanted: its cause chain, walked up the graph, and what it affects.

Pure functions over a :class:`~foss_supervisor.graph.model.Graph` and the runs it names (no I/O): the ``why``
command gathers both. A chain is a list of texts, each a cause of the one before, the shape ``why`` gives for
programs::

    table gold.daily_revenue late
    not written for 3h 2m (fresh_within 2h)
    written by step orders/aggregate, which is upstream_failed
    step orders/aggregate upstream_failed
    after step orders/enrich, which is failed
    step orders/enrich failed in run 20261205-0900-ab12 at 09:00:14
    error: quality error threshold on silver.orders_valid: 31.0 % rejected (max 5 %)

The walk goes up the edges into a node (``writes`` and ``feeds`` into a table, ``depends_on`` between steps,
``derives``, ``inputs``, ``after``) to each node that is itself not as wanted, to the first such on each path;
a program on the way is explained by the ``program`` callable (the program chain of ``why``). What the node
affects is every node its edges reach downstream, nearest first.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from foss_supervisor.base.pipelinestates import RunStatus
from foss_supervisor.base.pipelinestates import StepState as S
from foss_supervisor.base.processstates import ProcessState
from foss_supervisor.graph.model import Graph, Node

__all__ = ["affected", "chain", "is_wanted", "node_for", "run_chain"]

MAX_DEPTH = 8  # nodes followed up one path
MAX_AFFECTED = 200
#: a node's states that are not as wanted, by kind (a program is judged by its own chain: see ``program``)
_WRONG: dict[str, set[str]] = {
    "pipeline": {RunStatus.FAILED, RunStatus.ABANDONED, RunStatus.CANCELLED, RunStatus.SUCCEEDED_WITH_WARNINGS},
    "step": {S.FAILED, S.CRASHED, S.UPSTREAM_FAILED, S.CANCELLED, S.SUCCEEDED_WITH_WARNINGS},
    "table": {"late", "violated"},  # a freshness objective's words (alerting/objectives.py)
    "program": {str(s) for s in ProcessState if s is not ProcessState.RUNNING},
}
#: how an edge into a node reads, by kind, in the order the walk follows them
_INTO = {
    "writes": "written by",
    "feeds": "fed by",
    "derives": "derived from",
    "depends_on": "after",
    "inputs": "reads",
    "after": "runs after",
    "needs": "needs",
}


def node_for(graph: Graph, name: str) -> str | None:
    """The node ``name`` means: a node id as given (``table:gold.t``), else a pipeline, a table
    (``schema.table``) or a program of that name; None when there is none."""
    ids = {n.id for n in graph.nodes}
    if name in ids:
        return name
    for kind in ("pipeline", "table", "program"):
        candidate = f"{kind}:{name.lower() if kind == 'table' else name}"
        if candidate in ids:
            return candidate
    return None


def is_wanted(node: Node) -> bool:
    """Whether ``node``'s live state is as wanted (a folder, or a node never run, always is)."""
    return node.state is None or str(node.state) not in _WRONG.get(node.kind, set())


def _label(node: Node) -> str:
    return f"{node.kind} {node.id.split(':', 1)[1]}"


def _at(ts: float | None) -> str:
    return "" if ts is None else " at " + time.strftime("%H:%M:%S", time.localtime(ts))


def _into(graph: Graph, node_id: str) -> list[tuple[str, str]]:
    """(edge kind, source) of the edges into ``node_id``, in the order the walk follows them."""
    edges = [(e.kind, e.source) for e in graph.edges if e.target == node_id and e.kind in _INTO]
    order = list(_INTO)
    return sorted(edges, key=lambda pair: (order.index(pair[0]), pair[1]))


def run_chain(run: Mapping[str, Any]) -> list[str]:
    """What a run's record says of why it ended as it did: its status, then each step that failed or warned
    (its error or warnings), the root failures before those that only followed them (``upstream_failed``)."""
    status = str(run.get("status"))
    out = [f"run {run.get('run_id')} of {run.get('pipeline')} {status}{_at(run.get('finished_at'))}"]
    if run.get("reason"):
        out[0] += f" (started by {run['reason']})"
    steps = [s for s in run.get("steps") or [] if str(s.get("state")) in _WRONG["step"]]
    steps.sort(key=lambda s: str(s.get("state")) == "upstream_failed")
    for s in steps:
        said = s.get("error") or "; ".join(str(w) for w in s.get("warnings") or ()) or ""
        out.append(f"step {s.get('name')} {s.get('state')}" + (f": {str(said)[:300]}" if said else ""))
    if run.get("error") and not steps:
        out.append(f"error: {str(run['error'])[:300]}")
    return out


def chain(
    graph: Graph,
    node_id: str,
    runs: Mapping[str, Mapping[str, Any] | None],
    program: Callable[[str], list[str]],
) -> list[str]:
    """The cause chain of node ``node_id`` (see the module docstring).

    ``runs``: each pipeline's last finished run (``RunRecord.to_dict``) or None; ``program(name)``: a
    program's own chain (``["api BACKOFF", "exited 3 times ...", ...]``). Raises KeyError for an unknown id.
    """
    index = {n.id: n for n in graph.nodes}
    out: list[str] = []
    _explain(graph, index, index[node_id], runs, program, out, set(), 0)
    return out


def _explain(
    graph: Graph,
    index: Mapping[str, Node],
    node: Node,
    runs: Mapping[str, Mapping[str, Any] | None],
    program: Callable[[str], list[str]],
    out: list[str],
    seen: set[str],
    depth: int,
) -> None:
    seen.add(node.id)
    if node.kind == "program":
        out.extend(program(node.id.split(":", 1)[1]))
        return
    out.append(f"{_label(node)} {node.state or ('never run' if node.kind in ('pipeline', 'step') else 'as it is')}")
    objective = node.detail.get("objective") if isinstance(node.detail, Mapping) else None
    if isinstance(objective, Mapping) and objective.get("state") not in (None, "ok"):
        out.append(str(objective.get("detail") or objective.get("state")))
    if node.kind == "pipeline" and not is_wanted(node):
        run = runs.get(node.id.split(":", 1)[1])
        if run is not None:
            out.extend(run_chain(run))
    if node.kind == "step" and not is_wanted(node):
        pipeline, _, step = node.id.split(":", 1)[1].partition("/")
        run = runs.get(pipeline) or {}
        record = next((s for s in run.get("steps") or [] if s.get("name") == step), None)
        if record is not None and record.get("error"):
            out.append(f"in run {run.get('run_id')}{_at(run.get('finished_at'))}: {str(record['error'])[:300]}")
    if depth >= MAX_DEPTH:
        return
    for kind, source in _into(graph, node.id):
        upstream = index.get(source)
        if upstream is None or source in seen or is_wanted(upstream):
            continue
        out.append(f"{_INTO[kind]} {_label(upstream)}, which is {upstream.state}")
        _explain(graph, index, upstream, runs, program, out, seen, depth + 1)


def affected(graph: Graph, node_id: str) -> list[str]:
    """The ids of every node the edges out of ``node_id`` reach, nearest first (at most :data:`MAX_AFFECTED`)."""
    out: list[str] = []
    seen = {node_id}
    queue = deque([node_id])
    while queue and len(out) < MAX_AFFECTED:
        current = queue.popleft()
        for edge in graph.edges:
            if edge.source == current and edge.target not in seen:
                seen.add(edge.target)
                out.append(edge.target)
                queue.append(edge.target)
    return out[:MAX_AFFECTED]
