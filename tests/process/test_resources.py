"""The ``resources`` command: CPU and memory of whole process trees, measured once for every reader.

The meter's arithmetic on a virtual clock with process records as ``/proc`` gives them; a real daemon whose
program's memory and CPU sit in its descendants (the program itself only waits); and the three readers (the
dashboard's charts, ``top``, ``/metrics``) showing the very figures of one reply.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import psutil
import pytest
from helpers import PY, DaemonHandle, wait_for
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from foss_supervisor.base.procinfo import ProcStat, read_stat, ticks_per_s
from foss_supervisor.cli.top import usage_cells
from foss_supervisor.core.usage import FORGET_S, MIN_WINDOW_S, PAGE_BYTES, UsageMeter
from foss_supervisor.web.history import History, mib
from foss_supervisor.web.metrics import exposition, trees

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


# ------------------------------------------------------------------------------------------------ a real daemon

# the program waits; its child holds 64 MiB and its grandchild burns a core: only the whole tree shows them
TREE = """
import os, sys, time
if len(sys.argv) == 1:
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, __file__, "child"])
    while True:
        time.sleep(1)
elif sys.argv[1] == "child":
    held = bytearray(64 * 2**20)
    for i in range(0, len(held), 4096):
        held[i] = 1
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, __file__, "burn"])
    while True:
        time.sleep(1)
else:
    while True:
        pass
"""


@pytest.mark.timeout(120)
def test_a_programs_figures_are_its_whole_tree_and_every_reader_shows_them(daemon: DaemonHandle) -> None:
    script = daemon.tmp / "tree.py"
    script.write_text(TREE)
    idle = "import time; time.sleep(300)"
    daemon.write_config(
        f"programs:\n  tree: {{command: [{PY!r}, {str(script)!r}]}}\n  idle: {{command: [{PY!r}, '-c', {idle!r}]}}\n"
    )
    daemon.start()
    wait_for(lambda: all(p["state"] == "RUNNING" for p in daemon.call("status")["programs"]), 20, "running")

    def busy() -> dict[str, Any] | None:
        reply: dict[str, Any] = daemon.call("resources")
        tree = reply["programs"]["tree"]
        return reply if tree["processes"] == 3 and (tree["cpu_percent"] or 0) > 50 else None

    reply = wait_for(busy, 30, "the grandchild's CPU in the program's figures")
    tree, root = reply["programs"]["tree"], psutil.Process(reply["programs"]["tree"]["pid"])
    assert sum(root.cpu_times()[:2]) < 1.0  # the program itself waits: the burning is its grandchild's
    assert tree["rss_bytes"] >= 64 * 2**20 > root.memory_info().rss
    members = [root, *root.children(recursive=True)]
    assert tree["rss_bytes"] == pytest.approx(sum(p.memory_info().rss for p in members), rel=0.05)
    status = daemon.call("status")
    assert reply["daemon"]["pid"] == status["daemon"]["pid"] and reply["daemon"]["processes"] == 1
    assert {n: t["pid"] for n, t in reply["services"].items()} == {s["name"]: s["pid"] for s in status["services"]}
    assert reply["worker"] is None and reply["host"]["disk_path"] == str(daemon.state_dir)
    assert reply["host"]["cpu_count"] == psutil.cpu_count()
    light = daemon.call("resources", programs=False)
    assert light["programs"] == {} and light["daemon"]["pid"] == status["daemon"]["pid"]
    _every_reader_shows_the_figures_of_one_reply(reply, status)


def _every_reader_shows_the_figures_of_one_reply(reply: dict[str, Any], status: dict[str, Any]) -> None:
    """The charts (History), ``top`` (its cells) and ``/metrics`` (its samples), fed one ``resources`` reply."""
    history = History(core=None)  # type: ignore[arg-type]  # fed by hand: no core asked
    history.record(json.loads(json.dumps(reply)), running=2)
    series = history.series()
    text = exposition({"status": status, "pipelines": [], "resources": reply}).decode()
    found: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if isinstance(s, Sample) and s.name.startswith("foss_supervisor_tree_"):
                found[(s.name, s.labels["kind"], s.labels["name"])] = s.value
    for name, tree in reply["programs"].items():
        assert series["programs"][name] == {"cpu": [tree["cpu_percent"]], "rss": [mib(tree["rss_bytes"])]}
        cpu, mem = usage_cells(tree)
        assert mem == f"{mib(tree['rss_bytes']):.1f}M" and cpu == (
            "-" if tree["cpu_percent"] is None else f"{tree['cpu_percent']:.0f}"
        )
        assert found[("foss_supervisor_tree_resident_memory_bytes", "program", name)] == tree["rss_bytes"]
        if tree["cpu_percent"] is not None:
            assert found[("foss_supervisor_tree_cpu_ratio", "program", name)] == tree["cpu_percent"] / 100
    assert series["rss"] == [mib(reply["daemon"]["rss_bytes"])] and series["cpu"] == [reply["host"]["cpu_percent"]]
    assert {(k, n) for k, n, _ in trees(reply)} == {
        (k, n) for (metric, k, n) in found if metric == "foss_supervisor_tree_processes"
    }
