"""The cause chain up the graph and what a node affects (foss_supervisor/graph/causes.py), on hand-built graphs.

The host of the issue's example: a collector program feeds the landing folder; orders' ``ingest`` reads it
into ``bronze.raw``; ``enrich`` reads that and failed; ``aggregate`` (after ``enrich``) did not run and writes
``gold.daily_revenue``, which is late; ``report`` reads gold. Expected chains are written out by hand."""

from __future__ import annotations

from typing import Any

from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from foss_supervisor.graph.causes import affected, chain, is_wanted, node_for, run_chain
from foss_supervisor.graph.model import Edge, Graph, Node

RUN: dict[str, Any] = {
    "run_id": "r42",
    "pipeline": "orders",
    "status": "failed",
    "reason": "schedule",
    "finished_at": None,
    "error": "step enrich failed",
    "steps": [
        {"name": "ingest", "state": "succeeded"},
        {"name": "aggregate", "state": "upstream_failed", "error": None},
        {"name": "enrich", "state": "failed", "error": "quality_failed: pass rate 69.0 % is below min_pass_rate 95 %"},
        {"name": "report", "state": "upstream_failed", "error": None},
    ],
}
LATE = {"id": "freshness:table:gold.daily_revenue", "kind": "freshness", "state": "late"} | {
    "detail": "not written for 3h"
}


def host(collector: str = "RUNNING", table_state: str | None = "late") -> Graph:
    objective = {"objective": LATE} if table_state == "late" else {}
    nodes = [
        Node("program:collector", "program", "collector", state=collector),
        Node("folder:/data/landing", "folder", "/data/landing"),
        Node("pipeline:orders", "pipeline", "orders", state="failed"),
        Node("step:orders/ingest", "step", "ingest", state="succeeded", pipeline="orders"),
        Node("step:orders/enrich", "step", "enrich", state="failed", pipeline="orders"),
        Node("step:orders/aggregate", "step", "aggregate", state="upstream_failed", pipeline="orders"),
        Node("step:orders/report", "step", "report", state="upstream_failed", pipeline="orders"),
        Node("table:bronze.raw", "table", "bronze.raw"),
        Node("table:gold.daily_revenue", "table", "gold.daily_revenue", state=table_state, detail=objective),
    ]
    edges = [
        Edge("program:collector", "folder:/data/landing", "feeds"),
        Edge("folder:/data/landing", "step:orders/ingest", "reads"),
        Edge("step:orders/ingest", "table:bronze.raw", "writes"),
        Edge("table:bronze.raw", "step:orders/enrich", "reads"),
        Edge("step:orders/ingest", "step:orders/enrich", "depends_on"),
        Edge("step:orders/enrich", "step:orders/aggregate", "depends_on"),
        Edge("step:orders/aggregate", "table:gold.daily_revenue", "writes"),
        Edge("table:gold.daily_revenue", "step:orders/report", "reads"),
        Edge("step:orders/aggregate", "step:orders/report", "depends_on"),
    ]
    return Graph(tuple(nodes), tuple(sorted(edges)))


def program(name: str) -> list[str]:
    return [f"{name} STOPPED", "stop requested by uid 1000 via web"]


def test_a_late_table_walks_up_to_the_step_that_failed_and_its_error() -> None:
    assert chain(host(), "table:gold.daily_revenue", {"orders": RUN}, program) == [
        "table gold.daily_revenue late",
        "not written for 3h",
        "written by step orders/aggregate, which is upstream_failed",
        "step orders/aggregate upstream_failed",
        "after step orders/enrich, which is failed",
        "step orders/enrich failed",
        "in run r42: quality_failed: pass rate 69.0 % is below min_pass_rate 95 %",
    ]


def test_a_program_stopped_by_hand_is_explained_by_its_own_chain_on_the_way_up() -> None:
    graph = host(collector="STOPPED")
    assert chain(graph, "step:orders/ingest", {"orders": RUN}, program) == ["step orders/ingest succeeded"]
    assert chain(graph, "folder:/data/landing", {}, program) == [
        "folder /data/landing as it is",
        "fed by program collector, which is STOPPED",
        "collector STOPPED",
        "stop requested by uid 1000 via web",
    ]


def test_a_pipeline_says_its_last_run_root_failure_before_what_followed() -> None:
    assert chain(host(), "pipeline:orders", {"orders": RUN}, program) == [
        "pipeline orders failed",
        "run r42 of orders failed (started by schedule)",
        "step enrich failed: quality_failed: pass rate 69.0 % is below min_pass_rate 95 %",
        "step aggregate upstream_failed",
        "step report upstream_failed",
    ]
    assert run_chain(RUN) == chain(host(), "pipeline:orders", {"orders": RUN}, program)[1:]


def test_what_a_failed_step_affects_is_everything_downstream_nearest_first() -> None:
    assert affected(host(), "step:orders/enrich") == [
        "step:orders/aggregate",
        "step:orders/report",
        "table:gold.daily_revenue",
    ]
    assert affected(host(), "table:gold.daily_revenue") == ["step:orders/report"]
    assert affected(host(), "step:orders/report") == []


def test_names_resolve_to_their_nodes() -> None:
    graph = host()
    assert node_for(graph, "orders") == "pipeline:orders"
    assert node_for(graph, "GOLD.Daily_Revenue") == "table:gold.daily_revenue"
    assert node_for(graph, "collector") == "program:collector"
    assert node_for(graph, "step:orders/enrich") == "step:orders/enrich"
    assert node_for(graph, "nothing") is None


STATES = st.sampled_from(["RUNNING", "STOPPED", "FATAL", "succeeded", "failed", "late", "ok", None])


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(STATES, min_size=9, max_size=9), st.lists(st.tuples(st.integers(0, 8), st.integers(0, 8)), max_size=20))
def test_any_graph_gives_a_finite_chain_that_names_only_nodes_not_as_wanted(
    states: list[str | None], pairs: list[tuple[int, int]]
) -> None:
    """Cycles included: the walk ends, each node at most once, and every node it steps to is not as wanted."""
    base = host()
    pairs_of = zip(base.nodes, states, strict=True)
    nodes = tuple(Node(n.id, n.kind, n.name, state=s, pipeline=n.pipeline) for n, s in pairs_of)
    ids = [n.id for n in nodes]
    edges = tuple(sorted({Edge(ids[a], ids[b], "depends_on") for a, b in pairs if a != b} | set(base.edges)))
    graph = Graph(nodes, edges)
    by_id = {n.id: n for n in nodes}
    for node in nodes:
        said = chain(graph, node.id, {"orders": RUN}, lambda name: [f"{name} explained"])
        stepped = [line for line in said if ", which is " in line]
        assert len(stepped) <= len(nodes)
        for line in stepped:
            label = line.split(", which is ")[0].split(" ", 1)[1]  # "written by step a/b" -> "by step a/b"
            target = next(n for n in nodes if label.endswith(f"{n.kind} {n.id.split(':', 1)[1]}"))
            assert not is_wanted(by_id[target.id])
        assert len(affected(graph, node.id)) <= len(nodes) - 1
