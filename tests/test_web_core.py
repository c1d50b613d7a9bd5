"""The web layer's bridge to the core (:mod:`foss_supervisor.web.core`), across two real threads and loops.

The command context is a real :class:`~foss_supervisor.ctx.Daemon` built from a parsed config (not
started: the commands used here read its state). The web side runs on a second thread with its own
event loop, as the dashboard does. Dispatches are counted by wrapping the real ``dispatch``, which
:func:`foss_supervisor.commands.answer` (the egress gate the bridge goes through) calls.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from foss_supervisor import commands as commands_module
from foss_supervisor.commands import CommandError
from foss_supervisor.config import parse_config
from foss_supervisor.daemon import Daemon
from foss_supervisor.events import DaemonStateChanged
from foss_supervisor.web.core import Core

T = TypeVar("T")


class Loops:
    """The core's loop and the web's loop, each running on a thread of its own (the test waits from a third)."""

    def __init__(self) -> None:
        self.core = asyncio.new_event_loop()
        self.web = asyncio.new_event_loop()
        self._threads = [threading.Thread(target=loop.run_forever, daemon=True) for loop in (self.core, self.web)]
        for t in self._threads:
            t.start()

    def on_core(self, fn: Callable[[], Awaitable[T]]) -> T:
        return asyncio.run_coroutine_threadsafe(fn(), self.core).result(timeout=10)  # type: ignore[arg-type]

    def on_web(self, fn: Callable[[], Awaitable[T]]) -> T:
        return asyncio.run_coroutine_threadsafe(fn(), self.web).result(timeout=10)  # type: ignore[arg-type]

    def close(self) -> None:
        for loop in (self.core, self.web):
            loop.call_soon_threadsafe(loop.stop)
        for t in self._threads:
            t.join(timeout=10)
        for loop in (self.core, self.web):
            loop.close()


@pytest.fixture
def loops() -> Iterator[Loops]:
    got = Loops()
    try:
        yield got
    finally:
        got.close()


SECRET = "pw-across-threads-7"


@pytest.fixture
def ctx(tmp_path: Path) -> Daemon:
    text = f"state_dir: {tmp_path / 'state'}\nprograms: {{}}\nsecrets: [{SECRET}]\n"
    config = parse_config(text, tmp_path / "config.yaml")
    return Daemon(config, None)


@pytest.fixture
def dispatched(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, threading.Thread]]:
    """Every dispatch the bridge makes: (command, thread it ran on)."""
    seen: list[tuple[str, threading.Thread]] = []
    real = commands_module.dispatch

    async def counting(ctx: Any, name: str, args: Any) -> Any:
        seen.append((name, threading.current_thread()))
        return await real(ctx, name, args)

    monkeypatch.setattr(commands_module, "dispatch", counting)
    return seen


def make_core(loops: Loops, ctx: Daemon) -> Core:
    async def build() -> Core:
        return Core(ctx, ctx.bus, loops.core)

    return loops.on_core(build)


def test_commands_run_on_the_core_loop(loops: Loops, ctx: Daemon, dispatched: list[Any]) -> None:
    core = make_core(loops, ctx)

    async def ask() -> Any:
        return await core.call("ping")

    assert loops.on_web(ask)["phase"] == "starting"
    [(name, thread)] = dispatched
    assert name == "ping" and thread is not threading.current_thread()
    core_thread = loops.on_core(_current_thread)
    assert thread is core_thread


async def _current_thread() -> threading.Thread:
    return threading.current_thread()


def test_concurrent_reads_share_one_command(loops: Loops, ctx: Daemon, dispatched: list[Any]) -> None:
    core = make_core(loops, ctx)

    async def many() -> list[Any]:
        return await asyncio.gather(*(core.read("health") for _ in range(50)))

    replies = loops.on_web(many)
    assert len(dispatched) == 1
    assert all(r is replies[0] for r in replies)
    assert replies[0]["programs"] == {}


def test_an_event_makes_the_next_read_ask_again(loops: Loops, ctx: Daemon, dispatched: list[Any]) -> None:
    core = make_core(loops, ctx)

    async def read() -> Any:
        return await core.read("status")

    first = loops.on_web(read)
    assert loops.on_web(read) is first  # nothing changed since: the same reply
    assert len(dispatched) == 1

    async def change() -> None:
        ctx.phase = "ready"
        ctx.bus.publish(DaemonStateChanged(state="ready"))

    loops.on_core(change)
    second = loops.on_web(read)
    assert len(dispatched) == 2
    assert (first["daemon"]["phase"], second["daemon"]["phase"]) == ("starting", "ready")


def test_a_state_changing_command_makes_the_next_read_ask_again(
    loops: Loops, ctx: Daemon, dispatched: list[Any]
) -> None:
    """Commands from any transport count (they all go through dispatch), refused ones too."""
    core = make_core(loops, ctx)

    async def read() -> Any:
        return await core.read("status")

    async def refused_start() -> None:
        with pytest.raises(CommandError):
            await core.call("start", {"names": ["nope"]})

    first = loops.on_web(read)
    loops.on_web(refused_start)
    assert loops.on_web(read) is not first
    assert [name for name, _ in dispatched] == ["status", "start", "status"]


def test_health_is_shared_only_while_in_flight(loops: Loops, ctx: Daemon, dispatched: list[Any]) -> None:
    """A probe's answer is never older than its request: a finished health reply is not served again."""
    core = make_core(loops, ctx)

    async def read() -> Any:
        return await core.read("health")

    first = loops.on_web(read)
    ctx.phase = "ready"  # a change that publishes nothing
    second = loops.on_web(read)
    assert (first["phase"], second["phase"]) == ("starting", "ready")
    assert len(dispatched) == 2


