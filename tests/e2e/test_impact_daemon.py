"""Impact before a change on a real daemon and pipeline worker: a breaking column change is refused with its
consumers named (``reload --dry-run``, a real reload, the config editor's Check and save), the running config
stays; a compatible change lists the changed step and every table downstream that would be rebuilt."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from helpers import REPO, DaemonHandle, command, wait_for
from helpers.browser import Watched, shots_dir

ENRICH_CATEGORY = "p.category AS category, "


def _host(daemon: DaemonHandle) -> Path:
    """Both shipped pipelines from a copy of their files (the test edits them), a contract on trips' gold."""
    files = daemon.tmp / "pipelines"
    shutil.copytree(REPO / "configs" / "pipelines", files)
    daemon.write_config(
        f"""
programs:
  api: {{command: "sleep 1000"}}
pipelines:
  orders: {{file: {files / "orders.yaml"}, demo_data: false, on_new_files: false}}
  trips: {{file: {files / "trips.yaml"}, demo_data: false, on_new_files: false}}
tables:
  trips_gold.daily_zone:
    contract: {{day: DATE, fare: "DECIMAL(18, 2)", distance_km: "DECIMAL(18, 3)"}}
""",
        extra=f"data_dir: {daemon.tmp / 'data'}",
    )
    return files


def _edit(path: Path, old: str, new: str) -> str:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))
    return text


def _enrich_sql(daemon: DaemonHandle) -> str:
    reply = command(daemon.port, "pipeline_sources", {"name": "orders"})
    assert reply.status == 200, reply.body
    return str(next(s["sql"] for s in json.loads(reply.body)["result"]["steps"] if s["name"] == "enrich"))


def test_a_breaking_column_change_is_refused_with_its_consumers_named(daemon: DaemonHandle) -> None:
    files = _host(daemon)
    daemon.start()
    wait_for(lambda: daemon.program("api")["state"] == "RUNNING", 30, "api RUNNING")
    graph = json.loads(daemon.cli("graph").stdout)  # the running lineage is read (and kept) before any edit
    nodes = {n["id"]: n for n in graph["nodes"]}
    columns = {c["name"]: c for c in nodes["table:gold.daily_revenue"]["detail"]["columns"]}
    assert columns["revenue_usd"]["from"] == ["silver.orders_enriched.amount_usd"]

    # silver drops a column gold reads: refused by the dry run and by the reload, naming file, step and reader
    enrich = files / "orders" / "enrich.sql"
    original = _edit(enrich, ENRICH_CATEGORY, "")
    for argv in (("reload", "--dry-run"), ("reload",)):
        refused = daemon.cli(*argv)
        said = refused.stdout + refused.stderr
        assert refused.returncode == 2, said
        assert "step orders/enrich" in said and str(enrich) in said, said
        assert "no longer produces silver.orders_enriched.category" in said and "step orders/aggregate" in said, said
    assert ENRICH_CATEGORY in _enrich_sql(daemon)  # the running config stays
    status = json.loads(daemon.cli("status", "--json").stdout)
    assert any("last reload refused" in w for w in status["daemon"]["warnings"]), status["daemon"]

    # the config editor's Check (a dry run of a save) refuses it the same way, and a save changes nothing
    text = daemon.config_path.read_text()
    checked = command(daemon.port, "config_write", {"text": text, "dry_run": True})
    assert checked.status != 200 and b"step orders/aggregate" in checked.body, checked.body
    saved = command(daemon.port, "config_write", {"text": text + "\n# touched\n", "dry_run": False})
    assert saved.status != 200 and b"no longer produces silver.orders_enriched.category" in saved.body
    assert daemon.config_path.read_text() == text  # put back

    # a contract names the consumer no step is: trips' gold loses distance_km, then retypes fare
    enrich.write_text(original)
    daily = files / "trips" / "daily.sql"
    daily_sql = _edit(daily, ", CAST(sum(distance_km) AS DECIMAL(18, 3)) AS distance_km", "")
    refused = daemon.cli("reload", "--dry-run")
    said = refused.stdout + refused.stderr
    assert refused.returncode == 2 and "no longer produces trips_gold.daily_zone.distance_km" in said, said
    assert "contract tables.trips_gold.daily_zone.contract.distance_km (DECIMAL(18, 3))" in said, said
    daily.write_text(daily_sql)
    _edit(daily, "CAST(sum(fare) AS DECIMAL(18, 2)) AS fare", "CAST(sum(fare) AS DOUBLE) AS fare")
    refused = daemon.cli("reload", "--dry-run")
    said = refused.stdout + refused.stderr
    assert (
        refused.returncode == 2 and "changes the type (DECIMAL(18,2) -> DOUBLE) of trips_gold.daily_zone.fare" in said
    )
    daily.write_text(daily_sql)
    # a type only DuckDB knows (sum of a DECIMAL(10, 3)): bound against the warehouse once trips' tables exist
    run = daemon.call("pipeline_run", name="trips", wait=True)
    assert run["status"] in ("succeeded", "succeeded_with_warnings"), run
    _edit(daily, "CAST(sum(distance_km) AS DECIMAL(18, 3)) AS distance_km", "sum(distance_km) AS distance_km")
    refused = daemon.cli("reload", "--dry-run")
    said = refused.stdout + refused.stderr
    assert refused.returncode == 2, said
    assert "changes the type (DECIMAL(18,3) -> DECIMAL(38,3)) of trips_gold.daily_zone.distance_km" in said, said
    daily.write_text(daily_sql)

    # a compatible change: the changed step and every table downstream, in the dry run and the editor's Check
    _edit(enrich, ENRICH_CATEGORY, ENRICH_CATEGORY + "upper(o.currency) AS currency_code, ")
    planned = daemon.cli("reload", "--dry-run")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "pipeline orders: changed enrich" in planned.stdout, planned.stdout
    rebuilt = "silver.orders_enriched, gold.customer_ltv, gold.daily_revenue, gold.product_sales"
    line = next(x for x in planned.stdout.splitlines() if x.strip().startswith("rebuilds:"))
    assert set(line.split(":", 1)[1].strip().split(", ")) == set(rebuilt.split(", ")), line
    checked = command(daemon.port, "config_write", {"text": text, "dry_run": True})
    assert checked.status == 200, checked.body
    impact = json.loads(checked.body)["result"]["plan"]["impact"]
    assert impact["breaking"] == [] and impact["pipelines"]["orders"]["changed_steps"] == ["enrich"]
    assert set(impact["pipelines"]["orders"]["downstream_tables"]) == set(rebuilt.split(", "))
    applied = daemon.cli("reload")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "currency_code" in _enrich_sql(daemon)

    # a contract the SQL does not keep is a warning of the Check (a declaration is no change of data)
    wrong = daemon.config_path.read_text() + "  gold.daily_revenue:\n    contract: {revenue_usd: DOUBLE}\n"
    checked = command(daemon.port, "config_write", {"text": wrong, "dry_run": True})
    assert checked.status == 200, checked.body
    [gap] = json.loads(checked.body)["result"]["plan"]["impact"]["contracts"]
    assert (gap["table"], gap["column"], gap["problem"]) == (
        "gold.daily_revenue",
        "revenue_usd",
        "the SQL makes it DECIMAL(18,2)",
    )


