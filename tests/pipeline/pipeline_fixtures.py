"""Fixtures of the pipeline tests, registered by the test modules through ``pytest_plugins``.

They live here rather than in a conftest.py, because a second module named "conftest" would shadow
tests/conftest.py for the tests that import helpers from it.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pipeline_helpers import REFERENCE_DIR, RunnerFactory


@pytest.fixture
def workspace(tmp_path: Path) -> dict[str, Path]:
    """landing/, reference/ (a copy, so a test may edit it), warehouse/ and state/ under tmp_path."""
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


@pytest.fixture
async def runners() -> AsyncIterator[RunnerFactory]:
    factory = RunnerFactory()
    try:
        yield factory
    finally:
        await factory.close()
