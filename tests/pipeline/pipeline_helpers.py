"""Helpers and fixtures for the pipeline tests (imported by the test modules, not a conftest.py,
so that the name "conftest" stays the top-level one): orders specs in tmp dirs, runners whose worker is reaped.

Every runner a test opens is closed by the fixture, and the worker PIDs it ever had are checked to be
gone (killed by PID if not), so no DuckDB process outlives a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil
import yaml

from foss_supervisor.pipeline.events import PipelineEvent, WorkerStarted
from foss_supervisor.pipeline.runner import PipelineRunner
from foss_supervisor.pipeline.spec import FolderOverrides, PipelineSpec, default_pipelines_dir, load_pipeline

ORDERS_YAML = default_pipelines_dir() / "orders.yaml"
REFERENCE_DIR = default_pipelines_dir().parent / "reference"

#: columns whose values legitimately differ between two runs over the same data (ids, clocks)
VOLATILE_COLUMNS = {"_batch_id", "_ingested_at", "run_id", "_run_id"}


def orders_spec(ws: dict[str, Path], *, db: Path | None = None, yaml_path: Path | None = None) -> PipelineSpec:
    """The shipped orders pipeline with every folder moved into the test workspace."""
    return load_pipeline(
        yaml_path or ORDERS_YAML,
        folders=FolderOverrides(
            landing=ws["landing"], reference=ws["reference"], warehouse=db or ws["db"], reports=ws["reports"]
        ),
    )


def variant_yaml(
    tmp_path: Path, name: str, *, step_overrides: dict[str, dict[str, Any]], extra_sql: dict[str, str] | None = None
) -> Path:
    """A copy of orders.yaml with absolute SQL and Python paths, per-step overrides, and SQL appended before
    the final metrics SELECT of chosen steps (used to make a step slow after it has written)."""
    raw = yaml.safe_load(ORDERS_YAML.read_text())
    base = ORDERS_YAML.parent
    raw["setup"] = str(base / raw["setup"])
    raw["demo_data"] = str(base / raw["demo_data"])
    for step in raw["steps"]:
        if ".py:" in step.get("callable", ""):
            step["callable"] = str(base / step["callable"])
        if "sql" in step:
            sql_path = base / step["sql"]
            step["sql"] = str(sql_path)
            if extra_sql and step["name"] in extra_sql:
                text = sql_path.read_text()
                head, sep, tail = text.rpartition("\nSELECT")
                patched = tmp_path / f"{name}_{step['name']}.sql"
                patched.write_text(head + "\n" + extra_sql[step["name"]] + "\n" + sep.lstrip("\n") + tail)
                step["sql"] = str(patched)
        step.update(step_overrides.get(step["name"], {}))
    out = tmp_path / f"{name}.yaml"
    out.write_text(yaml.safe_dump(raw))
    return out


class RunnerFactory:
    """Opens runners, records their events and worker PIDs, and tears everything down."""

    def __init__(self) -> None:
        self.runners: list[PipelineRunner] = []
        self.events: list[PipelineEvent] = []
        self.worker_pids: set[int] = set()

    def _on_event(self, event: PipelineEvent) -> None:
        self.events.append(event)
        if isinstance(event, WorkerStarted):
            self.worker_pids.add(event.pid)

    async def open(self, specs: Sequence[PipelineSpec], state_dir: Path, **kw: Any) -> PipelineRunner:
        runner = PipelineRunner(specs, state_dir=state_dir, on_event=self._on_event, **kw)
        self.runners.append(runner)
        await asyncio.wait_for(runner.start(), 30)
        return runner

    async def close(self) -> None:
        for r in self.runners:
            await asyncio.wait_for(r.aclose(), 60)
        for pid in self.worker_pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc = psutil.Process(pid)
                if proc.status() != psutil.STATUS_ZOMBIE:
                    os.kill(pid, signal.SIGKILL)
                    raise AssertionError(f"worker {pid} outlived its runner")


async def dump_tables(runner: PipelineRunner, *, skip: Callable[[str], bool] = lambda t: False) -> dict[str, list[Any]]:
    """Every table of every schema, rows sorted, volatile columns left out: a run-independent fingerprint."""
    tables = await runner.client.query(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT temporary ORDER BY 1, 2", max_rows=1000
    )
    out: dict[str, list[Any]] = {}
    for schema, table in tables.rows:
        fq = f"{schema}.{table}"
        if fq == "meta.run_reports" or skip(fq):
            continue
        cols = await runner.client.query(
            f"SELECT column_name FROM duckdb_columns() WHERE schema_name = '{schema}' AND table_name = '{table}'"
            " ORDER BY column_index",
            max_rows=1000,
        )
        keep = [
            c for (c,) in cols.rows if c not in VOLATILE_COLUMNS and not c.endswith("_run") and not c.endswith("_at")
        ]
        select = ", ".join(f'CAST("{c}" AS VARCHAR)' for c in keep)
        res = await runner.client.query(f"SELECT {select} FROM {fq} ORDER BY ALL", max_rows=100_000, timeout_s=30)
        assert not res.truncated
        out[fq] = [list(r) for r in res.rows]
    return out
