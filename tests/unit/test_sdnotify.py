"""sd_notify and watchdog against real datagram sockets bound by the tests (socket activation with a real
child: tests/process/test_socket_activation.py).

Every wait is bounded: receives have timeouts, and "no more pings" is asserted after the watchdog loop has
provably run several more rounds (it calls ``making_progress`` once per round), not after a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from foss_supervisor.base.processstates import Health, ProcessState
from foss_supervisor.core.events import DaemonStateChanged, EventBus, HealthChanged, StateChanged
from foss_supervisor.daemon.notifier import SystemdNotifier, format_status
from foss_supervisor.systemd.notify import (
    SYSTEMD_ENVIRON,
    Notifier,
    extend_timeout_loop,
    listen_sockets,
    monotonic_usec,
    parse_message,
    strip_systemd_environ,
    watchdog_interval_s,
    watchdog_loop,
    without_systemd_environ,
)

S = ProcessState
RECV_TIMEOUT_S = 5.0


class Receiver:
    """A bound datagram socket standing in for systemd's notify socket."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env_value = env_value
        sock.settimeout(RECV_TIMEOUT_S)

    def recv(self) -> bytes:
        return self.sock.recv(65536)

    def recv_n(self, n: int) -> list[bytes]:
        return [self.recv() for _ in range(n)]

    def pending(self) -> list[bytes]:
        """Everything already queued, without waiting."""
        out = []
        self.sock.setblocking(False)
        try:
            while True:
                out.append(self.sock.recv(65536))
        except BlockingIOError:
            pass
        finally:
            self.sock.settimeout(RECV_TIMEOUT_S)
        return out


@pytest.fixture
def path_receiver(tmp_path: Path) -> Iterator[Receiver]:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        yield Receiver(sock, str(path))


@pytest.fixture
def abstract_receiver() -> Iterator[Receiver]:
    name = f"foss-supervisor-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        yield Receiver(sock, "@" + name)


@pytest.fixture(params=["path", "abstract"])
def receiver(request: pytest.FixtureRequest, path_receiver: Receiver, abstract_receiver: Receiver) -> Receiver:
    return path_receiver if request.param == "path" else abstract_receiver


# ---------------------------------------------------------------------------------------------- Notifier


def test_unset_notify_socket_is_a_silent_no_op() -> None:
    notifier = Notifier.from_environ({})
    assert not notifier.enabled
    assert notifier.ready("x") is False
    assert notifier.watchdog() is False
    assert (notifier.sent, notifier.failed) == (0, 0)


def test_unsupported_address_disables_the_notifier() -> None:
    assert not Notifier("vsock:2:1234").enabled
    assert not Notifier("relative/path").enabled
    assert not Notifier("@").enabled


def test_helpers_send_the_exact_datagrams(receiver: Receiver) -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": receiver.env_value})
    assert notifier.enabled
    assert notifier.ready("2/3 programs running")
    assert notifier.status("line one\nline two")
    assert notifier.stopping()
    assert notifier.watchdog()
    assert notifier.extend_timeout(5_000_000)
    assert notifier.notify(ready=True, status="custom", errno=0)
    assert receiver.recv_n(6) == [
        b"READY=1\nSTATUS=2/3 programs running",
        b"STATUS=line one line two",
        b"STOPPING=1",
        b"WATCHDOG=1",
        b"EXTEND_TIMEOUT_USEC=5000000",
        b"READY=1\nSTATUS=custom\nERRNO=0",
    ]
    assert notifier.sent == 6
    notifier.close()


def test_reloading_carries_clock_monotonic_usec(receiver: Receiver) -> None:
    notifier = Notifier(receiver.env_value)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading("reloading")
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    fields = parse_message(receiver.recv())
    assert list(fields) == ["RELOADING", "MONOTONIC_USEC", "STATUS"]
    assert fields["RELOADING"] == "1"
    assert before <= int(fields["MONOTONIC_USEC"]) <= after
    assert before <= monotonic_usec()


def test_send_refuses_lines_that_would_smuggle_assignments(path_receiver: Receiver) -> None:
    notifier = Notifier(path_receiver.env_value)
    with pytest.raises(ValueError):
        notifier.send("STATUS=a\nREADY=1")
    with pytest.raises(ValueError):
        notifier.send("no equals sign")
    assert path_receiver.pending() == []


def test_a_vanished_socket_is_counted_not_raised(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "gone"))
    assert notifier.ready() is False
    assert notifier.watchdog() is False
    assert notifier.failed == 2


# ---------------------------------------------------------------------------------------------- observer


def _counts(programs: dict[str, ProcessState]) -> Callable[[], str]:
    def status_text() -> str:
        running = sum(state is S.RUNNING for state in programs.values())
        return format_status(running, len(programs), last_pipeline_run="orders ok")

    return status_text


