"""A reload's SQL check against a real daemon (reloadcheck.py): user code that exits at import is refused
without touching the worker, and the config editor's Check says what the real save says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest
from helpers import DaemonHandle
from helpers.pipeline import counter_pipeline

from foss_supervisor.errors import ConfigRefused

PY_YAML = """name: {name}
folders: {{landing: land, reference: ., warehouse: w.duckdb}}
schemas: [{name}_meta]
steps:
  - name: go
    kind: python
    callable: "{name}.py:f"
"""

STEP = "def f(ctx):\n    return {'rows_in': 0, 'rows_out': 0}\n"


def python_pipeline(tmp_path: Path, name: str, module: str) -> None:
    (tmp_path / f"{name}.yaml").write_text(PY_YAML.format(name=name))
    (tmp_path / f"{name}.py").write_text(module)


def start_with_one(d: DaemonHandle, tmp_path: Path) -> str:
    """Start the daemon with the counter pipeline ``one`` (run by hand); returns its ``pipelines:`` text."""
    counter_pipeline(tmp_path, "one")
    (tmp_path / "land").mkdir()
    base = f"pipelines:\n  one: {{file: {tmp_path}/one.yaml, on_new_files: false}}\n"
    d.write_config(base)
    d.start()
    return base


def test_a_reload_refuses_user_code_that_exits_at_import_and_the_worker_stays(
    daemon: DaemonHandle, tmp_path: Path
) -> None:
    d = daemon
    base = start_with_one(d, tmp_path)
    assert d.call("pipeline_run", name="one", wait=True)["status"] == "succeeded"

    def worker_pid() -> int:
        status = cast(dict[str, Any], json.loads(d.cli("status", "--json").stdout))
        return int(status["pipelines"]["worker"]["pid"])

    pid = worker_pid()
    python_pipeline(tmp_path, "dies", f"import os\nos._exit(0)\n{STEP}")
    d.write_config(base + f"  dies: {{file: {tmp_path}/dies.yaml, on_new_files: false}}\n")
    for args in (("reload", "--dry-run"), ("reload",)):
        refused = d.cli(*args)
        assert refused.returncode == 2, refused.stdout + refused.stderr  # a refused config, as documented
        assert "pipelines refused, the running ones stay: the SQL check of pipeline dies ended" in refused.stderr
    assert worker_pid() == pid and [p["name"] for p in d.call("pipelines")] == ["one"]
    assert d.call("pipeline_run", name="one", wait=True)["status"] == "succeeded"

    python_pipeline(tmp_path, "quits", f"raise SystemExit(3)\n{STEP}")
    quits = base + f"  quits: {{file: {tmp_path}/quits.yaml, on_new_files: false}}\n"
    d.write_config(quits)
    refused = d.cli("reload")
    assert refused.returncode == 2
    assert f"quits: step go: {tmp_path / 'quits.yaml'}:5: cannot import" in refused.stderr
    assert "SystemExit: 3" in refused.stderr
    d.write_config(base)


def test_the_config_editors_check_lists_and_refuses_pipelines_as_the_save_does(
    daemon: DaemonHandle, tmp_path: Path
) -> None:
    d = daemon
    base = start_with_one(d, tmp_path)
    head = d.config_path.read_text().split("pipelines:")[0]

    counter_pipeline(tmp_path, "two")
    added = head + base + f"  two: {{file: {tmp_path}/two.yaml, on_new_files: false}}\n"
    check = d.call("config_write", text=added, dry_run=True, allow_empty=False)
    assert check["plan"]["pipelines"]["added"] == ["two"] and check["plan"]["pipelines"]["unchanged"] == ["one"]
    assert [p["name"] for p in d.call("pipelines")] == ["one"]  # a Check changes nothing

    python_pipeline(tmp_path, "quits", f"raise SystemExit(3)\n{STEP}")
    bad = head + base + f"  quits: {{file: {tmp_path}/quits.yaml, on_new_files: false}}\n"
    with pytest.raises(ConfigRefused, match=r"quits: step go: .*SystemExit: 3"):
        d.call("config_write", text=bad, dry_run=True, allow_empty=False)
    (tmp_path / "bad.yaml").write_text(bad)
    for extra in (("--dry-run",), ()):
        saved = d.cli("config", "save", str(tmp_path / "bad.yaml"), *extra)
        assert saved.returncode == 2 and "quits: step go:" in saved.stderr, saved.stdout + saved.stderr
    assert "quits" not in d.config_path.read_text()  # the refused save put the file back
