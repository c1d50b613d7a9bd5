"""``stop`` against a daemon that does not answer because it is stopped (SIGSTOP, state T).

An operator who types ``stop`` expects the daemon and every program gone, or a clear failure with a
non-zero exit: never SUCCESS while programs keep running. Real daemons, real signals, bounded waits.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from helpers import PY, DaemonHandle, is_gone, wait_for

from foss_supervisor.base.procinfo import identity_of, read_stat
from foss_supervisor.cli.lifecycle import _programs_gone
from foss_supervisor.config import load_config

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


def test_programs_left_after_the_daemon_are_stopped_before_success_is_said(tmp_path: Path) -> None:
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(f"state_dir: {tmp_path / 'state'}\nprograms: {{}}\n")
    config = load_config(cfg_path, {})
    config.state_dir.mkdir()
    stray = subprocess.Popen([PY, "-c", "import time; time.sleep(300)"], start_new_session=True)
    try:
        ident = identity_of(stray.pid)
        assert ident is not None
        (config.state_dir / "children.json").write_text(json.dumps({"a": ident.as_dict()}))
        assert _programs_gone(config) is True
        assert stray.wait(timeout=15) != 0  # it was ended, not left running
        assert _programs_gone(config) is True  # nothing recorded any more: nothing to do
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait(timeout=5)
