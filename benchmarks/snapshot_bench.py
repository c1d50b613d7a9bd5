"""Benchmark: what run snapshots cost on the shipped ``orders`` pipeline (issue 18), and how long a diff and a
rollback of two such runs take.

    .venv/bin/python benchmarks/snapshot_bench.py --orders 1000000 [--workdir DIR]

It generates ``--orders`` orders (seeded) into a fresh landing folder and runs ``orders`` (publishing its
gold schema), then times keeping that run's snapshot once more, alone (``PipelineRunner.keep_snapshot``,
what the run did at its end: the worker's read-only transaction writing every layer table to zstd Parquet,
gold hard-linked from the published files, a table that only grew since the previous snapshot as that
snapshot's files hard-linked plus its new rows, each file's statistics, the manifest, ``_SUCCESS`` and
the rename). Then a second batch of a tenth as many orders lands and runs, is snapshotted the same way,
and the diff of the two runs (three times: the median, and each table's diff alone) and a rollback to the
first are timed. With ``--updates`` the second batch re-sends orders of the first (its order ids with
other versions), so the run replaces rows of ``silver.orders``: the case a snapshot cannot keep by
reference for that table and what is derived from it. Prints one JSON object: seconds and bytes per
snapshot (data files written, and ``bytes_hashes``: its new row hashes files, snapshothashes.py), the
warehouse file's size for scale, and the run's own time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from foss_supervisor.pipeline.engine.runner import PipelineRunner  # noqa: E402
from foss_supervisor.pipeline.engine.spec import FolderOverrides, default_pipelines_dir, load_pipeline  # noqa: E402
from foss_supervisor.pipeline.worker.callables import load_callable  # noqa: E402


def spec_in(work: Path) -> Any:
    """The shipped orders pipeline with absolute paths, publishing gold, keeping 5 snapshots."""
    shipped = default_pipelines_dir() / "orders.yaml"
    raw = yaml.safe_load(shipped.read_text())
    raw["setup"] = str(shipped.parent / raw["setup"])
    raw["demo_data"] = str(shipped.parent / raw["demo_data"])
    for step in raw["steps"]:
        if ".py:" in step.get("callable", ""):
            step["callable"] = str(shipped.parent / step["callable"])
        if "sql" in step:
            step["sql"] = str(shipped.parent / step["sql"])
    raw.update(publish=["gold"], snapshot_keep=5)
    path = work / "orders.yaml"
    path.write_text(yaml.safe_dump(raw))
    folders = FolderOverrides(
        landing=work / "landing",
        reference=default_pipelines_dir().parent / "reference",
        warehouse=work / "warehouse" / "wh.duckdb",
        reports=work / "reports",
    )
    return load_pipeline(path, folders=folders)


async def snapshot(runner: PipelineRunner, spec: Any, run_id: str) -> dict[str, Any]:
    """Keep ``run_id``'s snapshot again, timed: the same work its run did at its end (the copy replaces it)."""
    t0 = time.perf_counter()
    warning, note = await runner.keep_snapshot(spec, run_id)
    took = time.perf_counter() - t0
    assert warning is None and note is None, (warning, note)
    manifest = json.loads((runner.snapshot_folder("orders") / run_id / "_manifest.json").read_text())
    tables = manifest["tables"].values()
    files = [f for t in tables for f in t["files"]]
    return {
        "seconds": round(took, 3),
        "bytes_written": sum(t["bytes"] for t in tables),
        "bytes_hashes": new_hashes_bytes(runner.snapshot_folder("orders"), run_id),
        "bytes_linked": sum(f["bytes"] for f in files if f["linked"]),
        "by_reference": sorted(t for t, e in manifest["tables"].items() if len(e["files"]) > 1 or e["linked"]),
        "tables": len(tables),
        "files": len(files),
        "rows": sum(t["rows"] for t in tables),
    }


