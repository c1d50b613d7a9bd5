"""The soak and fault-injection suite's short profile (benchmarks/soak.py), run as CI runs it.

About a minute: 50 programs, the dashboard under load and a pipeline, through hundreds of faults.
The long profile is on demand: ``python benchmarks/soak.py --profile long``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import REPO

SOAK = REPO / "benchmarks" / "soak.py"


@pytest.mark.timeout(600)
def test_short_soak_survives_every_fault_and_loses_nothing() -> None:
    result = subprocess.run(
        [sys.executable, str(SOAK), "--profile", "short"], capture_output=True, text=True, timeout=540
    )
    report = result.stdout + result.stderr[-3000:]
    assert result.returncode == 0, report
    assert "| child_kill | 300 | 300 |" in result.stdout, report
    lost = next(line for line in result.stdout.splitlines() if line.startswith("- lost: "))
    assert all(item.endswith(": 0") for item in lost.removeprefix("- lost: ").split(", ")), report
