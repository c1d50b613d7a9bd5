"""``foss-supervisor pipeline validate`` exits 0 on a clean pipeline and 2 (with the file and line) on a bad one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers.pipeline import two_step_pipeline


def test_cli_validate_exits_0_or_2(tmp_path: Path) -> None:
    ok = two_step_pipeline(tmp_path, "SELECT 1 AS rows_in, 1 AS rows_out;")
    run = [sys.executable, "-m", "foss_supervisor", "pipeline", "validate"]
    out = subprocess.run([*run, str(ok)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "0 problem(s)" in out.stdout, out.stdout + out.stderr
    bad = two_step_pipeline(tmp_path, "SELECT missing AS rows_in, 1 AS rows_out;")
    out = subprocess.run([*run, str(bad)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and f"{tmp_path / 'step.sql'}:1" in out.stdout and "1 problem(s)" in out.stderr


def test_cli_validate_is_no_pass_when_a_step_module_exits_at_import(tmp_path: Path) -> None:
    """The check runs in a child of its own: a module's ``os._exit(0)`` at import ends that child, not the
    command with exit 0 and no output (it did, validate ran in the CLI's own process)."""
    (tmp_path / "quits.py").write_text("import os\nos._exit(0)\ndef f(ctx):\n    return {}\n")
    (tmp_path / "q.yaml").write_text(
        "name: q\nfolders: {landing: land, reference: ., warehouse: w.duckdb}\nschemas: [q_meta]\nsteps:\n"
        "  - {name: go, kind: python, callable: 'quits.py:f'}\n"
    )
    run = [sys.executable, "-m", "foss_supervisor", "pipeline", "validate", str(tmp_path / "q.yaml")]
    out = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "the SQL check of pipeline q ended (exit code 0) without a reply" in out.stderr
