"""What supervisord, PM2 and process-compose users take for granted, against a real daemon and the real CLI:
``restart`` keeps the running config, ``logs`` with the daemon down reads the last config's files."""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers import PY, DaemonHandle, wait_for

TALKER = """
import sys, time
while True:
    print(sys.argv[1], "says hello", flush=True)
    time.sleep(0.1)
"""


def _own_config(daemon: DaemonHandle, names: tuple[str, ...]) -> Path:
    """``my.yaml`` without a ``state_dir`` (it comes from the environment, as the default one's does)."""
    talker = daemon.tmp / "talker.py"
    talker.write_text(TALKER)
    body = "".join(f"  {n}: {{command: ['{PY}', '{talker}', {n}], start_timeout: 0.2s}}\n" for n in names)
    daemon.config_path = daemon.tmp / "my.yaml"
    daemon.config_path.write_text(f"dashboard: {{port: {daemon.port}}}\nprograms:\n{body}")
    daemon.env["FOSS_SUPERVISOR_STATE_DIR"] = str(daemon.state_dir)
    return daemon.config_path


def _bare_cli(daemon: DaemonHandle, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as typed, without ``--config``."""
    result = subprocess.run(
        [PY, "-m", "foss_supervisor", *args], capture_output=True, text=True, timeout=120, env=daemon.env
    )
    if (pid := daemon.read_pid()) and (not daemon.proc or pid != daemon.proc.pid) and pid not in daemon.extra_pids:
        daemon.extra_pids.append(pid)
    return result


def test_restart_without_config_keeps_the_running_config_and_logs_read_it_when_down(daemon: DaemonHandle) -> None:
    mine = _own_config(daemon, ("alpha", "beta"))
    daemon.start()
    wait_for(lambda: all(p["state"] == "RUNNING" for p in daemon.call("status")["programs"]), 20, "both running")
    old_pid = daemon.read_pid()

    result = _bare_cli(daemon, "restart")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"restarting on the config the daemon ran: {mine}" in result.stdout
    assert daemon.read_pid() != old_pid
    pong = daemon.ping()
    assert pong is not None and pong["config"] == str(mine.resolve())
    assert sorted(p["name"] for p in daemon.call("status")["programs"]) == ["alpha", "beta"]

    # a different --config is obeyed, and said
    other = daemon.tmp / "other.yaml"
    other.write_text(mine.read_text().replace("beta", "gamma"))
    result = _bare_cli(daemon, "restart", "--config", str(other))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"the daemon ran {mine.resolve()}; restarting it on the given config {other}" in result.stdout
    assert sorted(p["name"] for p in daemon.call("status")["programs"]) == ["alpha", "gamma"]
    wait_for(lambda: "gamma says hello" in _bare_cli(daemon, "logs", "gamma").stdout, 20, "gamma's output")

    stopped = _bare_cli(daemon, "stop")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    for args in (("logs", "gamma"), ("logs", "all"), ("logs",)):
        down = _bare_cli(daemon, *args)
        assert down.returncode == 0, down.stdout + down.stderr
        assert "not running; reading the log files" in down.stdout
        assert "gamma says hello" in down.stdout
    assert "alpha says hello" in _bare_cli(daemon, "logs", "all").stdout

    # with the daemon down, a bare restart brings back the config it ran last
    result = _bare_cli(daemon, "restart")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p["name"] for p in daemon.call("status")["programs"]) == ["alpha", "gamma"]