def test_observer_sends_the_exact_sequence_for_start_reload_and_stop(receiver: Receiver) -> None:
    programs = {"db": S.STOPPED, "api": S.STOPPED}
    bus = EventBus()

    def track(event: object) -> None:  # the daemon's own state, updated before the observer runs
        if isinstance(event, StateChanged):
            programs[event.name] = event.new

    bus.on(track)
    bus.on(SystemdNotifier(Notifier(receiver.env_value), _counts(programs)))

    def program(name: str, old: ProcessState, new: ProcessState) -> None:
        bus.publish(StateChanged(name=name, old=old, new=new))

    bus.publish(DaemonStateChanged(state="starting"))
    program("db", S.STOPPED, S.STARTING)  # 0/2 both times: no new STATUS
    program("db", S.STARTING, S.RUNNING)
    program("api", S.STOPPED, S.STARTING)
    program("api", S.STARTING, S.RUNNING)
    bus.publish(HealthChanged(name="api", old=Health.UNKNOWN, new=Health.HEALTHY))  # same text: nothing
    bus.publish(DaemonStateChanged(state="ready", detail="http://127.0.0.1:5000/"))
    bus.publish(DaemonStateChanged(state="ready"))  # repeated: nothing
    bus.publish(DaemonStateChanged(state="reloading"))
    program("api", S.RUNNING, S.STOPPING)
    program("api", S.STOPPING, S.STOPPED)
    program("api", S.STOPPED, S.STARTING)
    program("api", S.STARTING, S.RUNNING)
    bus.publish(DaemonStateChanged(state="ready"))
    bus.publish(DaemonStateChanged(state="stopping"))
    program("api", S.RUNNING, S.STOPPING)
    program("api", S.STOPPING, S.STOPPED)
    program("db", S.RUNNING, S.STOPPING)
    program("db", S.STOPPING, S.STOPPED)
    bus.publish(DaemonStateChanged(state="ready"))  # a reload finishing during shutdown: never READY again

    got = [parse_message(m) for m in receiver.recv_n(11)]
    assert receiver.pending() == []
    mono = [int(m.pop("MONOTONIC_USEC")) for m in got if "MONOTONIC_USEC" in m]
    assert len(mono) == 1 and mono[0] > 0
    tail = "; last pipeline run: orders ok"
    assert got == [
        {"STATUS": "starting: 0/2 programs running" + tail},
        {"STATUS": "starting: 1/2 programs running" + tail},
        {"STATUS": "starting: 2/2 programs running" + tail},
        {"READY": "1", "STATUS": "2/2 programs running" + tail},
        {"RELOADING": "1", "STATUS": "reloading: 2/2 programs running" + tail},
        {"STATUS": "reloading: 1/2 programs running" + tail},
        {"STATUS": "reloading: 2/2 programs running" + tail},
        {"READY": "1", "STATUS": "2/2 programs running" + tail},
        {"STOPPING": "1", "STATUS": "stopping: 2/2 programs running" + tail},
        {"STATUS": "stopping: 1/2 programs running" + tail},
        {"STATUS": "stopping: 0/2 programs running" + tail},
    ]


def test_observer_survives_a_broken_status_callable(path_receiver: Receiver) -> None:
    def broken() -> str:
        raise RuntimeError("bug")

    observer = SystemdNotifier(Notifier(path_receiver.env_value), broken)
    observer(DaemonStateChanged(state="ready"))  # must not raise into the bus
    assert observer.phase == "ready"


def test_observer_without_notify_socket_never_calls_status() -> None:
    calls: list[int] = []
    observer = SystemdNotifier(Notifier(None), lambda: str(calls.append(1)))
    observer(DaemonStateChanged(state="ready"))
    observer(StateChanged(name="a", old=S.STOPPED, new=S.STARTING))
    assert calls == [] and observer.phase == "ready"


def test_format_status() -> None:
    assert format_status(5, 6) == "5/6 programs running"
    assert (
        format_status(4, 6, fatal=1, unhealthy=1, last_pipeline_run="orders succeeded 12:03 (4.2s)")
        == "4/6 programs running (1 FATAL, 1 unhealthy); last pipeline run: orders succeeded 12:03 (4.2s)"
    )


# ---------------------------------------------------------------------------------------------- watchdog


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    me = os.getpid()
    assert watchdog_interval_s({}, me) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}, me) == 15.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(me)}, me) == 15.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(me + 1)}, me) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, me) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "0"}, me) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "soon"}, me) is None


