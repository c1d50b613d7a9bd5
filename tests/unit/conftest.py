"""Fixtures of the unit tier beyond those every tier shares (tests/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def dispatched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the commands the core ran, in order, by any path (the real ``dispatch``, counted)."""
    from foss_supervisor.commands import registry as commands_module  # here: the xdist controller runs no test

    seen: list[str] = []
    real = commands_module.dispatch

    async def counting(ctx: Any, name: str, args: Any) -> Any:
        seen.append(name)
        return await real(ctx, name, args)

    monkeypatch.setattr(commands_module, "dispatch", counting)
    return seen
