# ruff: noqa: E501  (the embedded baseline script keeps its SQL on single lines)
"""Benchmark: N orders through the nine supervised steps of the declarative ``orders`` (shipped steps, a
``kind: quality`` and a ``kind: deduplicate`` block, plain SQL) vs one hand-written single-process DuckDB script.

    .venv/bin/python benchmarks/pipeline_bench.py --orders 1000000 [--orders 10000000] [--repeat 3] [--workdir DIR]

For each size it generates the demo data set (seeded, cached in the workdir), then measures
  * the pipeline: PipelineRunner start (worker spawn, DuckDB import and open) + one full run of ``orders``
    into a fresh warehouse, per step rows/s (rows_in / step time), end to end, peak RSS of this process
    (the "daemon" side) and of the worker (VmHWM);
  * the baseline: a fresh ``python -c`` process doing the same transformation with plain DuckDB in one
    connection (same line reader and parsing, same validation rules, dedup, amount, enrich, gold), with no
    worker, no IPC, no per-step transactions, no work queues, no file hashing and no run bookkeeping;
(the baseline loads the reference files inside its validate lap, and types, deduplicates and computes
amounts in one statement, shown on the deduplicate line), checks both give the same silver rows and gold
revenue, and prints the orchestration overhead = pipeline end to end / baseline end to end - 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from foss_supervisor.pipeline.engine.runner import PipelineRunner  # noqa: E402
from foss_supervisor.pipeline.engine.spec import FolderOverrides, load_pipeline  # noqa: E402

BASELINE = r'''
import json, sys, time, resource
from pathlib import Path
t0 = time.perf_counter()
import duckdb
sys.path.insert(0, sys.argv[4])
from foss_supervisor.pipeline.worker.ingest import build_ingest_sql, read_header as _read_header
landing, reference, db = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
con = duckdb.connect(db)
con.execute("SET TimeZone = 'UTC'")
COLS = ["order_id", "customer_id", "order_ts", "product_id", "quantity", "unit_price", "currency", "country", "status", "updated_at"]
timings = {}
def lap(name, t=[time.perf_counter()]):
    now = time.perf_counter(); timings[name] = round(now - t[0], 4); t[0] = now
con.execute("CREATE SCHEMA bronze; CREATE SCHEMA silver; CREATE SCHEMA gold")
con.execute("CREATE TABLE bronze.orders_raw (_row_id BIGINT, _batch_id VARCHAR, _source_file VARCHAR, _source_sha256 VARCHAR, _source_line BIGINT, _ingested_at TIMESTAMPTZ, _raw_line VARCHAR, _parse_error VARCHAR, " + ", ".join(c + " VARCHAR" for c in COLS) + ")")
lap("setup")
files = sorted(p for p in landing.iterdir() if p.suffix in (".csv", ".jsonl"))
for p in files:
    fmt = "csv" if p.suffix == ".csv" else "jsonl"
    src = ("read_csv($file, columns = {'line': 'VARCHAR'}, header = false, delim = '\x01\x02\x03\x04', quote = '', escape = '', auto_detect = false, strict_mode = false) WITH ORDINALITY AS x(line, n)")
    base = con.execute("SELECT coalesce(max(_row_id), 0) FROM bronze.orders_raw").fetchone()[0]
    con.execute(build_ingest_sql("bronze.orders_raw", COLS, fmt, _read_header(p) if fmt == "csv" else None, src),
                {"base": base, "batch": "b", "path": str(p), "sha": "-", "now": None, "file": str(p)})
lap("ingest")
con.execute(f"""
CREATE TABLE ref_products AS SELECT trim(product_id) product_id, upper(trim(product_id)) product_key, name, category FROM read_csv('{reference}/products.csv', all_varchar=true);
CREATE TABLE ref_countries AS SELECT upper(trim(country_code)) country_code, name FROM read_csv('{reference}/countries.csv', all_varchar=true);
CREATE TABLE ref_fx AS SELECT upper(trim(currency)) currency, CAST(rate_to_usd AS DECIMAL(18, 8)) rate_to_usd FROM read_csv('{reference}/fx_rates.csv', all_varchar=true);
""")
TS = r"\d{4}-\d{2}-\d{2}[T ](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,6})?)?(?:Z|[+-](?:[01]\d|2[0-3])(?::?[0-5]\d)?)?"
con.execute(f"""
CREATE TEMP TABLE v AS
SELECT *, len(reasons) = 0 AS ok FROM (
  SELECT *, CASE WHEN _parse_error IS NOT NULL THEN ['malformed_line'] ELSE list_filter([
      CASE WHEN v_order_id IS NULL THEN 'missing_order_id' END,
      CASE WHEN v_customer_id IS NULL THEN 'missing_customer_id' END,
      CASE WHEN v_product_id IS NULL THEN 'missing_product_id' END,
      CASE WHEN v_product_id IS NOT NULL AND ref_product_id IS NULL THEN 'unknown_product' END,
      CASE WHEN v_order_ts IS NULL THEN 'invalid_order_ts' END,
      CASE WHEN v_updated_at IS NULL THEN 'invalid_updated_at' END,
      CASE WHEN v_quantity IS NULL OR v_quantity <= 0 THEN 'invalid_quantity' END,
      CASE WHEN v_unit_price IS NULL THEN 'invalid_unit_price' END,
      CASE WHEN rate IS NULL THEN 'unknown_currency' END,
      CASE WHEN ref_country IS NULL THEN 'unknown_country' END,
      CASE WHEN v_status IS NULL OR v_status NOT IN ('placed','paid','shipped','cancelled','refunded') THEN 'invalid_status' END
    ], lambda x: x IS NOT NULL) END AS reasons
  FROM (
    SELECT b.*, nullif(trim(b.order_id), '') v_order_id, nullif(trim(b.customer_id), '') v_customer_id,
      nullif(trim(b.product_id), '') v_product_id,
      CASE WHEN regexp_full_match(trim(b.order_ts), '{TS}') THEN try_cast(trim(b.order_ts) AS TIMESTAMPTZ) END v_order_ts,
      CASE WHEN regexp_full_match(trim(b.updated_at), '{TS}') THEN try_cast(trim(b.updated_at) AS TIMESTAMPTZ) END v_updated_at,
      CASE WHEN regexp_full_match(trim(b.quantity), '[0-9]{{1,9}}') THEN try_cast(trim(b.quantity) AS INTEGER) END v_quantity,
      CASE WHEN regexp_full_match(trim(b.unit_price), '[0-9]{{1,12}}(?:\.[0-9]{{1,6}})?') THEN try_cast(trim(b.unit_price) AS DECIMAL(18, 6)) END v_unit_price,
      upper(trim(b.currency)) v_currency, upper(trim(b.country)) v_country, lower(trim(b.status)) v_status,
      p.product_id ref_product_id, fx.rate_to_usd rate, c.country_code ref_country
    FROM bronze.orders_raw b
    LEFT JOIN ref_products p ON p.product_key = upper(trim(b.product_id))
    LEFT JOIN ref_fx fx ON fx.currency = upper(trim(b.currency))
    LEFT JOIN ref_countries c ON c.country_code = upper(trim(b.country))))
