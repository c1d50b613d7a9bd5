"""``stop`` against a daemon that does not answer because it is stopped (SIGSTOP, state T).

An operator who types ``stop`` expects the daemon and every program gone, or a clear failure with a
non-zero exit: never SUCCESS while programs keep running. Real daemons, real signals, bounded waits
(the leftovers' side alone: tests/process/test_stop_leftovers.py).
"""

from __future__ import annotations

import os
import signal

from helpers import PY, DaemonHandle, is_gone, wait_for

from foss_supervisor.base.procinfo import read_stat

SLEEPER = f"command: [{PY!r}, '-c', 'import time; time.sleep(300)']\n    start_timeout: 0.1\n    stop_timeout: 60"


def test_stop_continues_a_stopped_daemon_which_stops_its_programs(daemon: DaemonHandle) -> None:
    daemon.write_config(f"programs:\n  a:\n    {SLEEPER}\n  b:\n    {SLEEPER}\n")
    proc = daemon.start()
    children = [daemon.program(n)["pid"] for n in ("a", "b")]
    os.kill(children[0], signal.SIGSTOP)  # a stopped program too: it must handle its SIGTERM, not wait 60 s
    os.kill(proc.pid, signal.SIGSTOP)
    wait_for(lambda: (st := read_stat(proc.pid)) is not None and st.state == "T", 10, "daemon stopped")
    result = daemon.cli("stop")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is stopped (state T" in result.stderr and "SUCCESS" in result.stdout
    assert proc.wait(timeout=30) == 0
    assert all(is_gone(pid) for pid in children)
    log = (daemon.state_dir / "foss-supervisor.log").read_text()
    assert "stop_timeout_kill" not in log  # the stopped program was continued and ended by its SIGTERM
