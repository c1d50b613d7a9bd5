"""What supervisord, PM2 and process-compose users take for granted, against a real daemon and the real CLI:
``restart`` keeps the running config, ``logs`` with the daemon down reads the last config's files."""

from __future__ import annotations

import json
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


SLOW_READY = """
import sys, time
flag = sys.argv[1]
while True:
    try:
        open(flag).close()
        break
    except FileNotFoundError:
        time.sleep(0.05)
print("serving", flush=True)
time.sleep(3600)
"""


def test_is_ready_answers_at_once_or_waits_with_a_bound(daemon: DaemonHandle) -> None:
    slow, flag = daemon.tmp / "slow.py", daemon.tmp / "go"
    slow.write_text(SLOW_READY)
    daemon.write_config(
        f"""
        programs:
          quick: {{command: ['{PY}', '-c', 'import time; time.sleep(3600)'], start_timeout: 0.1}}
          slow: {{command: ['{PY}', '{slow}', '{flag}'], start_timeout: 60, ready: {{log: '^serving$'}}}}
          tool: {{command: ['{PY}', '-c', 'import time; time.sleep(3600)'], disabled: true}}
        """
    )
    daemon.start(wait_ready=False)  # the daemon counts itself ready once slow settles: not before the flag
    wait_for(lambda: daemon.ping() is not None, 20, "the daemon answering")
    wait_for(lambda: daemon.program("quick")["state"] == "RUNNING", 20, "quick running")
    assert daemon.cli("is-ready", "quick").returncode == 0  # the one selected is ready
    at_once = daemon.cli("is-ready")  # all: slow is still STARTING (tool is disabled: not counted)
    assert at_once.returncode == 1 and "not ready: slow (STARTING" in at_once.stderr, at_once.stderr
    timed_out = daemon.cli("is-ready", "--wait", "--timeout", "0.5", "all")
    assert timed_out.returncode == 1 and "not ready after " in timed_out.stderr
    assert "s: slow (STARTING" in timed_out.stderr
    # named by hand, a disabled program counts; stopped, it will not come up by itself: no wait for it
    given_up = daemon.cli("is-ready", "--wait", "--timeout", "3600", "tool")
    assert given_up.returncode == 1 and "s: tool (STOPPED" in given_up.stderr

    waiter = subprocess.Popen(
        [PY, "-m", "foss_supervisor", "is-ready", "--config", str(daemon.config_path), "--wait", "--timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=daemon.env,
    )
    try:
        flag.touch()
        out, err = waiter.communicate(timeout=90)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait(10)
    assert waiter.returncode == 0, out + err
    assert "ready: quick, slow" in out
    assert daemon.call("is_ready", names=["all"])["ready"] is True


def test_scale_adds_and_removes_replicas_without_touching_running_ones_and_survives_reload(
    daemon: DaemonHandle,
) -> None:
    sleeper = f"['{PY}', '-c', 'import time; time.sleep(3600)']"
    daemon.write_config(
        f"""
        programs:
          talker: {{command: {sleeper}, start_timeout: 0.1}}
          other: {{command: {sleeper}, start_timeout: 0.1}}
        """
    )
    daemon.start()
    wait_for(lambda: daemon.program("talker")["state"] == "RUNNING", 20, "talker running")
    first = daemon.program("talker")["pid"]

    result = daemon.cli("ctl", "scale", "talker", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "added: talker-1, talker-2" in result.stdout and "removed" not in result.stdout
    wait_for(lambda: daemon.program("talker-2")["state"] == "RUNNING", 20, "talker-2 running")
    assert daemon.program("talker")["pid"] == first  # the one that ran was not touched
    pids = {p["name"]: p["pid"] for p in daemon.call("status")["programs"]}

    assert daemon.cli("reload").returncode == 0  # the file is unchanged: the scale stays, nothing restarts
    assert {p["name"]: p["pid"] for p in daemon.call("status")["programs"]} == pids

    # the program's name now selects all its copies, as pm2's app name does
    listed = json.loads(daemon.cli("status", "talker", "--json").stdout)["programs"]
    assert [p["name"] for p in listed] == ["talker", "talker-1", "talker-2"]
    assert daemon.cli("ctl", "restart", "talker").returncode == 0
    after = {p["name"]: p["pid"] for p in daemon.call("status")["programs"]}
    assert all(after[n] != pids[n] for n in ("talker", "talker-1", "talker-2")) and after["other"] == pids["other"]
    pids = after

    assert daemon.cli("ctl", "scale", "talker", "2").returncode == 0
    names = {p["name"]: p["pid"] for p in daemon.call("status")["programs"]}
    assert names == {n: pids[n] for n in ("talker", "talker-1", "other")}

    # the file's replicas of talker edited: that is the new word, the scale ends
    text = daemon.config_path.read_text().replace("start_timeout: 0.1}", "start_timeout: 0.1, replicas: 4}", 1)
    daemon.config_path.write_text(text)
    assert daemon.cli("reload").returncode == 0
    assert sorted(p["name"] for p in daemon.call("status")["programs"]) == ["other", *(f"talker-{i}" for i in range(4))]
    assert daemon.program("other")["pid"] == pids["other"]


ROLLER = """
import os, signal, sys, time
name, journal, flag = sys.argv[1:4]
def note(word):
    with open(journal, "a") as f:
        f.write(f"{word} {name}\\n")
def stop(sig, frame):
    note("stopped")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
while not os.path.exists(flag):
    time.sleep(0.05)
note("serving")
print("serving", flush=True)
time.sleep(3600)
"""


def test_rolling_restart_takes_replicas_one_at_a_time_each_ready_first(daemon: DaemonHandle) -> None:
    roller, journal, flag = daemon.tmp / "roller.py", daemon.tmp / "journal", daemon.tmp / "go"
    roller.write_text(ROLLER)
    flag.touch()
    daemon.write_config(
        f"""
        programs:
          web:
            command: ['{PY}', '{roller}', 'web-{{replica}}', '{journal}', '{flag}']
            replicas: 3
            start_timeout: 30
            ready: {{log: '^serving$'}}
        """
    )
    daemon.start()
    wait_for(lambda: all(p["state"] == "RUNNING" for p in daemon.call("status")["programs"]), 30, "web running")
    before = {p["name"]: p["pid"] for p in daemon.call("status")["programs"]}
    journal.write_text("")
    result = daemon.cli("ctl", "restart", "--rolling", "web")
    assert result.returncode == 0, result.stdout + result.stderr
    after = {p["name"]: p["pid"] for p in daemon.call("status")["programs"]}
    assert set(after) == set(before) and all(after[n] != before[n] for n in before)
    # never two down at once: each replica serves again before the next one is stopped
    assert journal.read_text().split("\n")[:-1] == [
        f"{word} web-{i}" for i in range(3) for word in ("stopped", "serving")
    ]

    flag.unlink()  # web-0 can no longer become ready: the rolling restart stops there, the others keep serving
    stuck = daemon.cli("ctl", "restart", "--rolling", "web", "--wait", "1")
    assert stuck.returncode == 1
    assert [line.split(":")[0] for line in stuck.stdout.splitlines()] == ["web-0"]
    assert daemon.program("web-1")["state"] == "RUNNING" and daemon.program("web-2")["state"] == "RUNNING"
