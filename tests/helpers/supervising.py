"""A real :class:`~foss_supervisor.core.supervisor.Supervisor` in this process: configs, the supervisor
running under a context manager, and waits on its events."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from foss_supervisor.base.filewriter import WRITER
from foss_supervisor.base.processstates import ProcessState
from foss_supervisor.config import Config, parse_config
from foss_supervisor.core.events import Event, EventBus, StateChanged, Subscription
from foss_supervisor.core.statestore import StateStore
from foss_supervisor.core.supervisor import Supervisor

from .system import PY

__all__ = ["make_config", "py", "state", "supervising", "until", "written"]


def make_config(tmp: Path, programs: str) -> Config:
    """A parsed config with its state dir in ``tmp``; ``programs`` is the YAML under ``programs:`` (dedented)."""
    text = f"state_dir: {tmp / 'state'}\nprograms:\n" + textwrap.indent(textwrap.dedent(programs), "  ")
    return parse_config(text, tmp / "c.yaml", {})


def py(code: str) -> str:
    """A YAML flow list that runs ``code`` with this interpreter."""
    return f"[{PY!r}, '-c', {textwrap.dedent(code)!r}]"


@contextlib.asynccontextmanager
async def supervising(config: Config) -> AsyncIterator[tuple[Supervisor, Subscription]]:
    """A running :class:`Supervisor` of ``config`` and a subscription to its events; shut down (every program
    stopped, 30 s at most) on the way out, and what the programs printed written to their logs."""
    bus = EventBus()
    sub = bus.subscribe(10_000)
    sup = Supervisor(config, bus, StateStore(config.state_dir))
    started, shutdown = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(sup.run(started, shutdown))
    await asyncio.wait_for(started.wait(), 5)
    try:
        yield sup, sub
    finally:
        shutdown.set()
        await asyncio.wait_for(task, 30)
        sub.close()
        assert await asyncio.to_thread(WRITER.flush, 30), "the programs' output was not written within 30 s"


def written(log: Path) -> str:
    """The text of a program's log once the daemon's file-writer thread has written all it was given (the
    writes are made off the loop, a moment after the output arrives)."""
    assert WRITER.flush(30), "the programs' output was not written within 30 s"
    return log.read_text()


async def until(sub: Subscription, match: Callable[[Event], bool], timeout_s: float = 10.0) -> Event:
    """The first event of ``sub`` that ``match`` accepts; ``TimeoutError`` after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        async for event in sub:
            if match(event):
                return event
    raise AssertionError("the subscription ended")


def state(name: str, new: ProcessState) -> Callable[[Event], bool]:
    """Matches the event of program ``name`` entering ``new``."""
    return lambda e: isinstance(e, StateChanged) and e.name == name and e.new is new
