"""What the CLI's fast path loads, asked of a fresh interpreter (a child process: the unit tier starts none).

``foss-supervisor status`` imports the control client, which encodes with the one JSON converter
(base/jsonable.py); the converter's kinds are looked up by name, never imported, so the client loads none of
the heavy modules below.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "foss_supervisor"


def test_the_converter_loads_nothing_for_the_clis_fast_path() -> None:
    """``foss-supervisor status`` imports the control client, which encodes with the converter: it must not pull
    in dataclasses, decimal, datetime, uuid, pathlib or typing (the kinds are looked up, never imported). Run
    without ``site`` (``-S``), whose path hooks would load some of these themselves."""
    heavy = ("dataclasses", "decimal", "datetime", "uuid", "pathlib", "typing", "argparse", "hashlib")
    code = f"import sys; import foss_supervisor.control.client; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    out = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60, check=True, env=env
    )
    assert out.stdout.strip() == "[]"