def new_hashes_bytes(folder: Path, run_id: str) -> int:
    """Bytes of ``run_id``'s row hashes files (snapshothashes.py) that no other snapshot links: what keeping
    them added to this snapshot, beside its data files' ``bytes_written``."""
    from foss_supervisor.pipeline.worker.snapshotstats import HASHES

    others = {
        (p.stat().st_dev, p.stat().st_ino) for p in folder.glob(f"*/{HASHES}/*") if p.parent.parent.name != run_id
    }
    mine = [p.stat() for p in (folder / run_id / HASHES).glob("*")]
    return sum(st.st_size for st in mine if (st.st_dev, st.st_ino) not in others)


def diff_by_table(folder: Path, run_a: str, run_b: str) -> dict[str, float]:
    """Each table's diff alone (worker.diff.diff_tables in this process, DuckDB on every core): where the
    diff's time goes."""
    import duckdb

    from foss_supervisor.pipeline.engine.snapshots import load_snapshot
    from foss_supervisor.pipeline.worker.diff import diff_tables

    a, b = load_snapshot(folder, run_a)["tables"], load_snapshot(folder, run_b)["tables"]
    con = duckdb.connect()
    out = {}
    try:
        for table in sorted({*a, *b}):
            message = {"a": {"tables": {table: a[table]} if table in a else {}}, "timeout_s": 600}
            message["b"] = {"tables": {table: b[table]} if table in b else {}}
            t0 = time.perf_counter()
            diff_tables(con.cursor(), message, snapshot_dir=folder.parent, max_bytes=1 << 24)
            out[table] = round(time.perf_counter() - t0, 3)
    finally:
        con.close()
    return out


async def main(orders: int, work: Path, updates: bool = False) -> dict[str, Any]:
    generate = load_callable(f"{default_pipelines_dir() / 'orders' / 'demo_data.py'}:generate")
    (work / "landing").mkdir(parents=True)
    spec = spec_in(work)
    out: dict[str, Any] = {"orders": orders, "updates": updates}
    async with PipelineRunner([spec], state_dir=work / "state") as runner:
        runs = []
        second = "first" if updates else "second"  # the first batch's order ids again: new versions of them
        for label, n, seed, prefix in (("first", orders, 1, "first"), ("second", max(orders // 10, 1), 2, second)):
            generate(work / "landing", orders=n, seed=seed, prefix=prefix)
            t0 = time.perf_counter()
            rec = await runner.run("orders")
            assert rec.status.value == "succeeded", rec.to_dict()
            out[f"{label}_run_s"] = round(time.perf_counter() - t0, 3)
            out[f"{label}_snapshot"] = await snapshot(runner, spec, rec.run_id)
            runs.append(rec.run_id)
        wh = spec.folders.warehouse
        out["warehouse_bytes"] = sum(p.stat().st_size for p in wh.parent.glob(wh.name + "*"))  # with its WAL
        took = []
        for _ in range(3):
            t0 = time.perf_counter()
            diff = await runner.diff(runs[0], runs[1], timeout_s=600)
            took.append(time.perf_counter() - t0)
        out["diff_s"] = round(statistics.median(took), 3)
        out["diff_s_all"] = [round(t, 3) for t in took]
        out["diff_by_table_s"] = diff_by_table(runner.snapshot_folder("orders"), runs[0], runs[1])
        out["diff_silver_orders"] = {
            k: v
            for k, v in next(t for t in diff["tables"] if t["table"] == "silver.orders").items()
            if k in ("added", "removed", "changed", "rows_a", "rows_b")
        }
        t0 = time.perf_counter()
        done = await runner.rollback("orders", runs[0], apply=True)
        out["rollback_s"] = round(time.perf_counter() - t0, 3)
        out["rollback_rows"] = sum(t["rows"] for t in done["tables"])
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, help="where to work (default: a temporary folder, removed)")
    parser.add_argument(
        "--updates", action="store_true", help="the second batch re-sends orders of the first (silver rows replaced)"
    )
    args = parser.parse_args()
    if args.workdir:
        print(json.dumps(asyncio.run(main(args.orders, args.workdir, args.updates)), indent=1))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(asyncio.run(main(args.orders, Path(tmp), args.updates)), indent=1))
