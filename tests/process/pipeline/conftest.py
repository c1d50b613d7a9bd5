"""The ``runners`` fixture of the pipeline engine's tests: runners whose DuckDB worker is reaped.

Every runner a test opens is closed after it, and the worker PIDs it ever had are checked to be gone
(killed by PID if not), so no DuckDB process outlives a test. ``workspace`` is in tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from helpers.pipeline import RunnerFactory


@pytest.fixture
async def runners() -> AsyncIterator[RunnerFactory]:
    """Opens runners (``await runners.open(specs, state_dir)``), records their events, closes them all after."""
    factory = RunnerFactory()
    try:
        yield factory
    finally:
        await factory.close()
