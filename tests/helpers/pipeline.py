"""The pipeline tests' shared parts: the shipped orders spec moved into a test's folders, variants of it, and
:class:`RunnerFactory` (runners whose worker PIDs are checked gone after the test).

The ``workspace`` fixture (tests/conftest.py) gives the folders; ``runners`` (tests/process/pipeline/conftest.py)
the factory.
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

from foss_supervisor.pipeline.engine.runner import PipelineRunner
from foss_supervisor.pipeline.engine.spec import FolderOverrides, PipelineSpec, default_pipelines_dir, load_pipeline
from foss_supervisor.pipeline.events import PipelineEvent, WorkerStarted

__all__ = [
    "ORDERS_STEPS",
    "ORDERS_YAML",
    "QUALITY_RULES",
    "REFERENCE_DIR",
    "RERUN",
    "REUSED",
    "VOLATILE_COLUMNS",
    "RunnerFactory",
    "base_doc",
    "dedupe_pipeline",
    "dump_tables",
    "events_yaml",
    "gated_spec",
    "landing_steps",
    "orders_spec",
    "quality_pipeline",
    "two_step_pipeline",
    "variant_yaml",
    "write_yaml",
]

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
        if fq == "meta.run_reports" or fq.endswith(".step_commits") or skip(fq):  # run bookkeeping
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


# ---------------------------------------------------------------------------------- specs built by tests


def write_yaml(tmp_path: Path, doc: dict[str, object], name: str = "p.yaml") -> Path:
    """``doc`` written as YAML to ``tmp_path / name``; returns the path."""
    p = tmp_path / name
    p.write_text(yaml.safe_dump(doc))
    return p


def base_doc(tmp_path: Path) -> dict[str, object]:
    """The smallest valid pipeline document (one SQL step, ``a.sql`` written to ``tmp_path``), to be changed."""
    (tmp_path / "a.sql").write_text("SELECT 1 AS rows_in, 1 AS rows_out;")
    return {
        "name": "p",
        "folders": {"landing": "land", "reference": "ref", "warehouse": "wh/w.duckdb"},
        "steps": [{"name": "a", "sql": "a.sql"}],
    }


EVENTS_SETUP = """
CREATE SCHEMA IF NOT EXISTS events_bronze;
CREATE SCHEMA IF NOT EXISTS events_gold;
CREATE TABLE IF NOT EXISTS events_bronze.raw (
    _row_id BIGINT NOT NULL, _batch_id VARCHAR NOT NULL, _source_file VARCHAR NOT NULL,
    _source_sha256 VARCHAR NOT NULL, _source_line BIGINT NOT NULL, _ingested_at TIMESTAMPTZ NOT NULL,
    _raw_line VARCHAR, _parse_error VARCHAR, event_id VARCHAR, kind VARCHAR, amount VARCHAR
);
"""
EVENTS_SUMMARY = """
CREATE OR REPLACE TABLE events_gold.by_kind AS
SELECT kind, count(*) AS n, sum(CAST(amount AS DECIMAL(18, 2))) AS total
FROM events_bronze.raw WHERE kind IS NOT NULL GROUP BY kind;
SELECT (SELECT count(*) FROM events_bronze.raw) AS rows_in, (SELECT count(*) FROM events_gold.by_kind) AS rows_out;
"""


def gated_spec(tmp_path: Path, step: str = "gated") -> PipelineSpec:
    """One pipeline ``gated`` with one Python step ``hold`` (``pipeline_test_steps:<step>``, in tests/process/
    pipeline: the worker needs that folder on its PYTHONPATH) that writes ``tmp_path/started`` and holds until
    the test writes ``tmp_path/release``."""
    doc = {
        "name": "gated",
        "folders": {"landing": str(tmp_path), "reference": str(tmp_path), "warehouse": str(tmp_path / "wh.duckdb")},
        "steps": [
            {
                "name": "hold",
                "kind": "python",
                "callable": f"pipeline_test_steps:{step}",
                "params": {"started": str(tmp_path / "started"), "release": str(tmp_path / "release")},
            }
        ],
    }
    (tmp_path / "gated.yaml").write_text(yaml.safe_dump(doc))
    return load_pipeline(tmp_path / "gated.yaml")


def landing_steps(table: str, columns: list[str]) -> list[dict[str, Any]]:
    """The shipped ``discover`` and ``ingest`` steps of a pipeline document: the landing folder's new files
    into ``table`` (its ``columns``, in order)."""
    return [
        {"name": "discover", "kind": "python", "callable": "foss_supervisor.pipeline.worker.ledger:discover"},
        {
            "name": "ingest",
            "kind": "python",
            "callable": "foss_supervisor.pipeline.worker.ingest:ingest",
            "depends_on": ["discover"],
            "params": {"table": table, "columns": columns},
        },
    ]


def events_yaml(
    tmp_path: Path, ws: dict[str, Path], *, extra_steps: list[dict[str, Any]] | None = None, **top: Any
) -> Path:
    """A second pipeline that reuses the shipped discover and ingest steps (CSV and Parquet input)."""
    (tmp_path / "events_setup.sql").write_text(EVENTS_SETUP)
    (tmp_path / "events_summary.sql").write_text(EVENTS_SUMMARY)
    doc: dict[str, Any] = {
        "name": "events",
        "folders": {
            "landing": str(tmp_path / "events_landing"),
            "reference": str(ws["reference"]),
            "warehouse": str(ws["db"]),
        },
        "schemas": ["events_meta", "events_bronze", "events_gold"],
        "setup": "events_setup.sql",
        "patterns": ["*.csv", "*.parquet"],
        "steps": [
            *landing_steps("events_bronze.raw", ["event_id", "kind", "amount"]),
            {"name": "summarize", "sql": "events_summary.sql", "depends_on": ["ingest"]},
            *(extra_steps or []),
        ],
        **top,
    }
    (tmp_path / "events_landing").mkdir(exist_ok=True)
    path = tmp_path / "events.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


#: a quality step's rules, one of each kind
QUALITY_RULES: dict[str, Any] = {
    "source": "q_bronze.raw",
    "valid": "q_silver.ok",
    "rejected": "q_silver.bad_rejected",
    "columns": {
        "id": ["not_null", "unique"],
        "kind": [{"accepted_values": ["a", "b"]}],
        "amount": [{"accepted_range": {"min_value": 0, "max_value": 100}}],
        "code": [{"pattern": "^[A-Z]{2}$"}],
        "zone": [{"relationships": {"to": "q_ref.zones", "field": "zone"}}],
    },
    "tests": [{"name": "amount_below_limit", "expression": "try_cast(amount AS DOUBLE) <= try_cast(lim AS DOUBLE)"}],
}


def quality_pipeline(
    tmp_path: Path, ws: dict[str, Path], rules: dict[str, Any], thresholds: list[dict[str, Any]] | None = None
) -> Path:
    """A pipeline ``q`` over ``ws``'s folders: discover, ingest, then a ``quality`` step with ``rules`` (and
    ``thresholds``, when given) (a zones reference table included); returns its YAML path."""
    (ws["reference"] / "zones.csv").write_text("zone\nZ1\nZ2\n")
    (tmp_path / "setup.sql").write_text(
        "CREATE SCHEMA IF NOT EXISTS q_ref; CREATE SCHEMA IF NOT EXISTS q_silver;\n"
        "CREATE OR REPLACE TABLE q_ref.zones AS SELECT * FROM read_csv(getvariable('reference_dir') || '/zones.csv');"
    )
    doc = {
        "name": "q",
        "folders": {"landing": str(ws["landing"]), "reference": str(ws["reference"]), "warehouse": str(ws["db"])},
        "schemas": ["q_meta", "q_ref", "q_bronze", "q_silver"],
        "setup": "setup.sql",
        "steps": [
            *landing_steps("q_bronze.raw", ["id", "kind", "amount", "code", "zone", "lim"]),
            {
                "name": "check",
                "kind": "quality",
                "depends_on": ["ingest"],
                "params": rules,
                **({"thresholds": thresholds} if thresholds is not None else {}),
            },
        ],
        "checks": ["check.rows_in == check.valid + check.rejected"],
    }
    (tmp_path / "q.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return tmp_path / "q.yaml"


def dedupe_pipeline(tmp_path: Path, ws: dict[str, Path], **params: Any) -> Path:
    """A pipeline ``d`` over ``ws``'s folders: discover, ingest ``id, grp, ts, v`` into ``d_bronze.raw``, then
    a ``deduplicate`` step on ``(id, grp)``, latest ``ts`` first (``params`` replace its keys); its YAML path."""
    doc = {
        "name": "d",
        "folders": {"landing": str(ws["landing"]), "reference": str(ws["reference"]), "warehouse": str(ws["db"])},
        "schemas": ["d_meta", "d_bronze", "d_silver"],
        "setup": "setup.sql",
        "steps": [
            *landing_steps("d_bronze.raw", ["id", "grp", "ts", "v"]),
            {
                "name": "dedupe",
                "kind": "deduplicate",
                "depends_on": ["ingest"],
                "params": {
                    "source": "d_bronze.raw",
                    "target": "d_silver.current",
                    "superseded": "d_silver.old",
                    "key": ["id", "grp"],
                    "order_by": ["ts"],
                    **params,
                },
            },
        ],
        "checks": ["dedupe.rows_in + dedupe.replaced == dedupe.kept + dedupe.superseded"],
    }
    (tmp_path / "setup.sql").write_text("CREATE SCHEMA IF NOT EXISTS d_silver;")
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return tmp_path / "d.yaml"


#: the shipped orders pipeline's steps, in dependency order
ORDERS_STEPS = [
    "discover",
    "ingest",
    "reference",
    "validate",
    "quarantine",
    "deduplicate",
    "enrich",
    "aggregate",
    "report",
]
#: the orders steps a retry from ``enrich`` reuses, and those it runs again
REUSED = ORDERS_STEPS[: ORDERS_STEPS.index("enrich")]
RERUN = ORDERS_STEPS[ORDERS_STEPS.index("enrich") :]


_TWO_STEP_SETUP = (
    "CREATE SCHEMA IF NOT EXISTS s_raw;\nCREATE TABLE IF NOT EXISTS s_raw.t (id INTEGER, amount DECIMAL(10, 2));\n"
)
_TWO_STEP_GOOD = (
    "-- totals\nCREATE OR REPLACE TABLE s_raw.total AS SELECT sum(amount) AS x FROM s_raw.t;\n"
    "SELECT count(*) AS rows_in, count(*) AS rows_out, 0 AS dropped FROM s_raw.t;\n"
)


def two_step_pipeline(tmp_path: Path, step_sql: str, checks: list[str] | None = None) -> Path:
    """A pipeline ``s`` whose step ``mine`` runs ``step_sql`` after a good step, with ``checks``; its YAML path."""
    (tmp_path / "setup.sql").write_text(_TWO_STEP_SETUP)
    (tmp_path / "good.sql").write_text(_TWO_STEP_GOOD)
    (tmp_path / "step.sql").write_text(step_sql)
    doc = {
        "name": "s",
        "folders": {"landing": str(tmp_path / "land"), "reference": str(tmp_path), "warehouse": str(tmp_path / "w.db")},
        "schemas": ["s_raw"],
        "setup": "setup.sql",
        "steps": [{"name": "good", "sql": "good.sql"}, {"name": "mine", "sql": "step.sql", "depends_on": ["good"]}],
        "checks": checks or [],
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc))
    return tmp_path / "s.yaml"


#: a one-step pipeline (``count``) that writes ``{name}_gold.v``; its folders are relative to its YAML
COUNTER_YAML = """name: {name}
folders: {{landing: land, reference: ., warehouse: w.duckdb}}
schemas: [{name}_gold]
setup: {name}_setup.sql
steps:
  - {{name: count, sql: {name}_count.sql}}
"""


def counter_pipeline(tmp_path: Path, name: str, value: int = 1) -> None:
    """Pipeline ``name`` in ``tmp_path`` (``name.yaml``, its setup and step SQL): one step writing ``value``."""
    (tmp_path / f"{name}.yaml").write_text(COUNTER_YAML.format(name=name))
    (tmp_path / f"{name}_setup.sql").write_text(f"CREATE SCHEMA IF NOT EXISTS {name}_gold;")
    (tmp_path / f"{name}_count.sql").write_text(
        f"CREATE OR REPLACE TABLE {name}_gold.v AS SELECT 1 AS _row_id, {value} AS v;\n"
        "SELECT 1 AS rows_in, 1 AS rows_out;"
    )
