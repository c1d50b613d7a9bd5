"""The graph (foss_supervisor.graph): lineage read from the shipped pipelines' SQL matches what a person reads
in those files; ``feeds:``/``needs:`` pass the config's gates; the DOT and Mermaid texts are well formed.

The SQL is read as the worker reads it (``pipeline/worker/lineage.py``: DuckDB's tokenizer, no database), in this
process; the same request through a real worker is tests/e2e/test_graph_daemon.py.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import pydot
import pytest
import yaml
from helpers import REPO, examples
from helpers.gate_strategies import hostile
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from foss_supervisor.config import parse_config
from foss_supervisor.config.schema import PROGRAM
from foss_supervisor.errors import ConfigError
from foss_supervisor.graph.model import Graph, build_graph
from foss_supervisor.graph.render import to_dot, to_mermaid
from foss_supervisor.pipeline.engine.spec import PipelineSpec, load_pipeline
from foss_supervisor.pipeline.worker.lineage import scan_scripts

FILE = Path("/etc/fs/c.yaml")
DATA = Path("/srv/data")

#: what each step of the shipped pipelines reads and writes, read by hand from configs/pipelines/ (tables it
#: writes are not also listed as read; the landing folder is ``landing``)
EXPECTED: dict[str, tuple[set[str], set[str]]] = {
    "orders/discover": ({"landing"}, {"meta.files", "meta.file_seen"}),
    "orders/ingest": ({"landing", "meta.files"}, {"bronze.orders_raw"}),
    "orders/reference": (set(), {"ref.products", "ref.countries", "ref.fx_rates"}),
    "orders/validate": (  # bronze: a rejected row keeps the raw row that failed (its quality block's raw:)
        {"work.orders_parsed", "ref.products", "ref.fx_rates", "ref.countries", "bronze.orders_raw"},
        {"silver.orders_valid", "silver.orders_rejected"},
    ),
    "orders/quarantine": ({"silver.orders_rejected", "bronze.orders_raw"}, {"silver.orders_quarantine"}),
    "orders/deduplicate": ({"silver.orders_valid"}, {"silver.orders", "silver.orders_superseded"}),
    "orders/enrich": ({"silver.orders", "ref.products", "ref.countries"}, {"silver.orders_enriched"}),
    "orders/aggregate": (
        {"silver.orders_enriched"},
        {"gold.daily_revenue", "gold.product_sales", "gold.customer_ltv"},
    ),
    "orders/report": (set(), set()),  # its own Python (orders/steps.py): nothing can be read off it
    "trips/discover": ({"landing"}, {"trips_meta.files", "trips_meta.file_seen"}),
    "trips/ingest": ({"landing", "trips_meta.files"}, {"trips_bronze.trips_raw"}),
    "trips/clean": ({"trips_bronze.trips_raw"}, {"trips_silver.trips", "trips_silver.trips_rejected"}),
    "trips/daily": ({"trips_silver.trips"}, {"trips_gold.daily_zone"}),
    "trips/report": (set(), set()),
}
#: views the setup SQL makes from other tables
EXPECTED_DERIVES = {("bronze.orders_raw", "work.orders_parsed"), ("ref.products", "work.orders_parsed")}
EXPECTED_DERIVES |= {("ref.fx_rates", "work.orders_parsed")}
EXPECTED_LAYERS = {
    "bronze.orders_raw": "bronze",
    "ref.products": "silver",  # no layer in its schema's name: its writer's (reference, silver)
    "silver.orders_enriched": "silver",
    "gold.daily_revenue": "gold",
    "trips_gold.daily_zone": "gold",
    "work.orders_parsed": None,  # written by no step
}


@functools.cache
def shipped() -> tuple[dict[str, PipelineSpec], dict[str, Any]]:
    """The shipped pipelines and what the worker's reader finds in their SQL."""
    specs = {n: load_pipeline(REPO / "configs" / "pipelines" / f"{n}.yaml") for n in ("orders", "trips")}
    scripts = {f"setup:{n}": s.setup_sql for n, s in specs.items() if s.setup_sql}
    scripts |= {f"step:{n}/{st.name}": st.sql for n, s in specs.items() for st in s.steps if st.sql}
    return specs, scan_scripts(scripts)["scripts"]