""")
lap("validate")
con.execute("CREATE TABLE silver.orders_rejected AS SELECT _row_id, _source_file, _source_line, _raw_line, reasons, order_id, customer_id, order_ts, product_id, quantity, unit_price, currency, country, status, updated_at FROM v WHERE NOT ok")
lap("quarantine")
con.execute("""CREATE TABLE silver.orders AS SELECT v_order_id order_id, v_customer_id customer_id, v_order_ts order_ts,
  ref_product_id product_id, v_quantity quantity, v_unit_price unit_price, v_currency currency, v_country country,
  v_status status, v_updated_at updated_at, rate rate_to_usd,
  CAST(CAST(v_quantity AS DECIMAL(38, 6)) * CAST(v_unit_price AS DECIMAL(38, 6)) AS DECIMAL(38, 6)) * CAST(rate AS DECIMAL(38, 8)) amount_usd,
  _row_id, _source_file, _source_line FROM v WHERE ok
  QUALIFY row_number() OVER (PARTITION BY v_order_id ORDER BY v_updated_at DESC, _row_id DESC) = 1""")
lap("deduplicate+standardize")
con.execute("""CREATE TABLE silver.orders_enriched AS SELECT o.*, p.name product_name, p.category, c.name country_name
  FROM silver.orders o LEFT JOIN ref_products p ON p.product_id = o.product_id LEFT JOIN ref_countries c ON c.country_code = o.country""")
lap("enrich")
con.execute("""
CREATE TABLE gold.daily_revenue AS SELECT CAST(timezone('UTC', order_ts) AS DATE) AS day, country, count(*) AS orders, CAST(round(sum(amount_usd), 2) AS DECIMAL(18, 2)) revenue_usd FROM silver.orders_enriched WHERE status IN ('paid','shipped') GROUP BY ALL;
CREATE TABLE gold.product_sales AS SELECT product_id, category, sum(quantity) units, CAST(round(sum(amount_usd), 2) AS DECIMAL(18, 2)) revenue_usd FROM silver.orders_enriched WHERE status IN ('paid','shipped') GROUP BY ALL;
CREATE TABLE gold.customer_ltv AS SELECT customer_id, count(*) orders, CAST(round(sum(amount_usd), 2) AS DECIMAL(18, 2)) revenue_usd, min(order_ts) first_order_ts, max(order_ts) last_order_ts FROM silver.orders_enriched WHERE status IN ('paid','shipped') GROUP BY ALL;
""")
lap("aggregate")
rows = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ["bronze.orders_raw", "silver.orders_rejected", "silver.orders", "gold.daily_revenue"]}
revenue = float(con.execute("SELECT sum(revenue_usd) FROM gold.daily_revenue").fetchone()[0])
lap("report")
con.execute(f"COPY (SELECT * FROM bronze.orders_raw) TO '{db}.export.parquet' (FORMAT parquet, COMPRESSION zstd)")
lap("export")
Path(db + ".export.parquet").unlink()
con.close()
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"timings": timings, "rows": rows, "revenue": revenue, "inside_s": time.perf_counter() - t0, "peak_rss_mb": hwm / 1024}))
'''


DEFAULT_CONFIG = ROOT / "configs" / "pipelines" / "orders.yaml"


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run_pipeline(landing: Path, workdir: Path, config: Path) -> dict[str, object]:
    wh = workdir / "pipeline_wh"
    shutil.rmtree(wh, ignore_errors=True)
    spec = load_pipeline(
        config,
        folders=FolderOverrides(landing=landing, warehouse=wh / "wh.duckdb", reports=wh / "reports"),
    )
    t0 = time.perf_counter()
    runner = PipelineRunner([spec], state_dir=wh / "state")
    await runner.start()
    startup = runner.worker.status()["startup_s"]
    rec = await runner.run("orders")
    e2e = time.perf_counter() - t0
    pid = runner.worker.pid
    worker_peak = vm_hwm_mb(pid) if pid else float("nan")
    revenue = float((await runner.client.query("SELECT sum(revenue_usd) FROM gold.daily_revenue")).rows[0][0])
    silver = (await runner.client.query("SELECT count(*) FROM silver.orders")).rows[0][0]
    t_export = time.perf_counter()
    exported = await runner.client.export("bronze.orders_raw", "parquet")  # what `foss-supervisor export` does
    export_s = time.perf_counter() - t_export
    Path(exported["path"]).unlink()
    await runner.aclose()
    return {
        "status": rec.status.value,
        "e2e_s": e2e,
        "run_s": rec.duration_s,
        "worker_startup_s": startup,
        "steps": [(s.name, s.rows_in, s.duration_s) for s in rec.steps],
        "worker_peak_mb": worker_peak,
        "daemon_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "revenue": revenue,
        "silver": silver,
        "export_s": export_s,
        "export_rows": exported["rows"],
    }


def run_baseline(landing: Path, reference: Path, workdir: Path) -> dict[str, object]:
    db = workdir / "baseline.duckdb"
    for p in (db, db.with_suffix(".duckdb.wal")):
        p.unlink(missing_ok=True)
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", BASELINE, str(landing), str(reference), str(db), str(ROOT)],
        check=False,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    e2e = time.perf_counter() - t0
    if out.returncode:
        raise SystemExit(f"baseline failed:\n{out.stderr[-3000:]}")
    res: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    res["e2e_s"] = e2e
    return res


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def bench(n: int, workdir: Path, repeat: int = 1, config: Path = DEFAULT_CONFIG) -> None:
    landing = workdir / f"landing_{n}"
    marker = landing / ".complete"
    if not marker.exists():
        shutil.rmtree(landing, ignore_errors=True)
        t = time.perf_counter()
        # in a child process, so this process's peak RSS stays the runner's (the daemon side)
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "configs" / "pipelines" / "orders" / "demo_data.py"),
                "--landing",
                str(landing),
                "--orders",
                str(n),
                "--files",
                str(max(8, n // 125_000)),
            ],
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        marker.write_text("ok")
        print(f"generated {n:,} orders in {time.perf_counter() - t:.1f} s")
    lines = sum(1 for p in landing.iterdir() if not p.name.startswith(".") for _ in p.open("rb")) - sum(
        1 for p in landing.glob("*.csv")
    )
    reference = ROOT / "configs" / "reference"

    # Alternate baseline and pipeline (A/B/A/B...) so a busy neighbour skews both alike; report medians.
    bases: list[dict[str, object]] = []
    pipes: list[dict[str, object]] = []
    for i in range(repeat):
        load = Path("/proc/loadavg").read_text().split()[0]
        bases.append(run_baseline(landing, reference, workdir))
        pipes.append(asyncio.run(run_pipeline(landing, workdir, config)))
        pipe, base = pipes[-1], bases[-1]
        assert pipe["status"] == "succeeded", pipe
        assert abs(float(pipe["revenue"]) - float(base["revenue"])) < 0.01, (pipe["revenue"], base["revenue"])  # type: ignore[arg-type]
        assert pipe["silver"] == base["rows"]["silver.orders"], (pipe["silver"], base["rows"])  # type: ignore[index]
        e2e_p, e2e_b = float(pipe["e2e_s"]), float(base["e2e_s"])  # type: ignore[arg-type]
        print(
            f"round {i + 1}/{repeat} (load {load}): baseline {e2e_b:.2f} s, pipeline {e2e_p:.2f} s, "
            f"overhead {(e2e_p / e2e_b - 1) * 100:+.1f} %",
            flush=True,
        )

    print(f"\n=== {n:,} orders ({lines:,} data lines), medians of {repeat} alternating round(s) ===")
    print(f"{'step':<12} {'rows in':>10} {'pipeline s':>11} {'rows/s':>12} {'baseline s':>11}")
    for k, (name, rows_in, _) in enumerate(pipes[0]["steps"]):  # type: ignore[arg-type]
        dur = _median([float(p["steps"][k][2] or 0.0) for p in pipes])  # type: ignore[index]
        key = "deduplicate+standardize" if name == "deduplicate" else name
        b = _median([float(x["timings"].get(key, 0.0)) for x in bases])  # type: ignore[attr-defined]
        rate = f"{rows_in / dur:,.0f}" if rows_in and dur else "-"
        print(f"{name:<12} {rows_in or 0:>10,} {dur:>11.3f} {rate:>12} {b:>11.3f}")
    e2e_p = _median([float(p["e2e_s"]) for p in pipes])  # type: ignore[arg-type]
    e2e_b = _median([float(b["e2e_s"]) for b in bases])  # type: ignore[arg-type]
    print(f"worker startup (spawn -> ready): {_median([float(p['worker_startup_s']) for p in pipes]):.3f} s")  # type: ignore[arg-type]
    print(
        f"pipeline end to end: {e2e_p:.2f} s ({lines / e2e_p:,.0f} lines/s); "
        f"run alone {_median([float(p['run_s']) for p in pipes]):.2f} s"
    )  # type: ignore[arg-type]
    print(f"baseline end to end: {e2e_b:.2f} s ({lines / e2e_b:,.0f} lines/s)")
    print(
        f"peak RSS (max over rounds): daemon side {max(float(p['daemon_peak_mb']) for p in pipes):.0f} MB, "  # type: ignore[arg-type]
        f"worker {max(float(p['worker_peak_mb']) for p in pipes):.0f} MB, "  # type: ignore[arg-type]
        f"baseline {max(float(b['peak_rss_mb']) for b in bases):.0f} MB"
    )  # type: ignore[arg-type]
    print(f"orchestration overhead (median e2e): {(e2e_p / e2e_b - 1) * 100:+.1f} %")
    exp_p = _median([float(p["export_s"]) for p in pipes])  # type: ignore[arg-type]
    exp_b = _median([float(b["timings"]["export"]) for b in bases])  # type: ignore[index]
    print(
        f"export bronze.orders_raw ({pipes[0]['export_rows']:,} rows) as Parquet: {exp_p:.2f} s through the "
        f"worker vs {exp_b:.2f} s for DuckDB's own COPY ({exp_b / exp_p:.0%} of COPY's speed)"
    )
    pipe, base = pipes[-1], bases[-1]
    print(
        f"silver.orders {pipe['silver']:,}, gold revenue {pipe['revenue']:,.2f} USD (baseline {base['revenue']:,.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, action="append", help="repeatable; default 1000000")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="pipeline YAML (default: orders)")
    parser.add_argument("--repeat", type=int, default=1, help="alternating baseline/pipeline rounds; medians")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.gettempdir()) / "foss_pipeline_bench"
    workdir.mkdir(parents=True, exist_ok=True)
    for n in args.orders or [1_000_000]:
        bench(n, workdir, args.repeat, args.config)


if __name__ == "__main__":
    main()