def test_the_config_editors_check_lists_the_impact_and_shows_the_refusal_in_chromium(
    daemon: DaemonHandle, browser: Any, tmp_path: Path
) -> None:
    files = _host(daemon)
    daemon.start()
    wait_for(lambda: daemon.program("api")["state"] == "RUNNING", 30, "api RUNNING")
    assert daemon.cli("graph").returncode == 0  # the running lineage, read before the edit
    enrich = files / "orders" / "enrich.sql"
    _edit(enrich, ENRICH_CATEGORY, ENRICH_CATEGORY + "upper(o.currency) AS currency_code, ")
    w = Watched(browser, session=daemon)
    try:
        w.page.goto(f"http://127.0.0.1:{daemon.port}/config")
        wait_for(lambda: "trips_gold.daily_zone" in w.page.input_value("#config-text"), 10, "the file loaded")
        w.page.click("#config-check")
        item = w.page.locator("#config-impact li", has_text="Pipeline orders: SQL changed in enrich")
        item.wait_for(timeout=20_000)
        said = item.inner_text()
        for table in ("silver.orders_enriched", "gold.daily_revenue", "gold.product_sales", "gold.customer_ltv"):
            assert table in said, said
        w.page.screenshot(path=str(shots_dir(tmp_path) / "config-check-impact-1280.png"), full_page=True)
        # a breaking edit: the Check is refused in the page, naming the reader; the list goes
        _edit(enrich, ENRICH_CATEGORY, "")
        w.page.click("#config-check")
        refused = w.page.locator("#config-out.bad", has_text="which step orders/aggregate uses")
        refused.wait_for(timeout=20_000)
        assert "no longer produces silver.orders_enriched.category" in refused.inner_text()
        assert w.page.locator("#config-impact").is_hidden()
        unexpected = [e for e in w.errors if "status of 409" not in e]  # the refused Check's own reply
        assert unexpected == [], unexpected
    finally:
        w.close()