def shipped_graph(programs: str = "") -> Graph:
    config = parse_config(
        f"data_dir: {DATA}\npipelines:\n  orders: {{}}\n  trips: {{after: [orders]}}\n{programs}", FILE, {}
    )
    specs, scripts = shipped()
    return build_graph(config, specs, scripts, {}, {})


def _short(node_id: str, pipeline: str) -> str:
    if node_id == f"folder:{DATA}/landing/{pipeline}":
        return "landing"
    return node_id.split(":", 1)[1]


def test_the_lineage_of_the_shipped_pipelines_is_what_their_files_say() -> None:
    graph = shipped_graph()
    found: dict[str, tuple[set[str], set[str]]] = {}
    for node in (n for n in graph.nodes if n.kind == "step"):
        assert node.pipeline is not None
        reads = {_short(e.source, node.pipeline) for e in graph.edges if e.target == node.id and e.kind == "reads"}
        writes = {_short(e.target, node.pipeline) for e in graph.edges if e.source == node.id and e.kind == "writes"}
        found[node.name] = (reads, writes)
    assert found == EXPECTED
    derives = {(e.source[6:], e.target[6:]) for e in graph.edges if e.kind == "derives"}
    assert derives == EXPECTED_DERIVES
    layers = {n.name: n.layer for n in graph.nodes if n.kind == "table"}
    assert {t: layers[t] for t in EXPECTED_LAYERS} == EXPECTED_LAYERS
    assert "table:work.iso_ts" not in {n.id for n in graph.nodes}  # a macro is no data


def test_programs_and_pipelines_link_through_feeds_needs_depends_on_and_after() -> None:
    graph = shipped_graph(
        "programs:\n"
        f"  collector: {{command: [x], feeds: [{DATA}/landing/orders/, ./exports]}}\n"
        "  api: {command: [x], needs: [gold.daily_revenue, other.table], depends_on: [db]}\n"
        "  db: {command: [x], feeds: trips_gold.daily_zone}\n"
    )
    edges = {(e.source, e.target, e.kind) for e in graph.edges}
    assert ("program:collector", f"folder:{DATA}/landing/orders", "feeds") in edges  # the landing folder's node
    assert ("program:collector", "folder:/etc/fs/exports", "feeds") in edges  # relative to the config file
    assert ("table:gold.daily_revenue", "program:api", "needs") in edges
    assert ("table:other.table", "program:api", "needs") in edges
    assert ("program:db", "program:api", "depends_on") in edges
    assert ("program:db", "table:trips_gold.daily_zone", "feeds") in edges
    assert ("pipeline:orders", "pipeline:trips", "after") in edges
    assert ("step:orders/discover", "step:orders/ingest", "depends_on") in edges
    ids = [n.id for n in graph.nodes]
    assert len(ids) == len(set(ids))
    assert {e.source for e in graph.edges} | {e.target for e in graph.edges} <= set(ids)

    trips = graph.around_pipeline("trips")
    kept = {n.id for n in trips.nodes}
    assert "step:trips/clean" in kept and "pipeline:orders" in kept  # one edge away (after)
    assert "program:db" in kept  # feeds a table trips writes
    assert not any(i.startswith("step:orders/") for i in kept)
    with pytest.raises(KeyError):
        graph.around_pipeline("nope")


def test_live_states_are_carried_on_the_nodes() -> None:
    config = parse_config("data_dir: /d\npipelines: {orders: {}}\nprograms: {db: {command: [x]}}\n", FILE, {})
    specs = {"orders": load_pipeline(REPO / "configs" / "pipelines" / "orders.yaml")}
    run = {"run_id": "r1", "status": "failed", "steps": [{"name": "ingest", "state": "failed"}]}
    graph = build_graph(
        config, specs, {}, {"db": {"state": "FATAL", "health": "unknown"}}, {"orders": {"last_run": run}}
    )
    by_id = {n.id: n for n in graph.nodes}
    assert by_id["program:db"].state == "FATAL"
    assert by_id["pipeline:orders"].state == "failed"
    assert (by_id["step:orders/ingest"].state, by_id["step:orders/ingest"].url) == ("failed", "/runs/r1")
    assert by_id["step:orders/enrich"].state is None
    # without what the worker read of the SQL, a SQL step has no data edges; the Python steps keep their contract
    assert not [e for e in graph.edges if "step:orders/enrich" in (e.source, e.target) and e.kind != "depends_on"]
    assert ("step:orders/ingest", "table:bronze.orders_raw") in {(e.source, e.target) for e in graph.edges}


