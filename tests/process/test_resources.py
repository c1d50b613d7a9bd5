"""The ``resources`` command: CPU and memory of whole process trees, measured once for every reader.

The meter's arithmetic on a virtual clock with process records as ``/proc`` gives them, and a real process's
descriptors and storage I/O. On a real daemon, the whole tree and the three readers that show one reply:
``tests/e2e/test_resources_daemon.py``.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from helpers import PY
from hypothesis import given
from hypothesis import strategies as st

from foss_supervisor.base.procinfo import ProcStat, read_stat, ticks_per_s
from foss_supervisor.core.usage import FORGET_S, MIN_WINDOW_S, PAGE_BYTES, UsageMeter

HZ = ticks_per_s()


class Clock:
    """Virtual boot-clock seconds."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def proc(pid: int, started_s: float, cpu_s: float, rss_pages: int = 10, state: str = "S") -> ProcStat:
    """A process as ``/proc/PID/stat`` describes it: started ``started_s`` after boot, ``cpu_s`` used so far."""
    return ProcStat(pid, 1, pid, pid, state, round(started_s * HZ), cpu_ticks=round(cpu_s * HZ), rss_pages=rss_pages)


def test_cpu_is_the_trees_time_over_the_window_and_memory_its_sum() -> None:
    clock = Clock()
    meter = UsageMeter(clock)
    root = proc(10, 5.0, 1.0)
    first = meter.measure(root, lambda: [root, proc(11, 6.0, 2.0, 20)])
    assert (first.cpu_percent, first.window_s, first.processes) == (None, None, 2)  # nothing to compare with yet
    assert first.rss_bytes == 30 * PAGE_BYTES
    clock.now += 2.0
    root = proc(10, 5.0, 1.5)  # +0.5 s
    later = [root, proc(11, 6.0, 3.0, 20), proc(12, 1001.0, 0.5, 5)]  # +1.0 s; a child born in the window: 0.5 s
    second = meter.measure(root, lambda: later)
    assert second.cpu_percent == pytest.approx(100.0 * 2.0 / 2.0) and second.window_s == 2.0
    assert (second.processes, second.rss_bytes) == (3, 35 * PAGE_BYTES)


def test_a_member_met_late_counts_from_now_and_a_zombie_not_at_all() -> None:
    clock = Clock()
    meter = UsageMeter(clock)
    root = proc(10, 5.0, 1.0)
    meter.measure(root, lambda: [root])
    clock.now += 1.0
    adopted_before = proc(20, 900.0, 50.0)  # older than the last look, never seen: its past is not this window's
    ended = proc(21, 999.5, 9.0, state="Z")
    second = meter.measure(root, lambda: [root, adopted_before, ended])
    assert second.cpu_percent == 0.0 and second.processes == 2
    clock.now += 1.0
    third = meter.measure(root, lambda: [root, proc(20, 900.0, 50.25)])
    assert third.cpu_percent == pytest.approx(25.0)


def test_readers_within_a_second_get_the_same_figures_and_a_new_pid_is_a_new_tree() -> None:
    clock = Clock()
    meter = UsageMeter(clock)
    root = proc(10, 5.0, 1.0)
    meter.measure(root, lambda: [root])
    clock.now += 1.5
    answer = meter.measure(root, lambda: [proc(10, 5.0, 2.0)])
    clock.now += MIN_WINDOW_S / 2
    looked: list[int] = []
    again = meter.measure(root, lambda: looked.append(1) or [proc(10, 5.0, 9.0)])  # type: ignore[func-returns-value]
    assert again == answer and looked == []  # not even read again
    reused = proc(10, 1100.0, 0.0)  # the PID of another process now
    assert meter.measure(reused, lambda: [reused]).cpu_percent is None
    assert meter.measure(None, list).pid is None and meter.measure(proc(10, 5.0, 1.0, state="Z"), list).pid is None
    clock.now += FORGET_S
    meter.forget_stale()
    assert meter.measure(root, lambda: [root]).cpu_percent is None  # forgotten: a first look again


@given(st.lists(st.tuples(st.floats(0.0, 30.0), st.lists(st.floats(0.0, 5.0), min_size=1, max_size=4)), max_size=12))
def test_figures_are_never_negative_and_windows_never_shorter_than_the_minimum(
    steps: list[tuple[float, list[float]]],
) -> None:
    """Whatever the timing of the looks and whatever the members used (their counters only grow)."""
    clock = Clock()
    meter = UsageMeter(clock)
    used = [0.0] * 4
    for advance, increments in steps:
        clock.now += advance
        for i, inc in enumerate(increments):
            used[i] += inc
        members = [proc(10 + i, 1.0, used[i]) for i in range(len(increments))]
        usage = meter.measure(members[0], lambda members=members: members)  # type: ignore[misc]
        assert usage.rss_bytes >= 0 and usage.processes >= 1
        assert usage.cpu_percent is None or usage.cpu_percent >= 0
        assert usage.window_s is None or usage.window_s >= MIN_WINDOW_S


def test_descriptors_and_storage_io_are_the_trees_over_the_window(tmp_path: Any) -> None:
    """A real process that holds 20 more descriptors, then writes 4 MiB with fsync between two looks: its
    ``fds`` count them and ``write_bytes_per_s`` is what it wrote over the window (``/proc/PID/io``)."""
    code = (
        "import os, sys\n"
        "held = [open(os.devnull) for _ in range(20)]\n"
        "print('ready', flush=True); sys.stdin.readline()\n"
        "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)\n"
        "os.write(fd, b'x' * (4 << 20)); os.fsync(fd); os.close(fd)\n"
        "print('written', flush=True); sys.stdin.readline()\n"
    )
    child = subprocess.Popen(
        [PY, "-c", code, str(tmp_path / "out.bin")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline() == "ready\n"
        clock = Clock()
        meter = UsageMeter(clock)
        root = read_stat(child.pid)
        assert root is not None
        first = meter.measure(root, lambda: [root])
        assert first.fds is not None and first.fds >= 23 and first.write_bytes_per_s is None  # no window yet
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline() == "written\n"
        clock.now += 2.0
        again = read_stat(child.pid)
        assert again is not None
        second = meter.measure(again, lambda: [again])
        assert second.write_bytes_per_s is not None and second.write_bytes_per_s >= (4 << 20) / 2.0
        assert second.read_bytes_per_s == 0.0 and second.window_s == 2.0
        child.stdin.write("end\n")
        child.stdin.flush()
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
