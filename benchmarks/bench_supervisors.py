#!/usr/bin/env python3
"""Benchmark foss-supervisor against supervisord and circus on the same workloads, side by side in one run.

    .venv/bin/python benchmarks/bench_supervisors.py              # full run
    .venv/bin/python benchmarks/bench_supervisors.py --quick      # fewer repetitions
    .venv/bin/python benchmarks/bench_supervisors.py --only fleet --only crash

The work is done by the ``supervisors`` package beside this script; ``benchmarks/README.md`` says what each
workload measures and why the comparison is fair.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the package beside this script, wherever run from

from supervisors.main import main

if __name__ == "__main__":
    raise SystemExit(main())
