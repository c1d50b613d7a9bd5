"""Start only what the config needs (issue 17): read from real processes what they imported.

Python's ``-X importtime`` (``PYTHONPROFILEIMPORTTIME=1``) writes one line to stderr for every module a
process imports, in any thread, when it first does: the whole list of what a real daemon and its real
dashboard process loaded, with nothing of ours changed to show it. ``/proc/PID/maps`` shows the shared
libraries (DuckDB's is ``duckdb...so``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import PY, DaemonHandle, get, wait_for

SLEEPER = f"programs:\n  one: {{command: [{PY!r}, '-c', 'import time; time.sleep(600)']}}\n"
PIPELINES = "pipelines:\n  orders: {on_new_files: false, demo_data: false}\n"
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \| +([\w.]+)$", re.M)


def imported(text: str) -> set[str]:
    """The modules named by ``-X importtime`` lines in ``text`` (whole lines: a child's stderr, logged by the
    daemon as a JSON line, quotes them too)."""
    return set(IMPORT_LINE.findall(text))


def _start_profiled(daemon: DaemonHandle, config: str) -> None:
    daemon.env["PYTHONPROFILEIMPORTTIME"] = "1"  # the dashboard process inherits it: its lines go to its log
    daemon.write_config(config)
    daemon.start()


def _exercise(daemon: DaemonHandle) -> None:
    """What an operator does to a running daemon: read it, reload it, save its config unchanged."""
    assert daemon.call("status")["programs"]
    daemon.call("reload", dry_run=False)
    saved = daemon.cli("config", "save", str(daemon.config_path))
    assert saved.returncode == 0, saved.stderr
    assert daemon.cli("status").returncode == 0


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.timeout(60)
def test_a_daemon_without_pipelines_never_imports_the_pipeline_package(daemon: DaemonHandle) -> None:
    _start_profiled(daemon, SLEEPER)
    _exercise(daemon)
    assert daemon.proc is not None
    loaded = imported(daemon.stderr())
    assert {"foss_supervisor.core.supervisor", "foss_supervisor.commands.config", "asyncio"} <= loaded  # all seen
    assert sorted(m for m in loaded if m.startswith("foss_supervisor.pipeline")) == []
    assert "duckdb" not in loaded and "duckdb" not in _maps(daemon.proc.pid)
    assert sorted(m for m in loaded if m.split(".")[0] == "email") == []  # no email hook: no email package


@pytest.mark.timeout(60)
def test_a_daemon_with_pipelines_imports_the_engine_but_never_duckdb(daemon: DaemonHandle) -> None:
    """The control of the test above: the same reading sees the pipeline package once pipelines are configured,
    and DuckDB stays in the worker process (which starts on first use)."""
    _start_profiled(daemon, SLEEPER + PIPELINES)
    _exercise(daemon)
    assert daemon.proc is not None
    loaded = imported(daemon.stderr())
    assert {"foss_supervisor.pipeline.engine.service", "foss_supervisor.pipeline.engine.configcheck"} <= loaded
    for engine in ("duckdb", "deltalake", "pyarrow"):  # Delta output is the worker's too (pipeline/worker/delta.py)
        assert engine not in loaded and engine not in _maps(daemon.proc.pid), engine


@pytest.mark.timeout(60)
def test_the_dashboards_heavy_parts_load_when_first_asked_for(daemon: DaemonHandle) -> None:
    """Templates (jinja2), the Prometheus exposition (prometheus_client) and the OpenAPI description are
    imported by the request that first needs them; JSON reads and health probes never load them."""
    _start_profiled(daemon, SLEEPER)
    log = daemon.state_dir / "logs" / "@dashboard.log"

    def loaded() -> set[str]:
        return imported(log.read_text(errors="replace")) if log.exists() else set()

    for path in ("/api/v1/health", "/api/status", "/?format=json"):
        assert get(daemon.port, path).status == 200, path
    base = wait_for(lambda: "foss_supervisor.web.app" in (got := loaded()) and got, 10, "the dashboard's imports")
    heavy = {"jinja2", "prometheus_client", "foss_supervisor.web.metrics", "foss_supervisor.web.openapi"}
    assert base & heavy == set(), "loaded before anything asked for them"
    for path, module in (
        ("/metrics", "prometheus_client"),
        ("/", "jinja2"),
        ("/api/v1/openapi.json", "foss_supervisor.web.openapi"),
    ):
        assert module not in loaded()
        assert get(daemon.port, path).status == 200, path
        wait_for(lambda: module in loaded(), 10, f"{module} imported once {path} was asked for")  # noqa: B023
