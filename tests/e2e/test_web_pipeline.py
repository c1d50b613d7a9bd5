"""The pipeline side of the dashboard against a real daemon and a real run: run pages, per-run reports,
/metrics pipeline figures, and the pages with data in headless Chromium (screenshots for the README)."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from helpers import DaemonHandle, get, wait_for
from helpers.browser import Watched, login_cookie, serious_violations, shots_dir

PIPELINE_CONFIG = """pipelines:
  orders: {on_new_files: true, demo_data: false}
"""


@pytest.fixture
def ran(daemon: DaemonHandle) -> tuple[DaemonHandle, dict[str, Any]]:
    daemon.write_config(PIPELINE_CONFIG, extra="warehouse: {watch_interval: 0.2s}")
    daemon.start()
    daemon.call("demo_data", orders=3000)
    run = wait_for(lambda: daemon.call("pipelines")[0]["last_run"], 90, "the first run")
    assert run["status"] == "succeeded", run
    return daemon, run


def test_run_page_report_and_metrics(ran: tuple[DaemonHandle, dict[str, Any]]) -> None:
    d, run = ran
    status, _, html = get(d.port, f"/runs/{run['run_id']}", {"Accept": "text/html"})
    assert status == 200
    for step in ("discover", "validate", "aggregate", "report"):
        assert f">{step} <".encode() in html
    assert f"/reports/orders/{run['run_id']}.html".encode() in html
    status, _, body = get(d.port, f"/runs/{run['run_id']}?format=json")
    assert status == 200 and len(json.loads(body)["run"]["steps"]) == 9
    assert get(d.port, "/runs/no-such-run")[0] == 404
    status, headers, report = get(d.port, f"/reports/orders/{run['run_id']}.html")
    assert status == 200 and b"<html" in report.lower()
    assert headers["content-security-policy"].startswith("default-src 'none'")  # no script runs in a report
    assert get(d.port, "/reports/orders/..%2Fapi-token.html")[0] == 404
    _, _, page = get(d.port, "/pipeline-management", {"Accept": "text/html"})
    assert f'href="/runs/{run["run_id"]}"'.encode() in page
    text = get(d.port, "/metrics")[2].decode()
    assert 'foss_supervisor_pipeline_runs_total{pipeline="orders",status="succeeded"} 1.0' in text
    assert 'foss_supervisor_pipeline_last_run_status{pipeline="orders",status="succeeded"} 1.0' in text
    assert 'foss_supervisor_pipeline_step_state{pipeline="orders",state="succeeded",step="report"} 1.0' in text
    rows = re.search(r'foss_supervisor_pipeline_step_output_rows\{pipeline="orders",step="ingest"\} (\S+)', text)
    assert rows and float(rows[1]) == next(s["rows_out"] for s in run["steps"] if s["name"] == "ingest")
    assert re.search(r'foss_supervisor_pipeline_quality_pass_ratio\{pipeline="orders",scope="overall"\} 0\.\d+', text)


def test_export_of_a_query_as_csv_and_json_lines(ran: tuple[DaemonHandle, dict[str, Any]]) -> None:
    d, _ = ran
    sql = quote("SELECT product_id, units FROM gold.product_sales ORDER BY product_id")
    [[count]] = d.call("query", sql="SELECT count(*) FROM gold.product_sales")["rows"]
    status, headers, body = get(d.port, f"/data-browser/export?format=csv&sql={sql}")
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert 'filename="result.csv"' in headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert rows[0] == ["product_id", "units"] and len(rows) == count + 1
    status, _, body = get(d.port, f"/data-browser/export?format=jsonl&sql={sql}")
    records = [json.loads(line) for line in body.decode().splitlines()]
    assert status == 200 and len(records) == count and set(records[0]) == {"product_id", "units"}
    status, _, body = get(d.port, f"/data-browser/export?format=csv&sql={quote('DROP TABLE gold.product_sales')}")
    assert status == 400
    assert d.call("query", sql="SELECT count(*) FROM gold.product_sales")["rows"] == [[count]]
    # a long query still fits in an export link (request lines up to 64 KiB)
    long_sql = (
        "SELECT product_id FROM gold.product_sales WHERE product_id NOT IN ("
        + ", ".join(f"'x{i}'" for i in range(3000))
        + ")"
    )
    status, _, body = get(d.port, f"/data-browser/export?format=csv&sql={quote(long_sql)}")
    assert status == 200 and len(body.decode().splitlines()) == count + 1
    # a result of any size goes out whole (DuckDB writes it; no row cap), as Parquet too
    status, _, body = get(d.port, f"/data-browser/export?format=csv&sql={quote('SELECT * FROM range(250000)')}")
    assert status == 200 and len(body.decode().splitlines()) == 250_001
    sql = quote("SELECT product_id, units FROM gold.product_sales")
    status, headers, body = get(d.port, f"/data-browser/export?format=parquet&sql={sql}")
    assert status == 200 and headers["content-type"] == "application/vnd.apache.parquet" and body[:4] == b"PAR1"
    import duckdb

    (tmp := Path(d.state_dir) / "result-check.parquet").write_bytes(body)
    assert duckdb.connect().execute(f"SELECT count(*) FROM '{tmp}'").fetchone()[0] == count
    tmp.unlink()
    # the table page offers the whole table, streamed with no cap
    page = get(d.port, "/data-browser/gold.product_sales", {"Accept": "text/html"})[2].decode()
    link = re.search(r'href="(/api/v1/export/gold.product_sales\?format=csv)"', page)
    assert link is not None
    status, _, body = get(d.port, link.group(1))
    assert status == 200 and len(list(csv.reader(io.StringIO(body.decode())))) == count + 1


def test_pipeline_pages_in_chromium(ran: tuple[DaemonHandle, dict[str, Any]], browser: Any, tmp_path: Path) -> None:
    d, run = ran
    d.call("pipeline_run", name="orders", wait=True)  # two runs: the history charts have a line to draw
    out = shots_dir(tmp_path)
    for width in (1280, 400):
        w = Watched(browser, width, session=d)
        pages = [
            ("/", "overview-pipeline"),
            ("/pipeline-management", "pipelines"),
            (f"/runs/{run['run_id']}", "run"),
            ("/data-browser?table=silver.orders_enriched", "data-browser"),
            ("/data-browser/silver.orders_enriched?_sort=order_ts&_desc=1", "table"),
        ]
        for path, name in pages:
            w.page.goto(f"http://127.0.0.1:{d.port}{path}")
            w.page.locator("#live.ok").wait_for(timeout=10_000)
            if name == "data-browser":
                w.page.locator("#results tbody tr").first.wait_for(timeout=10_000)
                box = w.page.locator(".results")
                # the wide table scrolls in its own box, not the page
                assert box.evaluate("b => b.scrollWidth > b.clientWidth")
                num = w.page.locator("#results td.num").first
                assert num.evaluate("td => getComputedStyle(td).textAlign") == "right"
                assert w.page.locator("#sql-history option").count() >= 2  # the query ran is remembered
                if width == 1280:
                    with w.page.expect_download() as download:
                        w.page.click("#export-csv")
                    head = Path(download.value.path()).read_text().splitlines()[0]
                    assert head.startswith("order_id,")
            if name == "pipelines":
                w.page.locator('.spark.tall[data-chart="duration"] canvas').wait_for(timeout=10_000)
            if name == "overview-pipeline":
                assert w.page.locator(".graph .node").count() == 9
                assert w.page.locator(".graph .node.gold").count() == 2
            overflow = w.page.evaluate("document.documentElement.scrollWidth - innerWidth")
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at {width}px"
            w.page.screenshot(path=str(out / f"{name}-{width}.png"), full_page=True)
        assert w.errors == [], w.errors
        w.close()
    for scheme in ("light", "dark"):
        context = browser.new_context(bypass_csp=True, color_scheme=scheme)  # for axe only
        context.add_cookies([login_cookie(d)])
        page = context.new_page()
        for path in (
            "/",
            "/pipeline-management",
            f"/runs/{run['run_id']}",
            "/data-browser",
            "/data-browser/gold.daily_revenue",
        ):
            page.goto(f"http://127.0.0.1:{d.port}{path}")
            page.locator("#live.ok").wait_for(timeout=10_000)
            if path == "/data-browser":
                page.locator("#results tbody tr").first.wait_for(timeout=10_000)
            if scheme == "dark" and path in ("/", "/pipeline-management"):
                name = "overview-pipeline" if path == "/" else "pipelines"
                page.screenshot(path=str(out / f"{name}-dark.png"), full_page=True)
            assert serious_violations(page) == [], (scheme, path)
        context.close()


def test_table_view_pages_sorts_and_filters_safely(ran: tuple[DaemonHandle, dict[str, Any]]) -> None:
    d, _ = ran

    def view(query: str) -> dict[str, Any]:
        status, _, body = get(d.port, f"/data-browser/gold.product_sales?format=json&{query}")
        assert status == 200, body
        return json.loads(body)  # type: ignore[no-any-return]

    everything = d.call("query", sql="SELECT product_id, category, units FROM gold.product_sales")["rows"]
    first = view("")
    assert first["total"] == len(everything)
    assert [c["name"] for c in first["columns"]][:3] == ["product_id", "category", "units"]
    by_units = view("_sort=units&_desc=1")
    units = [r[2] for r in by_units["rows"]]
    assert units == sorted(units, reverse=True) and units[0] == max(r[2] for r in everything)
    page2 = view("_sort=product_id&_size=5&_page=2")
    assert [r[0] for r in page2["rows"]] == sorted(r[0] for r in everything)[5:10] and page2["pages"] >= 2
    category = everything[0][1]
    only = view(f"category={quote(category)}")
    assert only["total"] == sum(1 for r in everything if r[1] == category)
    assert {r[1] for r in only["rows"]} == {category}
    found = view(f"_search={quote(everything[0][0][-3:])}")
    assert found["total"] >= 1 and any(r[0] == everything[0][0] for r in found["rows"])
    # hostile input: an unknown sort is ignored, a filter on no column refused by name, quotes are data,
    # other names are not tables
    assert view("_sort=units%3BDROP+TABLE+x")["total"] == len(everything)
    status, _, body = get(d.port, "/data-browser/gold.product_sales?format=json&units%27+OR+1%3D1--=5")
    assert status == 400 and b'no column "units\' OR 1=1--"' in body
    assert view(f"category={quote(chr(39) + ' OR 1=1 --')}")["total"] == 0
    assert get(d.port, "/data-browser/gold.product_sales%3B%20DROP%20TABLE%20x")[0] == 404
    assert get(d.port, "/data-browser/main.secrets")[0] == 404
    _, _, html = get(d.port, "/data-browser/gold.product_sales?_sort=units", {"Accept": "text/html"})
    assert b'aria-sort="ascending"' in html and b'class="num"' in html
    assert d.call("query", sql="SELECT count(*) FROM gold.product_sales")["rows"] == [[len(everything)]]


def test_pages_with_two_pipelines_of_different_shapes(daemon: DaemonHandle) -> None:
    daemon.write_config(
        "pipelines:\n  orders: {on_new_files: true}\n  trips: {on_new_files: true}\n",
        extra="warehouse: {watch_interval: 0.2s}",
    )
    daemon.start()
    daemon.call("demo_data", name="orders", orders=1000)
    wait_for(lambda: daemon.call("pipeline_runs", name="orders", limit=1), 60, "an orders run")
    daemon.call("pipeline_run", name="trips", wait=True)  # nothing landed: its tables exist, empty
    for path in ("/", "/pipeline-management", "/data-browser", "/metrics", "/health"):
        assert get(daemon.port, path, {"Accept": "text/html"})[0] == 200, path
    _, _, html = get(daemon.port, "/", {"Accept": "text/html"})
    assert html.count(b'class="node ') == 9 + 5 and b'data-step="daily"' in html
    _, _, body = get(daemon.port, "/data-browser?format=json")
    schemas = list(json.loads(body)["tables"])
    assert {"bronze", "silver", "gold", "trips_bronze", "trips_gold"} <= set(schemas)
    assert schemas.index("bronze") < schemas.index("silver") and schemas.index("trips_bronze") < schemas.index("gold")
    [table] = [t["name"] for t in json.loads(body)["tables"]["trips_gold"]][:1]
    status, _, body = get(daemon.port, f"/data-browser/trips_gold.{table}?format=json")
    assert status == 200 and json.loads(body)["total"] == 0


def test_config_page_shows_each_pipelines_yaml_and_sql(ran: tuple[DaemonHandle, dict[str, Any]]) -> None:
    d, _ = ran
    status, _, html = get(d.port, "/config", {"Accept": "text/html"})
    assert status == 200 and b"Pipeline orders" in html and b"name: orders" in html
    assert b"step 4: validate (quality)" in html and b"SELECT" in html  # a block shows the SQL it compiles to
    assert b"foss_supervisor.pipeline.worker.ledger:discover" in html or b"discover (python)" in html
    status, _, body = get(d.port, "/config?format=json")
    [orders] = json.loads(body)["pipelines"]
    assert [s["name"] for s in orders["steps"]][:4] == ["discover", "ingest", "reference", "validate"]


def test_the_table_tree_counts_rows_exactly_after_a_rebuild(ran: tuple[DaemonHandle, dict[str, Any]]) -> None:
    """Gold tables are rebuilt at every run; DuckDB's estimated sizes keep counting the deleted rows, so the
    tree shows count(*) (a newcomer saw 11,648 rows for a table of 2,912)."""
    d, _ = ran
    d.call("pipeline_run", name="orders", wait=True)
    d.call("pipeline_run", name="orders", wait=True)
    tree = json.loads(get(d.port, "/data-browser?format=json")[2])["tables"]
    for schema, items in tree.items():
        for t in items:
            [[n]] = d.call("query", sql=f'SELECT count(*) FROM "{schema}"."{t["name"]}"')["rows"]
            assert (t["rows"], t["exact"]) == (n, True), (schema, t)