class PingRecorder:
    """Records the arrival time of each ping on a thread of its own, so a blocked event loop cannot delay it."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.times: list[float] = []
        self.other: list[bytes] = []
        self._stop = threading.Event()
        self._cond = threading.Condition()
        receiver.sock.settimeout(0.05)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.receiver.sock.recv(65536)
            except TimeoutError:
                continue
            with self._cond:
                if data == b"WATCHDOG=1":
                    self.times.append(time.monotonic())
                else:
                    self.other.append(data)
                self._cond.notify_all()

    def count(self) -> int:
        with self._cond:
            return len(self.times)

    async def wait_for_count(self, n: int, timeout_s: float = 5.0) -> None:
        def reached() -> bool:
            with self._cond:
                return self._cond.wait_for(lambda: len(self.times) >= n, timeout=timeout_s)

        assert await asyncio.to_thread(reached), f"only {self.count()} pings, wanted {n}"

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.fixture
def pings(path_receiver: Receiver) -> Iterator[PingRecorder]:
    recorder = PingRecorder(path_receiver)
    yield recorder
    recorder.close()


class Progress:
    """A ``making_progress`` switch that counts how often the loop asked (one call per round)."""

    def __init__(self) -> None:
        self.ok = True
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.ok

    async def wait_rounds(self, n: int, timeout_s: float = 5.0) -> None:
        target = self.calls + n
        async with asyncio.timeout(timeout_s):
            while self.calls < target:
                await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def running(coro: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.ensure_future(coro)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_watchdog_pings_at_its_cadence_and_only_while_making_progress(
    path_receiver: Receiver, pings: PingRecorder
) -> None:
    interval = 0.05
    progress = Progress()
    async with running(watchdog_loop(Notifier(path_receiver.env_value), interval, progress)):
        await pings.wait_for_count(6)
        times = pings.times[:6]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        mean = (times[-1] - times[0]) / (len(times) - 1)
        assert interval * 0.9 <= mean < interval * 3, gaps  # one ping per interval, no drift
        assert min(gaps) >= interval * 0.5, gaps  # (arrival times jitter with thread scheduling)

        progress.ok = False
        await progress.wait_rounds(2)  # the round that saw False has passed: from here on, silence
        stalled_at = pings.count()
        await progress.wait_rounds(5)
        assert pings.count() == stalled_at, "pinged while not making progress"

        progress.ok = True
        await pings.wait_for_count(stalled_at + 2)
    assert pings.other == []


async def test_a_blocked_event_loop_stops_the_pings(path_receiver: Receiver, pings: PingRecorder) -> None:
    interval = 0.05
    block_s = 0.6
    async with running(watchdog_loop(Notifier(path_receiver.env_value), interval, lambda: True)):
        await pings.wait_for_count(3)
        blocked_from = time.monotonic()
        time.sleep(block_s)  # the bug being simulated: synchronous work on the event loop
        blocked_until = time.monotonic()
        before = pings.count()
        await pings.wait_for_count(before + 2)  # and the pings come back once the loop runs again
    inside = [t for t in pings.times if blocked_from + 2 * interval < t < blocked_until]
    assert inside == [], f"pings while the loop was blocked: {inside}"
    gaps = [b - a for a, b in itertools.pairwise(pings.times)]
    assert max(gaps) >= block_s - interval


async def test_extend_timeout_loop_extends_while_progressing_then_stops(path_receiver: Receiver) -> None:
    progress = Progress()
    task = asyncio.ensure_future(extend_timeout_loop(Notifier(path_receiver.env_value), 3.0, progress, interval_s=0.02))
    await progress.wait_rounds(3)
    progress.ok = False
    await asyncio.wait_for(task, timeout=5)  # returns by itself once progress stops
    got = path_receiver.pending()
    assert len(got) >= 3 and set(got) == {b"EXTEND_TIMEOUT_USEC=3000000"}


# ---------------------------------------------------------------------------------------------- environ


def test_systemd_variables_are_stripped() -> None:
    env = {
        "PATH": "/bin",
        "NOTIFY_SOCKET": "@x",
        "WATCHDOG_USEC": "1",
        "WATCHDOG_PID": "2",
        "LISTEN_FDS": "1",
        "LISTEN_PID": "3",
        "LISTEN_FDNAMES": "dashboard",
        "JOURNAL_STREAM": "1:2",
    }
    assert without_systemd_environ(env) == {"PATH": "/bin", "JOURNAL_STREAM": "1:2"}
    removed = strip_systemd_environ(env)
    assert set(removed) == set(SYSTEMD_ENVIRON)
    assert env == {"PATH": "/bin", "JOURNAL_STREAM": "1:2"}
    assert strip_systemd_environ(env) == {}


# ---------------------------------------------------------------------------------------------- activation


def test_listen_sockets_ignores_variables_meant_for_another_process() -> None:
    me = os.getpid()
    assert listen_sockets({}, me) == []
    assert listen_sockets({"LISTEN_FDS": "1", "LISTEN_PID": str(me + 1)}, me) == []
    assert listen_sockets({"LISTEN_FDS": "x", "LISTEN_PID": str(me)}, me) == []
    assert listen_sockets({"LISTEN_FDS": "0", "LISTEN_PID": str(me)}, me) == []
