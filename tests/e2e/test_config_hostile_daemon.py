"""A real daemon and hostile configs: an alias bomb refused by ``reload`` with the running config kept, a
recursive alias refused at start with its line, a too-deep control request answered while serving goes on."""

from __future__ import annotations

import json
import os
import signal
import socket

import psutil
from helpers import PY, DaemonHandle, wait_for
from helpers.strategies import BILLION_LAUGHS


def test_reload_of_an_alias_bomb_is_refused_and_the_running_config_stays(daemon: DaemonHandle) -> None:
    daemon.write_config(f"programs:\n  keep:\n    command: ['{PY}', '-c', 'import time; time.sleep(600)']\n")
    daemon.start()
    assert daemon.proc is not None
    rss_before = psutil.Process(daemon.proc.pid).memory_info().rss
    good = daemon.config_path.read_text()
    bomb = BILLION_LAUGHS[BILLION_LAUGHS.index("lol:") :]
    daemon.config_path.write_text(good + bomb)
    result = daemon.cli("reload")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "expands to more than" in result.stderr and f"{daemon.config_path}:" in result.stderr
    assert "Traceback" not in result.stderr
    assert daemon.program("keep")["state"] == "RUNNING"
    assert psutil.Process(daemon.proc.pid).memory_info().rss < rss_before + 50 * 1024 * 1024
    assert "the running config stays" in result.stderr  # the daemon refused it, not only the CLI
    # a recursive alias, through SIGHUP this time: the same refusal, and the daemon still answers
    daemon.config_path.write_text(good + "x: &r [*r]\n")
    os.kill(daemon.proc.pid, signal.SIGHUP)
    log_file = daemon.state_dir / "foss-supervisor.log"
    wait_for(lambda: "refers to a node that contains it" in log_file.read_text(), 10, "SIGHUP reload refused")
    assert daemon.ping() is not None and daemon.program("keep")["state"] == "RUNNING"


def test_start_with_a_recursive_alias_exits_2_with_the_line(daemon: DaemonHandle) -> None:
    daemon.write_config("programs:\n  a: &a\n    command: [x]\n    env: *a\n")
    result = daemon.cli("start")
    assert result.returncode == 2
    assert f"{daemon.config_path}:" in result.stderr and "programs.a.env" in result.stderr
    assert "Traceback" not in result.stderr


def test_daemon_answers_a_too_deep_request_and_keeps_serving(daemon: DaemonHandle) -> None:
    daemon.write_config()
    daemon.start()
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(daemon.socket_path))
        s.sendall(b'{"v":1,"id":1,"cmd":"status","args":{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}}\n")
        reply = json.loads(s.makefile("rb").readline())
    assert reply["ok"] is False and "nested deeper" in reply["error"]["message"]
    assert daemon.ping() is not None
    assert "Traceback" not in daemon.stderr()


def test_a_refused_reload_reports_every_env_error_and_no_secret(daemon: DaemonHandle) -> None:
    """What leaves the daemon about a refused file (the CLI's message, the daemon's log, status and /health
    warnings) names every bad variable with its line and quotes none of the secrets."""
    daemon.write_config(f"programs:\n  keep:\n    command: ['{PY}', '-c', 'import time; time.sleep(600)']\n")
    daemon.start()
    secrets = ["Listed-Secret-9a", "env-pw-7Q2xY", "short-tok-42"]
    daemon.write_config(
        "secrets: [Listed-Secret-9a]\n"
        "programs:\n"
        "  keep:\n"
        f"    command: ['{PY}', '-c', 'import time; time.sleep(600)']\n"
        "    stop_timeout: Listed-Secret-9a\n"
        "    env:\n"
        "      DB_PASSWORD: [env-pw-7Q2xY]\n"
        "      API_TOKEN: {t: short-tok-42}\n"
        "      SMTP_PASS: [true]\n"
    )
    result = daemon.cli("reload")
    assert result.returncode == 2, result.stdout + result.stderr
    for key in ("env.DB_PASSWORD", "env.API_TOKEN", "env.SMTP_PASS", "keep.stop_timeout"):
        assert key in result.stderr, result.stderr
    shown = {
        "cli": result.stdout + result.stderr,
        "log": (daemon.state_dir / "foss-supervisor.log").read_text(),
        "status": json.dumps(daemon.call("status")),
        "health": json.dumps(daemon.call("health")),
    }
    assert "env.DB_PASSWORD: must be a string or a number, got ***" in shown["status"] + shown["health"]
    assert not {
        where: [s for s in secrets if s in text] for where, text in shown.items() if any(s in text for s in secrets)
    }
    assert daemon.program("keep")["state"] == "RUNNING"
