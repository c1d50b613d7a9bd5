"""``foss-supervisor graph`` on a real daemon: the three formats from the CLI, the SQL read by the real pipeline
worker, ``feeds:``/``needs:`` from the config, live program states, and ``GET /api/v1/graph``."""

from __future__ import annotations

import json

import pydot
import pytest
from helpers import DaemonHandle, get, wait_for, write_graph_host


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pydot's use of pyparsing
def test_the_cli_draws_one_graph_in_three_formats_and_the_api_answers_the_same(daemon: DaemonHandle) -> None:
    landing = write_graph_host(daemon)
    daemon.start()
    wait_for(lambda: daemon.program("api")["state"] == "RUNNING", 30, "api RUNNING")

    as_json = daemon.cli("graph")
    assert as_json.returncode == 0 and "WARN" not in as_json.stderr, as_json.stderr
    graph = json.loads(as_json.stdout)
    nodes = {n["id"]: n for n in graph["nodes"]}
    edges = {(e["source"], e["target"], e["kind"]) for e in graph["edges"]}
    # read from the SQL by the pipeline worker (the daemon itself has no DuckDB)
    assert ("step:orders/aggregate", "table:gold.daily_revenue", "writes") in edges
    assert ("table:silver.orders_enriched", "step:orders/aggregate", "reads") in edges
    assert ("table:trips_silver.trips", "step:trips/daily", "reads") in edges
    # declared: feeds/needs/depends_on in the config, after: between pipelines, the shipped steps' contracts
    assert ("program:collector", f"folder:{landing}", "feeds") in edges
    assert (f"folder:{landing}", "step:orders/ingest", "reads") in edges
    assert ("table:gold.daily_revenue", "program:api", "needs") in edges
    assert ("program:collector", "program:api", "depends_on") in edges
    assert ("pipeline:orders", "pipeline:trips", "after") in edges
    assert nodes["program:api"]["state"] == "RUNNING" and nodes["table:gold.daily_revenue"]["layer"] == "gold"
    assert nodes["step:orders/enrich"] | {"state": None} == {
        "id": "step:orders/enrich",
        "kind": "step",
        "name": "orders/enrich",
        "layer": "silver",
        "state": None,  # no run yet
        "pipeline": "orders",
        "url": None,
        "detail": {
            "step_kind": "sql",
            "reads_columns": {  # column lineage, read by the worker (docs/graph.md)
                "silver.orders": [
                    *("order_id", "customer_id", "order_ts", "product_id", "quantity", "unit_price", "currency"),
                    *("country", "status", "updated_at", "rate_to_usd", "amount_usd", "_row_id", "_batch_id"),
                    *("_source_file", "_source_line"),
                ],
                "ref.products": ["name", "category", "product_id"],
                "ref.countries": ["name", "country_code"],
            },
        },
    }

    dot = daemon.cli("graph", "--format", "dot")
    assert dot.returncode == 0, dot.stderr
    [parsed] = pydot.graph_from_dot_data(dot.stdout)
    assert len(parsed.get_edges()) == len(edges)

    mermaid = daemon.cli("graph", "--format", "mermaid", "--pipeline", "trips")
    assert mermaid.returncode == 0, mermaid.stderr
    assert mermaid.stdout.startswith("flowchart LR\n") and '"step daily"' in mermaid.stdout
    assert '"step enrich"' not in mermaid.stdout  # another pipeline's step

    unknown = daemon.cli("graph", "--pipeline", "nope")
    assert unknown.returncode != 0 and "no pipeline 'nope'; known: orders, trips" in unknown.stderr

    reply = get(daemon.port, "/api/v1/graph?format=dot")
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/vnd.graphviz")
    assert reply.body.decode() == dot.stdout
    reply = get(daemon.port, "/api/v1/graph?pipeline=orders")
    assert reply.status == 200 and {n["id"] for n in json.loads(reply.body)["nodes"]} >= {"program:collector"}
    assert get(daemon.port, "/api/v1/graph?format=svg").status == 400
    assert get(daemon.port, "/api/v1/graph?pipeline=nope").status == 404
    assert get(daemon.port, "/api/v1/graph?pipeline=no%20name").status == 400