def test_a_failed_read_is_not_kept(loops: Loops, ctx: Daemon, dispatched: list[Any]) -> None:
    core = make_core(loops, ctx)

    async def read() -> Any:
        return await core.read("pipelines")  # no pipelines configured: the command refuses

    for _ in range(2):
        with pytest.raises(CommandError):
            loops.on_web(read)
    assert [name for name, _ in dispatched] == ["pipelines", "pipelines"]


def test_only_read_only_commands_are_shared(loops: Loops, ctx: Daemon) -> None:
    core = make_core(loops, ctx)

    async def read() -> Any:
        return await core.read("restart", {"names": ["x"]})

    with pytest.raises(ValueError, match="not a shared read"):
        loops.on_web(read)


def test_events_reach_the_web_loop_in_order_until_closed(loops: Loops, ctx: Daemon) -> None:
    core = make_core(loops, ctx)
    got: list[tuple[str, threading.Thread]] = []
    arrived = threading.Event()

    def seen(event: object) -> None:
        assert isinstance(event, DaemonStateChanged)
        got.append((event.state, threading.current_thread()))
        if len(got) == 100:
            arrived.set()

    async def subscribe() -> threading.Thread:
        core.on_event(seen)
        return threading.current_thread()

    web_thread = loops.on_web(subscribe)

    async def publish(count: int) -> None:
        for i in range(count):
            ctx.bus.publish(DaemonStateChanged(state=f"s{i}"))

    async def settled() -> None:  # the subscription is made on the core loop: let it run once
        await asyncio.sleep(0)

    loops.on_core(settled)
    loops.on_core(lambda: publish(100))
    assert arrived.wait(10)
    assert [s for s, _ in got] == [f"s{i}" for i in range(100)]
    assert all(t is web_thread for _, t in got)

    core.close()
    loops.on_core(settled)
    loops.on_core(lambda: publish(5))

    async def flushed() -> None:
        await asyncio.sleep(0)

    loops.on_web(flushed)
    assert len(got) == 100


def test_replies_errors_and_events_reach_the_web_redacted(loops: Loops, ctx: Daemon) -> None:
    """The web gets what the control socket gets: the gate (commands.answer, Redactor.event) sits on its path."""
    core = make_core(loops, ctx)
    got: list[object] = []
    arrived = threading.Event()

    async def subscribe() -> None:
        core.on_event(lambda event: (got.append(event), arrived.set()))

    loops.on_web(subscribe)

    async def publish() -> None:
        await asyncio.sleep(0)  # the subscription is made on the core loop: let it run once
        ctx.phase = f"ready {SECRET}"
        ctx.bus.publish(DaemonStateChanged(state="ready", detail=f"postgres://u:{SECRET}@db and {SECRET}"))

    loops.on_core(publish)
    assert arrived.wait(10)
    [event] = got
    assert isinstance(event, DaemonStateChanged) and event.detail == "postgres://u:***@db and ***"

    async def read() -> Any:
        return await core.call("health")

    assert loops.on_web(read)["phase"] == "ready ***"

    async def refused() -> None:
        await core.call("status", {"names": [SECRET]})  # refused, naming what it was asked for

    with pytest.raises(CommandError) as refusal:
        loops.on_web(refused)
    assert "***" in str(refusal.value) and SECRET not in str(refusal.value)
