"""The parts of the dashboard open without a token: the config's ``dashboard.public``, followed live.

The web app reads the list through the command surface when it starts (``config_show``) and again after
every reload, so it needs no argument of its own and works the same in any process that serves it.
Until the first read answers, and whenever a read fails, nothing is public: a failure closes, never opens.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import structlog
from aiohttp import web

from foss_supervisor.core.events import ConfigReloaded, DaemonStateChanged
from foss_supervisor.errors import SupervisorError
from foss_supervisor.web.core import Core

__all__ = ["REFRESH_EVENTS", "PublicParts"]

log = structlog.get_logger("foss_supervisor.web")

REFRESH_EVENTS = frozenset({ConfigReloaded.type, DaemonStateChanged.type})  # a reload ends with both


class PublicParts:
    """The set of part names (``config_model.DASHBOARD_PARTS``) that anonymous clients may read."""

    def __init__(self, core: Core) -> None:
        self._core = core
        self.parts: frozenset[str] = frozenset()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def __contains__(self, part: object) -> bool:
        return part in self.parts

    async def refresh(self) -> None:
        """Read ``dashboard.public`` of the running config; on failure nothing is public."""
        try:
            shown = await self._core.call("config_show", {})
            parts = frozenset(str(p) for p in shown["config"].get("dashboard_public") or ())
        except (SupervisorError, KeyError, TypeError) as exc:
            log.error("dashboard_public_unread", error=f"{type(exc).__name__}: {exc}")
            parts = frozenset()
        if parts != self.parts:
            log.info("dashboard_public", parts=sorted(parts))
        self.parts = parts

    def _saw(self, event: dict[str, Any]) -> None:
        if self._closed or event.get("type") not in REFRESH_EVENTS:
            return
        task = asyncio.get_running_loop().create_task(self.refresh())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def follow(self, _app: web.Application) -> AsyncIterator[None]:
        """``cleanup_ctx``: read the parts before the first request, then after each reload."""
        await self.refresh()
        self._core.on_event(self._saw)
        yield
        self._closed = True
        for task in tuple(self._tasks):
            task.cancel()
        for task in tuple(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
