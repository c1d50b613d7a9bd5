"""A save that moves what locates the running daemon (its state dir) needs a confirmation naming the
restart; once confirmed, the daemon keeps its own state dir until a restart, the CLI still finds it by its
config file, and no second daemon can start for that file (the gate's property: tests/unit/test_config_save.py)."""

from __future__ import annotations

import json
import subprocess

import pytest
from helpers import PY, DaemonHandle, kill_tree_by_pid, wait_for
from helpers.strategies import RUNNING, config_text

from foss_supervisor.base.pidfile import PidFile
from foss_supervisor.errors import ConfirmationRequired


def test_a_moved_state_dir_never_loses_the_daemon_nor_lets_a_second_one_start(daemon: DaemonHandle) -> None:
    daemon.config_path.write_text(config_text(daemon.state_dir, daemon.port))
    daemon.start()
    wait_for(lambda: all(daemon.program(n)["state"] == "RUNNING" for n in RUNNING), 20, "both programs running")
    assert daemon.proc is not None
    moved = daemon.tmp / "moved-state"
    text = config_text(moved, daemon.port)
    with pytest.raises(ConfirmationRequired, match=r"move state_dir from .* `foss-supervisor restart`"):
        daemon.call("config_write", text=text, dry_run=False)
    assert str(moved) not in daemon.config_path.read_text()
    reply = daemon.call("config_write", text=text, dry_run=False, allow_empty=True)
    assert "state_dir" in reply["plan"]["needs_daemon_restart"]
    assert str(moved) in daemon.config_path.read_text()

    status = daemon.cli("status", "--json")  # the file names `moved`; the daemon runs in the old state dir
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["daemon"]["state_dir"] == str(daemon.state_dir)
    assert f"uses the state dir {daemon.state_dir}" in status.stderr

    start = daemon.cli("start")
    assert start.returncode == 0 and "already running" in start.stdout, start.stdout + start.stderr
    assert not PidFile(moved / "foss-supervisor.pid").inspect().locked
    assert daemon.read_pid() == daemon.proc.pid

    # started in the foreground too, the CLI finds the first and starts nothing (the daemon's own refusal
    # behind it: tests/unit/test_configlock.py)
    argv = [PY, "-m", "foss_supervisor", "start", "--foreground", "--config", str(daemon.config_path)]
    second = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=daemon.env)
    try:
        out, err = second.communicate(timeout=60)
    finally:
        kill_tree_by_pid(second.pid)
    assert second.returncode == 0 and "already running" in out, out + err
    assert not PidFile(moved / "foss-supervisor.pid").inspect().locked

    stop = daemon.cli("stop")  # found by its config file too
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert daemon.proc.wait(timeout=60) == 0
