"""Hundreds of real programs under the common 1,024-style soft open-files limit (scaled down for CI).

The programs are ``sleep`` (a few hundred KB each) so the test measures the daemon, not the children.
"""

from __future__ import annotations

import json
import resource
import shutil
import sys
import threading
import time
from typing import Any

import psutil
import pytest
from helpers import DaemonHandle, is_gone, wait_for

from foss_supervisor.config import MAX_PROGRAMS
from foss_supervisor.control.client import call
from foss_supervisor.daemon.fdlimits import FDS_PER_PROGRAM, FDS_RESERVED

PY = sys.executable
SLEEP = shutil.which("sleep") or "/bin/sleep"


def fleet(count: int) -> str:
    body = "".join(f"  p{i:03d}: {{command: ['{SLEEP}', '3600'], start_timeout: 0.2}}\n" for i in range(count))
    return "programs:\n" + body


@pytest.fixture
def low_limit() -> tuple[int, int]:
    """A soft limit of 256 (far below what the fleet needs) and a hard limit that allows it."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip(f"hard open-files limit is only {hard}")
    return 256, hard


def start_limited(daemon: DaemonHandle, limit: tuple[int, int]) -> None:
    daemon.start(wait_ready=False, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, limit))


def running(daemon: DaemonHandle, count: int) -> bool:
    programs = daemon.call("status")["programs"]
    return len(programs) == count and all(p["state"] == "RUNNING" for p in programs)


def test_hundreds_of_programs_under_a_low_soft_limit_all_run_and_all_stop(
    daemon: DaemonHandle, low_limit: tuple[int, int]
) -> None:
    daemon.write_config(fleet(400))  # about 4 descriptors each: far past a soft limit of 256
    start_limited(daemon, low_limit)
    daemon.wait_ready(timeout_s=90)
    wait_for(lambda: running(daemon, 400), 90, "400 programs RUNNING")
    assert daemon.proc is not None
    children = psutil.Process(daemon.proc.pid).children()
    assert len([c for c in children if c.name() == "sleep"]) == 400
    assert daemon.cli("status").returncode == 0
    daemon.proc.terminate()
    assert daemon.proc.wait(timeout=90) == 0
    wait_for(lambda: all(is_gone(c.pid) for c in children), 10, "every program gone")


def test_growing_fleet_by_reload_keeps_the_control_socket_answering(
    daemon: DaemonHandle, low_limit: tuple[int, int]
) -> None:
    daemon.write_config(fleet(50))
    start_limited(daemon, low_limit)
    daemon.wait_ready(timeout_s=60)
    wait_for(lambda: running(daemon, 50), 60, "50 programs RUNNING")
    failures: list[str] = []
    answered = 0
    stop = threading.Event()

    def poll_status() -> None:  # an operator's `status` in a loop while the reload runs
        nonlocal answered
        while not stop.is_set():
            try:
                call(daemon.socket_path, "status", timeout_s=30.0)
                answered += 1
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.05)

    poller = threading.Thread(target=poll_status, daemon=True)
    poller.start()
    try:
        daemon.write_config(fleet(300))
        reload = daemon.cli("reload", timeout_s=300)
        assert reload.returncode == 0, reload.stdout + reload.stderr
        wait_for(lambda: running(daemon, 300), 90, "300 programs RUNNING")
    finally:
        stop.set()
        poller.join(timeout=40)
    assert not failures and answered > 0
    assert "Traceback" not in daemon.stderr()


def test_a_reload_that_stops_the_most_programs_at_once_logs_one_line_and_no_traceback(daemon: DaemonHandle) -> None:
    """2,000 exits at once (the most a config may hold) once overflowed the event loop's signal wakeup socket:
    hundreds of "Exception ignored" tracebacks on stderr, one per child. Now nothing reaches stderr, and the
    daemon's log says how the stop went in one line."""
    count = MAX_PROGRAMS
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < FDS_RESERVED + FDS_PER_PROGRAM * count:
        pytest.skip(f"hard open-files limit {hard} is too low for {count} programs")
    daemon.write_config(fleet(count))
    daemon.start(wait_ready=False)
    daemon.wait_ready(timeout_s=120)
    wait_for(lambda: running(daemon, count), 120, f"{count} programs RUNNING")
    assert daemon.proc is not None
    pids = [p["pid"] for p in daemon.call("status")["programs"]]  # the programs (not the dashboard process)
    daemon.write_config("programs: {}")
    reload = daemon.cli("reload", timeout_s=300)
    assert reload.returncode == 0 and f"{count} removed" in reload.stdout, reload.stdout + reload.stderr
    wait_for(lambda: all(is_gone(pid) for pid in pids), 60, "every program gone")
    assert "Exception ignored" not in daemon.stderr() and "Traceback" not in daemon.stderr()

    def stop_summaries() -> list[dict[str, Any]]:  # the log has its own writer thread: a line may come a bit later
        lines = [json.loads(line) for line in (daemon.state_dir / "foss-supervisor.log").read_text().splitlines()]
        return [line for line in lines if line.get("event") == "programs_stopped"]

    summaries = wait_for(stop_summaries, 30, "the stop's summary line in the daemon's log")
    assert len(summaries) == 1 and summaries[0]["count"] == count and summaries[0]["not_stopped_count"] == 0
