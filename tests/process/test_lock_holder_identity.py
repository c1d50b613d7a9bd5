"""A process that merely holds the daemon's lock file is no daemon of ours: ``stop`` and ``start`` act only on
a holder proven ours (the PID the daemon wrote after taking the lock, or an answer to ``ping`` with the
lock's instance id); any other holder is named and never signalled, whatever the PID file says."""

from __future__ import annotations

import os
import subprocess

import pytest
from helpers import PY, free_port, kill_tree_by_pid, wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.base.pidfile import PidFile

HOLD = (
    "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644); "
    "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(600)"
)
PID_FILES = st.sampled_from(["absent", "empty", "garbage", "dead", "another live", "the test"])


def _pid_file_text(kind: str, dead: int) -> str | None:
    return {
        "absent": None,
        "empty": "",
        "garbage": "not a pid\n",
        "dead": f"{dead}\n",
        "another live": f"{os.getppid()}\n",
        "the test": f"{os.getpid()}\n",
    }[kind]


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=PID_FILES, command=st.sampled_from(["stop", "start"]))
def test_a_stranger_holding_the_lock_is_named_and_never_signalled(
    kind: str, command: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp("lock")
    state = tmp / "state"
    state.mkdir()
    config = tmp / "config.yaml"
    config.write_text(f"state_dir: {state}\ndashboard: {{port: {free_port()}}}\nprograms: {{}}\n")
    gone = subprocess.Popen([PY, "-c", "pass"])
    gone.wait(timeout=10)
    text = _pid_file_text(kind, gone.pid)
    if text is not None:
        (state / "foss-supervisor.pid").write_text(text)
    holder = subprocess.Popen([PY, "-c", HOLD, str(state / "foss-supervisor.lock")], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        assert PidFile(state / "foss-supervisor.pid").inspect().locked
        result = subprocess.run(
            [PY, "-m", "foss_supervisor", command, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode != 0, result.stdout + result.stderr
        assert f"pid {holder.pid}" in result.stderr and "not proven a foss-supervisor daemon" in result.stderr
        assert "Traceback" not in result.stderr
        assert holder.poll() is None  # never signalled
    finally:
        kill_tree_by_pid(holder.pid)
        holder.wait(timeout=10)
    wait_for(lambda: not PidFile(state / "foss-supervisor.pid").inspect().locked, 10, "the lock released")
