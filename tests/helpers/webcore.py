"""The dashboard app over a real core in the test process: :class:`LocalCore` implements the web layer's
:class:`~foss_supervisor.web.core.Core` by calling the command surface directly (the same egress gate,
:func:`foss_supervisor.commands.answer`, the control socket uses), so unit tests serve the app with aiohttp's
test client against a real :class:`~foss_supervisor.commands.registry.CommandContext`, without a daemon
process (the dashboard process itself uses :class:`~foss_supervisor.web.remote.RemoteCore`)."""

from __future__ import annotations

import asyncio
from typing import Any

from foss_supervisor.commands import CommandContext, answer
from foss_supervisor.core.eventlog import EventLog
from foss_supervisor.web.core import Core, EventCallback

__all__ = ["LocalCore"]


class LocalCore(Core):
    """The core of this process: commands dispatched directly, events read from its :class:`EventLog`."""

    def __init__(self, ctx: CommandContext, events: EventLog) -> None:
        super().__init__()
        self._ctx = ctx
        self._events = events
        self.boot, self.seq = events.boot, events.seq

    async def _call(self, name: str, args: dict[str, Any]) -> Any:
        return await answer(self._ctx, name, args)  # the egress gate the control socket uses: redacted

    def on_event(self, callback: EventCallback) -> None:
        super().on_event(callback)
        if self._follower is None:
            self._follower = asyncio.get_running_loop().create_task(self._follow(), name="web-core-events")

    async def _follow(self) -> None:
        while True:
            batch, gap = self._events.since(self.seq)
            if gap:  # what follows continues from the first event still kept
                self._resync(self._events.boot, batch[0]["seq"] - 1 if batch else self._events.seq)
            for event in batch:
                self._deliver(event)
            await self._events.wait(self.seq, 60.0)
