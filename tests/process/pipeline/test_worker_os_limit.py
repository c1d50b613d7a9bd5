"""The DuckDB worker sets its OS memory limit before anything else (a real child started like the worker)."""

from __future__ import annotations

import resource
import subprocess
import sys

from foss_supervisor.pipeline.engine.limits import (
    GiB,
)


def test_the_worker_sets_its_os_limit_before_anything_else() -> None:
    code = (
        "import resource, sys\n"
        "from foss_supervisor.pipeline.engine.limits import apply_os_memory_limit\n"
        "apply_os_memory_limit(3 * 2**30)\n"
        "apply_os_memory_limit(5 * 2**30)\n"  # never raises it again
        "print(resource.getrlimit(resource.RLIMIT_DATA))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == f"({3 * GiB}, {3 * GiB})"
    assert resource.getrlimit(resource.RLIMIT_DATA)[0] != 3 * GiB  # the test process itself is untouched
