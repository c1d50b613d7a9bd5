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
