"""The core as the web layer sees it: the command surface and the event bus, reached from another thread.

The dashboard runs on its own thread and event loop (see :mod:`foss_supervisor.web.server`) so that a
hundred busy browsers cannot delay the supervision loop: a program's crash is handled on the core's loop
whatever the web is doing. Everything the web needs from the core crosses here, and only here:

- :meth:`Core.call` runs a command on the core's loop (``asyncio.run_coroutine_threadsafe``) and awaits
  its reply on the web loop; the reply is fresh JSON-able data the core no longer touches, redacted
  (:func:`foss_supervisor.commands.answer`, the gate the control socket uses too).
- :meth:`Core.read` is :meth:`Core.call` for the read-only commands every page and probe asks for
  (:data:`READ_MAX_AGE_S`): callers asking at once share one call, and for pages its reply serves
  0.5 s more, unless the state changed since (:attr:`Core.generation`: a bus event, or a state-changing
  command from any transport). ``health`` is shared only while in flight: a probe's answer is never
  older than its request, whatever changed (write failures and refused SIGHUP reloads publish no event).
  A hundred clients polling then cost the core's loop a fraction of the commands. Such a reply is shared
  between requests: views must not mutate it.
- :meth:`Core.on_event` delivers each bus event to a callback on the web loop
  (``loop.call_soon_threadsafe``), in publish order, redacted (``Redactor.event``); :meth:`Core.close`
  stops the delivery.

Built with ``core_loop=None`` (tests, or a web app on the core's own loop) both are plain direct calls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from foss_supervisor.commands import CommandContext, answer
from foss_supervisor.events import EventBus
from foss_supervisor.web.shared import SharedResults

__all__ = ["READ_MAX_AGE_S", "Core"]

# the read-only commands whose replies may be shared, and how long (s) a finished reply serves when the
# state did not change; uptimes and CPU figures move meanwhile, which a page updated over SSE tolerates
READ_MAX_AGE_S = {"status": 0.5, "pipelines": 0.5, "pipeline_runs": 0.5, "health": 0.0}
QUIET_EVENTS = frozenset({"StepLog"})  # a step's log line changes no command's reply
MAX_READS = 256  # distinct (command, arguments) remembered; forgotten all at once beyond


class Core:
    """The command surface and the bus of ``ctx``, callable from any thread's event loop."""

    def __init__(self, ctx: CommandContext, bus: EventBus, core_loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._ctx = ctx
        self._bus = bus
        self._core_loop = core_loop
        self._forwarders: list[Callable[[object], None]] = []
        self._events = 0  # bus events seen: a reply older than the last event is not reused
        self._reads: SharedResults[tuple[str, str], Any] = SharedResults(MAX_READS)
        bus.on(self._saw)  # on the core's loop: Core is built there

    def _saw(self, event: object) -> None:
        if type(event).__name__ not in QUIET_EVENTS:
            self._events += 1

    @property
    def generation(self) -> tuple[int, int]:
        """What a shared reply is as fresh as: (bus events but step log lines, state-changing commands run).

        Both counters only grow; they are read across threads (plain int reads under the GIL).
        """
        return self._events, self._ctx.changes

    async def call(self, name: str, args: Mapping[str, Any] | None = None) -> Any:
        """Run command ``name`` with ``args`` on the core's loop and return its reply.

        Raises what :func:`foss_supervisor.commands.dispatch` raises (CommandError and its kinds), its
        message redacted like the reply. Cancelling the caller cancels the command on the core's loop.
        """
        loop = self._core_loop
        if loop is None or loop is asyncio.get_running_loop():
            return await answer(self._ctx, name, dict(args or {}))

        def on_core_loop(running: Awaitable[Any]) -> Awaitable[Any]:  # the command there, the redaction here
            assert asyncio.iscoroutine(running) and loop is not None
            return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(running, loop))

        return await answer(self._ctx, name, dict(args or {}), via=on_core_loop)

    async def read(self, name: str, args: Mapping[str, Any] | None = None) -> Any:
        """Like :meth:`call` for a command of :data:`READ_MAX_AGE_S`, sharing replies (see the module docstring).

        Raises ValueError for another command, and what the command raises (a failed reply is not kept).
        """
        max_age_s = READ_MAX_AGE_S.get(name)
        if max_age_s is None:
            raise ValueError(f"{name} is not a shared read")
        key = (name, repr(sorted((args or {}).items())))
        return await self._reads.get(key, self.generation, max_age_s, lambda: self.call(name, args))

    def on_event(self, callback: Callable[[object], None]) -> None:
        """Call ``callback(event)`` on the calling thread's running loop for every bus event.

        Must be called from the loop that is to receive the events (the web loop). Each event is
        redacted on the web's side (its string fields, by the daemon's Redactor).
        """
        redact = self._ctx.redactor.event
        if self._core_loop is None:
            self._bus.on(lambda event: callback(redact(event)))
            return
        web_loop = asyncio.get_running_loop()

        def forward(event: object) -> None:
            with contextlib.suppress(RuntimeError):  # the web loop is closing: nobody to tell
                web_loop.call_soon_threadsafe(lambda: callback(redact(event)))

        self._forwarders.append(forward)
        self._core_loop.call_soon_threadsafe(self._bus.on, forward)

    def close(self) -> None:
        """Stop delivering events (from any thread)."""
        if self._core_loop is None:
            self._bus.off(self._saw)
            return
        with contextlib.suppress(RuntimeError):
            self._core_loop.call_soon_threadsafe(self._bus.off, self._saw)
        for forward in self._forwarders:
            with contextlib.suppress(RuntimeError):  # the core loop is already closed: nothing publishes
                self._core_loop.call_soon_threadsafe(self._bus.off, forward)
        self._forwarders.clear()
