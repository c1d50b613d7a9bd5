"""The core as the web layer sees it: commands to call and a numbered event stream to follow.

The dashboard runs in a process of its own (:mod:`foss_supervisor.web.serve`), supervised by the daemon
like a program, so nothing a browser does can stop supervision. Everything it needs from the daemon
crosses one interface, :class:`Core`, implemented by :class:`~foss_supervisor.web.remote.RemoteCore` over the
control socket (the tests' ``helpers.webcore.LocalCore`` implements it over a real core in the test process, so
they serve the app with aiohttp's test client, as Datasette tests through ``ds.client``). It gives:

- :meth:`Core.call` runs a command and returns its reply: fresh JSON-able data, redacted as any reply
  that leaves the daemon (:func:`foss_supervisor.commands.registry.answer`, the one gate);
- :meth:`Core.read` is :meth:`Core.call` for the read-only commands every page and probe asks for
  (:data:`READ_MAX_AGE_S`): callers asking at once share one call, and for pages its reply serves 0.5 s
  more unless the state changed since (:attr:`Core.generation`). ``health`` is shared only while in
  flight. A hundred clients polling then cost the daemon a fraction of the commands. A shared reply is
  shared between requests: views must not mutate it.
- :meth:`Core.on_event` delivers each daemon event as JSON-able data (``type``, ``seq``, fields) in
  order, redacted as the daemon's event log keeps them; ``{"type": "resync"}`` says events were missed
  (the daemon restarted, or the reader fell behind).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from foss_supervisor.commands import COMMANDS
from foss_supervisor.core.events import EVENTS
from foss_supervisor.pipeline import events as pipeline_events  # noqa: F401  (its classes register in EVENTS)
from foss_supervisor.web.shared import SharedResults

__all__ = [
    "EVENT_TYPES",
    "LISTED_EVENTS",
    "QUIET_EVENTS",
    "READ_MAX_AGE_S",
    "RESYNC",
    "Core",
    "EventCallback",
]

# the read-only commands whose replies may be shared, and how long (s) a finished reply serves when the
# state did not change; uptimes and CPU figures move meanwhile, which a page updated over SSE tolerates
READ_MAX_AGE_S = {"status": 0.5, "pipelines": 0.5, "pipeline_runs": 0.5, "health": 0.0}
#: every event the daemon sends, by ``type``: the one registry's (core.events.EVENTS), the pipeline's included
EVENT_TYPES = tuple(EVENTS)
#: those the dashboard lists as recent events, and refreshes a page on (the page script reads them from the page)
LISTED_EVENTS = tuple(name for name, cls in EVENTS.items() if cls.listed)
#: those that change no command's reply (a step's log line)
QUIET_EVENTS = frozenset(name for name, cls in EVENTS.items() if not cls.moves)
MAX_READS = 256  # distinct (command, arguments) remembered; forgotten all at once beyond
RESYNC = "resync"  # the ``type`` of the marker event: what came before is incomplete, read afresh

EventCallback = Callable[[dict[str, Any]], None]


class Core(abc.ABC):
    """The daemon's command surface and event stream, as the web app uses them."""

    def __init__(self) -> None:
        self.boot = ""  # the daemon run the events belong to (new per daemon start)
        self.seq = 0  # the newest event delivered
        self._moves = 0  # events that may change a reply, plus state-changing commands sent from here
        self._callbacks: list[EventCallback] = []
        self._reads: SharedResults[tuple[str, str], Any] = SharedResults(MAX_READS)
        self._follower: asyncio.Task[None] | None = None  # the task that delivers the daemon's events

    @abc.abstractmethod
    async def _call(self, name: str, args: dict[str, Any]) -> Any:
        """Run one command in the daemon and return its reply (raises its error)."""

    async def call(self, name: str, args: Mapping[str, Any] | None = None) -> Any:
        """Run command ``name`` with ``args`` and return its reply.

        Raises what :func:`foss_supervisor.commands.registry.dispatch` raises (CommandError and its kinds,
        ProtocolError for a bad request), and NotRunning/NoAnswer when the daemon cannot be reached.
        """
        try:
            return await self._call(name, dict(args or {}))
        finally:
            command = COMMANDS.get(name)
            if command is None or command.mutating:
                self._moves += 1

    @property
    def generation(self) -> Hashable:
        """What a shared reply is as fresh as: grows with every event that may change a reply."""
        return self._moves

    async def read(self, name: str, args: Mapping[str, Any] | None = None) -> Any:
        """Like :meth:`call` for a command of :data:`READ_MAX_AGE_S`, sharing replies (see the module docstring).

        Raises ValueError for another command, and what the command raises (a failed reply is not kept).
        """
        max_age_s = READ_MAX_AGE_S.get(name)
        if max_age_s is None:
            raise ValueError(f"{name} is not a shared read")
        key = (name, repr(sorted((args or {}).items())))
        return await self._reads.get(key, self.generation, max_age_s, lambda: self.call(name, args))

    def on_event(self, callback: EventCallback) -> None:
        """Call ``callback(event)`` on this loop for every daemon event from now on, in order."""
        self._callbacks.append(callback)

    def _deliver(self, event: dict[str, Any]) -> None:
        if event.get("type") not in QUIET_EVENTS:
            self._moves += 1
        if isinstance(event.get("seq"), int):
            self.seq = event["seq"]
        for callback in tuple(self._callbacks):
            callback(event)

    def _resync(self, boot: str, seq: int) -> None:
        """Events were missed (or the daemon is another run): tell every reader to read afresh."""
        self.boot, self.seq = boot, seq
        self._deliver({"type": RESYNC, "seq": seq, "boot": boot})

    async def close(self) -> None:
        """Stop following events and let go of connections."""
        self._callbacks.clear()
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
            self._follower = None
