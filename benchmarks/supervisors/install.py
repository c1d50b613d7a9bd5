"""The benchmark's own venv (supervisor, circus and foss-supervisor from PyPI and this checkout) and children."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .common import BENCH_VENV, REPO, BenchError, Env, note

__all__ = ["CHILD_SOURCE", "COMPETITOR_PACKAGES", "FLOOR_SOURCE", "ensure_bench_venv", "make_env"]

COMPETITOR_PACKAGES = ("supervisor", "circus", "psutil")

# The supervised program of every workload: it appends "NAME PID MONOTONIC_NS" to a shared file as its
# first act (so a timestamp is taken in the child, on the clock this script reads too), then idles.
CHILD_SOURCE = '''\
"""Benchmark child: append "NAME PID MONOTONIC_NS" to EVENTS at start, then idle (optionally deaf to SIGTERM)."""
import os
import signal
import sys
import time

events, name = sys.argv[1], sys.argv[2]
if "--ignore-term" in sys.argv[3:]:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
fd = os.open(events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.write(fd, ("%s %d %d\\n" % (name, os.getpid(), time.monotonic_ns())).encode())
os.close(fd)
while True:
    signal.pause()
'''

# The floor for crash-to-restart: the least an asyncio supervisor can do.
FLOOR_SOURCE = '''\
"""The floor: spawn the child, wait for it to exit, spawn it again; nothing else."""
import asyncio
import sys


async def main(argv):
    while True:
        proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL)
        await proc.wait()


asyncio.run(main(sys.argv[1:]))
'''


def ensure_bench_venv(python: Path) -> Path:
    """Create ``benchmarks/.venv-bench`` with supervisor and circus from PyPI and this checkout, or reuse it.

    It is built from the interpreter that runs foss-supervisor, so all three daemons run on the same CPython.
    Returns its ``bin`` directory; raises ``BenchError`` when an executable is missing after the install.
    """
    bin_dir = BENCH_VENV / "bin"
    bench_python = bin_dir / "python"
    if not bench_python.exists():
        note(f"creating {BENCH_VENV} from {python}")
        subprocess.run([str(python), "-m", "venv", str(BENCH_VENV)], check=True, timeout=300)
    probe = subprocess.run(
        [str(bench_python), "-c", "import supervisor, circus, psutil"], capture_output=True, timeout=120
    )
    if probe.returncode != 0:
        note(f"installing {', '.join(COMPETITOR_PACKAGES)} into {BENCH_VENV} with pip")
        subprocess.run(
            [str(bench_python), "-m", "pip", "install", "--quiet", *COMPETITOR_PACKAGES], check=True, timeout=900
        )
    # foss-supervisor too, as users install it (a regular wheel, not the repo's editable install, whose
    # import hook costs every CLI call ~25 ms), refreshed from the working tree on every run
    note(f"installing foss-supervisor from {REPO} into {BENCH_VENV} (regular install)")
    # setuptools builds in the tree's build/ and never empties it: a module moved or removed since the last build
    # would be installed still (it was: the old flat pipeline modules beside the new rooms). It is scratch.
    shutil.rmtree(REPO / "build", ignore_errors=True)
    subprocess.run([str(bench_python), "-m", "pip", "install", "--quiet", str(REPO)], check=True, timeout=900)
    subprocess.run(
        [str(bench_python), "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall", str(REPO)],
        check=True,
        timeout=900,
    )
    for exe in ("supervisord", "supervisorctl", "circusd", "circusctl", "foss-supervisor"):
        if not (bin_dir / exe).exists():
            raise BenchError(f"{bin_dir / exe} is missing after the install")
    return bin_dir


def make_env(bench_bin: Path, workroot: Path) -> Env:
    """The ``Env`` of one run: everything runs on the bench venv's interpreter; the children live in ``workroot``."""
    env = Env(
        foss_python=bench_bin / "python",
        bench_bin=bench_bin,
        workroot=workroot,
        child_script=workroot / "child.py",
        floor_script=workroot / "floor.py",
    )
    env.child_script.write_text(CHILD_SOURCE)
    env.floor_script.write_text(FLOOR_SOURCE)
    return env
