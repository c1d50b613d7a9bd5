"""Fixtures every tier shares: a real daemon run as a subprocess (``daemon``), and the hypothesis profile of CI.

The helpers these use are in the package ``tests/helpers/`` (test modules import them from there, never from a
conftest). The tiers: ``tests/unit`` (pure logic, virtual time, in-process servers), ``tests/process`` (real
children, signals, DuckDB), ``tests/e2e`` (daemon subprocesses, the CLI, Chromium).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# Bytecode as a normal install has it. Some machines (this one among them) set PYTHONDONTWRITEBYTECODE, so
# every daemon, CLI call and worker a test starts would compile the package from source again (its daemon
# side's imports 0.49 s -> 0.30 s here with the cache): the processes the tests start (and the xdist workers)
# write and read bytecode where Python keeps it by default, the ignored __pycache__/ folders. Not under a
# PYTHONPYCACHEPREFIX: with one, Python ignores the bytecode pip compiled into the venv at install, so on a
# clean clone every xdist worker compiled aiohttp, yaml, hypothesis, jinja2... from source again (a cold
# worker's start of tests/unit 7.6 -> 5.2 s of CPU without the prefix). This process writes its own from here on.
if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
    sys.dont_write_bytecode = False

# helpers (aiohttp, the package) is imported by the fixtures that use it, not here: under pytest-xdist the
# controller loads this file before it starts the workers and runs no test itself (0.5 s of its start)
if TYPE_CHECKING:
    from helpers import DaemonHandle


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--quick-properties",
        action="store_true",
        help="draw a quarter of each property test's examples (the first step of .ci/run; see helpers.properties)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """CI (CI=true, as .ci/run is started) runs each property test on the same examples every time, so a
    submission's verdict never depends on the draw; runs by hand keep drawing new examples. No profile has a
    deadline: an example's time is a timing assert, which failed a unit test on a machine at load 8.
    ``--quick-properties`` loads the same profile with a quarter of the examples (:mod:`helpers.properties`).

    Not in pytest-xdist's controller, which runs no test: importing hypothesis there delayed every worker's start
    (0.18 s with its bytecode, about 1 s on a clean clone, where pytest rewrites its modules first)."""
    if config.getoption("dist", "no") != "no" and config.getoption("tx", None) and not hasattr(config, "workerinput"):
        return
    with contextlib.suppress(ImportError):
        from helpers.properties import QUICK_EXAMPLES
        from hypothesis import settings

        settings.register_profile("local", deadline=None)
        settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
        base = "ci" if os.environ.get("CI") else "local"
        settings.register_profile("quick", settings.get_profile(base), max_examples=QUICK_EXAMPLES)
        settings.load_profile("quick" if config.getoption("quick_properties") else base)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonHandle]:
    """A daemon under test in ``tmp_path`` on a free port; every process it started is ended by PID after."""
    from helpers import DaemonHandle, free_port

    handle = DaemonHandle(tmp_path, free_port())
    try:
        yield handle
    finally:
        handle.cleanup()


@pytest.fixture
def workspace(tmp_path: Path) -> dict[str, Path]:
    """A pipeline's folders under ``tmp_path``: landing/, reference/ (a copy of the shipped one, so a test may
    edit it), the warehouse file's path (warehouse/wh.duckdb), state/ and reports/ (not created)."""
    from helpers.pipeline import REFERENCE_DIR

    ref = tmp_path / "reference"
    shutil.copytree(REFERENCE_DIR, ref)
    (tmp_path / "landing").mkdir()
    return {
        "landing": tmp_path / "landing",
        "reference": ref,
        "db": tmp_path / "warehouse" / "wh.duckdb",
        "state": tmp_path / "state",
        "reports": tmp_path / "reports",
    }
