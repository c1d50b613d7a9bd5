"""The real CLI at its duration options: a bad ``--wait`` is a usage error (exit 2), never a traceback (the
class of inputs: tests/unit/test_cli_durations.py)."""

from __future__ import annotations

import subprocess

import pytest
from helpers import PY


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_the_cli_says_usage_for_a_bad_wait_never_a_traceback(value: str) -> None:
    result = subprocess.run(
        [PY, "-m", "foss_supervisor", "ctl", "restart", "web", f"--wait={value}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr and "--wait" in result.stderr