FEEDS_GATE = PROGRAM["feeds"]
NEEDS_GATE = PROGRAM["needs"]


@settings(max_examples=examples(200), deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(["feeds", "needs"]).flatmap(lambda k: st.tuples(st.just(k), hostile(PROGRAM[k]))))
def test_malformed_feeds_and_needs_are_refused_naming_file_line_and_key(case: tuple[str, Any]) -> None:
    key, value = case
    doc = {"programs": {"p": {key: value, "command": ["x"]}}}
    text = yaml.safe_dump(doc, allow_unicode=True, width=10**9, sort_keys=False)
    with pytest.raises(ConfigError) as caught:
        parse_config(text, FILE, {})
    errors = [e for e in caught.value.errors if e.key == f"programs.p.{key}" or e.key.startswith(f"programs.p.{key}[")]
    assert errors, [str(e) for e in caught.value.errors]
    last = text.count("\n") - 1  # the key is on line 3, its items (if a list) after it, command last
    for e in errors:
        assert e.file == str(FILE) and e.line is not None and 3 <= e.line <= last, (str(e), text)
        assert str(e).startswith(f"{FILE}:{e.line}: programs.p.{key}")


#: folder names a program may feed: spaces, quotes, backslashes, braces, non-ASCII
ODD_PATH = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30).map(lambda t: "/x/" + t)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pydot's use of pyparsing
@settings(max_examples=examples(60), deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(ODD_PATH, min_size=1, max_size=3), st.just(False))
@example(paths=['/x/a "b" {c} \\ \u00fc -> d;'], pipelines=True)
def test_dot_and_mermaid_stay_well_formed_whatever_the_names(paths: list[str], pipelines: bool) -> None:
    """The odd names are the folders a program feeds: alone, and once beside the shipped pipelines (their
    subgraphs; a parse of that graph takes pydot about 0.4 s). The whole shipped graph: test_graph_daemon.py."""
    feeds = yaml.safe_dump({"feeds": paths}, default_flow_style=True, width=10**9, allow_unicode=True)
    programs = "programs:\n  collector:\n    command: [x]\n    " + feeds[1:-2] + "\n"
    if pipelines:
        graph = shipped_graph(programs)
    else:
        graph = build_graph(parse_config(f"data_dir: {DATA}\n{programs}", FILE, {}), {}, {}, {}, {})
    parsed = pydot.graph_from_dot_data(to_dot(graph))
    assert parsed is not None and len(parsed) == 1
    dot_nodes = {n.get_name().strip('"') for g in [parsed[0], *parsed[0].get_subgraphs()] for n in g.get_nodes()}
    assert len(dot_nodes - {"node"}) == len(graph.nodes)
    assert len(parsed[0].get_edges()) == len(graph.edges)
    _check_mermaid(to_mermaid(graph), graph)


def _check_mermaid(text: str, graph: Graph) -> None:
    """The structure Mermaid's flowchart grammar needs: declared ids, quoted labels without quotes inside,
    subgraphs closed, edges between declared ids."""
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    declared = set()
    depth = 0
    edges = 0
    for line in lines[1:]:
        body = line.strip()
        if m := re.fullmatch(r'(n\d+)\["([^"\[\]]*)"\]', body):
            declared.add(m[1])
        elif re.fullmatch(r'subgraph p\d+\["[^"\[\]]*"\]', body):
            depth += 1
        elif body == "end":
            depth -= 1
        elif m := re.fullmatch(r"(n\d+) (?:-->|-\.->\|[a-z_]+\|) (n\d+)", body):
            assert {m[1], m[2]} <= declared
            edges += 1
        else:
            assert re.fullmatch(r"classDef \w+ fill:#[0-9a-f]{6},stroke:#555|class (n\d+,?)+ \w+", body), body
        assert depth in (0, 1)
    assert depth == 0 and len(declared) == len(graph.nodes) and edges == len(graph.edges)
