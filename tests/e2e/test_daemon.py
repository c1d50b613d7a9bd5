"""The daemon as users run it: a real subprocess, its CLI, its control socket, its port and signals."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time

import psutil
import pytest
from helpers import PY, DaemonHandle, get, is_gone, kill_tree_by_pid, need_root, wait_for

from foss_supervisor.control.client import ControlClient
from foss_supervisor.errors import CommandError, ProtocolError

SLEEPER = f"command: [{PY!r}, '-c', 'import time; time.sleep(300)']\n    start_timeout: 0.1"


def programs(*names: str) -> str:
    body = "programs:\n"
    for name in names:
        body += f"  {name}:\n    {SLEEPER}\n"
    return body


def test_start_serves_health_and_socket_is_private(daemon: DaemonHandle) -> None:
    daemon.write_config(programs("a", "b"))
    daemon.start()
    reply = get(daemon.port, "/health")
    assert reply.status == 200 and reply.json()["status"] == "healthy"
    assert reply.json()["programs"] == {"RUNNING": 2}
    assert stat.S_IMODE(os.stat(daemon.socket_path).st_mode) == 0o600
    assert daemon.read_pid() == daemon.proc.pid  # type: ignore[union-attr]
    assert (daemon.state_dir / "foss-supervisor.log").exists()


def test_sigterm_stops_programs_exits_zero_and_cleans_up(daemon: DaemonHandle) -> None:
    daemon.write_config(programs("a"))
    proc = daemon.start()
    child = daemon.program("a")["pid"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert not daemon.socket_path.exists()
    assert not (daemon.state_dir / "foss-supervisor.pid").exists()
    assert is_gone(child)


def test_background_start_is_idempotent_and_stop_works(daemon: DaemonHandle) -> None:
    daemon.write_config(programs("a"))
    first = daemon.cli("start")
    assert first.returncode == 0, first.stderr
    assert "[SUCCESS]" in first.stdout and f"http://127.0.0.1:{daemon.port}/" in first.stdout
    pid = daemon.read_pid()
    second = daemon.cli("start")
    assert second.returncode == 0
    assert "already running" in second.stdout and f"pid {pid}" in second.stdout
    assert daemon.read_pid() == pid
    status = daemon.cli("status", "--json")
    assert json.loads(status.stdout)["daemon"]["pid"] == pid
    text = daemon.cli("status")
    assert "a" in text.stdout and "RUNNING" in text.stdout
    stop = daemon.cli("stop")
    assert stop.returncode == 0 and "stopped" in stop.stdout
    assert is_gone(pid)
    assert daemon.cli("status").returncode == 3


def test_restart_flag_replaces_a_healthy_instance(daemon: DaemonHandle) -> None:
    daemon.write_config(programs("a"))
    assert daemon.cli("start").returncode == 0
    old = daemon.read_pid()
    result = daemon.cli("start", "--restart")
    assert result.returncode == 0, result.stderr
    assert daemon.read_pid() not in (None, old)
    assert is_gone(old)  # type: ignore[arg-type]


def test_unhealthy_instance_is_replaced(daemon: DaemonHandle) -> None:
    daemon.write_config(programs("a"))
    frozen = daemon.start()
    old_child = daemon.program("a")["pid"]
    os.kill(frozen.pid, signal.SIGSTOP)  # alive, holds the lock, answers nothing
    try:
        result = daemon.cli("start")
    finally:
        if frozen.poll() is None:
            os.kill(frozen.pid, signal.SIGCONT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not answering" in result.stderr
    # SIGTERM came with SIGCONT: the stopped daemon woke up and stopped its program itself
    assert frozen.wait(timeout=10) == 0
    assert is_gone(old_child)
    new = daemon.read_pid()
    assert new not in (None, frozen.pid)
    assert daemon.ping()


def test_stale_pid_file_is_detected_and_replaced(daemon: DaemonHandle) -> None:
    daemon.write_config()
    daemon.state_dir.mkdir(parents=True)
    (daemon.state_dir / "foss-supervisor.pid").write_text(f"{os.getpid()}\n")  # a live PID, not a daemon
    result = daemon.cli("start")
    assert result.returncode == 0, result.stderr
    assert f"stale PID file (pid {os.getpid()}" in result.stdout
    assert daemon.read_pid() != os.getpid()


def test_second_foreground_daemon_is_refused(daemon: DaemonHandle) -> None:
    daemon.write_config()
    daemon.start()
    second = subprocess.run(
        [PY, "-m", "foss_supervisor", "start", "--foreground", "--config", str(daemon.config_path)],
        capture_output=True,
        text=True,
        timeout=30,
        env=daemon.env,
    )
    # the CLI sees a healthy instance and leaves it alone
    assert second.returncode == 0 and "already running" in second.stdout
    assert daemon.proc.poll() is None  # type: ignore[union-attr]


def test_port_held_by_foreign_process_is_refused_and_named(daemon: DaemonHandle) -> None:
    daemon.write_config()
    holder = subprocess.Popen(
        [PY, "-m", "http.server", "--bind", "127.0.0.1", str(daemon.port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _port_open(daemon.port), 10, "foreign server")
        result = daemon.cli("start")
        assert result.returncode == 1
        assert f"port 127.0.0.1:{daemon.port} is in use by pid {holder.pid}" in result.stderr
        assert "http.server" in result.stderr and "--take-over-port" in result.stderr
        assert holder.poll() is None  # never touched without --take-over-port
        taken = daemon.cli("start", "--take-over-port")
        assert taken.returncode == 0, taken.stderr
        assert holder.wait(timeout=10) == -signal.SIGTERM
    finally:
        kill_tree_by_pid(holder.pid)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_broken_yaml_is_refused_with_file_line_and_reason(daemon: DaemonHandle) -> None:
    daemon.config_path.write_text("programs:\n  a:\n    command: [x]\n    restart: always\n")
    result = daemon.cli("start")
    assert result.returncode == 2
    assert f"{daemon.config_path}:4: programs.a.restart: unknown key" in result.stderr


def test_reload_applies_diff_and_refuses_broken_file(daemon: DaemonHandle) -> None:
    daemon.write_config(programs("keep", "change", "remove"))
    daemon.start()
    before = {p["name"]: p["pid"] for p in daemon.call("status")["programs"]}
    new = programs("keep", "change", "add").replace(
        "  change:\n    " + SLEEPER, "  change:\n    " + SLEEPER + "\n    stop_timeout: 2"
    )
    daemon.write_config(new)
    plan = daemon.cli("reload", "--dry-run")
    assert plan.returncode == 0 and "would apply: 1 added, 1 changed, 1 removed" in plan.stdout
    assert {p["name"]: p["pid"] for p in daemon.call("status")["programs"]} == before
    done = daemon.cli("reload")
    assert done.returncode == 0, done.stderr
    after = {p["name"]: p for p in daemon.call("status")["programs"]}
    assert set(after) == {"keep", "change", "add"}
    assert after["keep"]["pid"] == before["keep"]
    wait_for(lambda: daemon.program("change")["state"] == "RUNNING", 10, "changed program running")
    assert daemon.program("change")["pid"] != before["change"]
    assert is_gone(before["remove"])
    # a broken file: refused with the reason, the running config stays
    daemon.config_path.write_text(f"state_dir: {daemon.state_dir}\nprograms: {{keep: {{command: 42}}}}\n")
    broken = daemon.cli("reload")  # the CLI reads the file first and says why
    assert broken.returncode == 2
    assert "config refused" in broken.stderr and "programs.keep.command" in broken.stderr
    with pytest.raises(CommandError, match=r"config refused, the running config stays: .*programs.keep.command"):
        daemon.call("reload")  # and so does the daemon, asked directly
    daemon.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
    wait_for(lambda: "reload_refused" in (daemon.state_dir / "foss-supervisor.log").read_text(), 10, "refusal")
    assert daemon.program("keep")["pid"] == before["keep"]
    assert {p["name"] for p in daemon.call("status")["programs"]} == {"keep", "change", "add"}
    # SIGHUP reloads too (a valid file again)
    daemon.write_config(programs("keep"))
    daemon.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
    wait_for(lambda: {p["name"] for p in daemon.call("status")["programs"]} == {"keep"}, 15, "SIGHUP reload")


def test_malformed_control_messages_get_errors_and_daemon_keeps_serving(daemon: DaemonHandle) -> None:
    daemon.write_config(programs("a"))
    daemon.start()
    path = str(daemon.socket_path)
    for raw, expected in [
        (b"garbage\n", "not valid JSON"),
        (b'{"v": 1, "cmd": "format_disk"}\n', "unknown command"),
        (b'{"v": 1, "cmd": "stop", "args": {"names": "a"}}\n', "must be list"),
        (b'{"v": 1, "cmd": "__class__"}\n', "unknown command"),
        (b'{"v": 9, "cmd": "ping"}\n', "protocol version"),
    ]:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(path)
            s.sendall(raw)
            reply = json.loads(s.makefile().readline())
        assert reply["ok"] is False and expected in reply["error"]["message"], (raw, reply)
    with socket.socket(socket.AF_UNIX) as s:  # 2 MB without a newline
        s.settimeout(10)
        s.connect(path)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(b"x" * (2 * 1024 * 1024))
        reply = json.loads(s.makefile().readline())
        assert "longer than" in reply["error"]["message"]
    with ControlClient(daemon.socket_path) as client:
        with pytest.raises(ProtocolError):
            client.call("logs", name="a", bogus=1)
        with pytest.raises(CommandError, match="no such program"):
            client.call("stop", names=["nope"])
        assert client.call("ping")["pong"] is True  # same connection still serves
    assert daemon.program("a")["state"] == "RUNNING"


def test_ctl_stop_lasts_across_daemon_restart(daemon: DaemonHandle) -> None:
    daemon.write_config(programs("a", "b"))
    assert daemon.cli("start").returncode == 0
    stopped = daemon.cli("ctl", "stop", "a")
    assert stopped.returncode == 0 and "a: STOPPED" in stopped.stdout
    assert daemon.cli("restart").returncode == 0
    status = {p["name"]: p["state"] for p in daemon.call("status")["programs"]}
    assert status == {"a": "STOPPED", "b": "RUNNING"}
    assert daemon.cli("ctl", "start", "a").returncode == 0
    assert daemon.program("a")["state"] == "RUNNING"


def test_kill_9_of_daemon_then_start_stops_leftovers_first(daemon: DaemonHandle) -> None:
    daemon.write_config(programs("a", "b"))
    proc = daemon.start()
    old_children = {p["name"]: p["pid"] for p in daemon.call("status")["programs"]}
    proc.kill()
    proc.wait(timeout=10)
    assert all(psutil.pid_exists(pid) for pid in old_children.values())  # orphans left behind
    result = daemon.cli("start")
    assert result.returncode == 0, result.stderr
    for pid in old_children.values():
        assert is_gone(pid)
    new_children = {p["name"]: p["pid"] for p in daemon.call("status")["programs"]}
    assert set(new_children) == {"a", "b"} and not set(new_children.values()) & set(old_children.values())
    log = (daemon.state_dir / "foss-supervisor.log").read_text()
    assert '"leftover_stopped"' in log


def test_logs_and_redacted_env(daemon: DaemonHandle) -> None:
    code = "import time; print('hello from talker', flush=True); time.sleep(300)"
    daemon.write_config(f"""programs:
  talker:
    command: [{PY!r}, '-c', {code!r}]
    start_timeout: 0.1
    env: {{API_TOKEN: hunter2, DB_PASSWORD: s3cret, MODE: prod}}
""")
    daemon.start()
    wait_for(lambda: "hello from talker" in daemon.cli("logs", "talker").stdout, 10, "log line")
    status = daemon.cli("status", "--json").stdout
    assert "hunter2" not in status and "s3cret" not in status
    env = json.loads(status)["programs"][0]["env"]
    assert env == {"API_TOKEN": "***", "DB_PASSWORD": "***", "MODE": "prod"}
    body = get(daemon.port, "/api/status").json()
    assert "hunter2" not in json.dumps(body)


def test_stop_of_many_programs_ignoring_sigterm_is_concurrent(daemon: DaemonHandle) -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('r', flush=True); time.sleep(300)"
    body = (
        "programs:\n  stubborn:\n"
        f"    command: [{PY!r}, '-c', {code!r}]\n    start_timeout: 0.3\n"
        "    stop_timeout: 1\n    replicas: 5\n"
    )
    daemon.write_config(body)
    proc = daemon.start()
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    # five programs, one second each, stopped together: well under five seconds
    assert time.monotonic() - t0 < 4.0


def test_control_socket_refuses_other_uids(daemon: DaemonHandle) -> None:
    need_root("it acts as another uid")
    daemon.write_config()
    daemon.start()
    os.chmod(daemon.socket_path, 0o666)  # even if the mode were opened up, the uid check refuses
    os.chmod(daemon.state_dir, 0o755)
    # chdir first, so the unprivileged uid needs no search right on the temp dir's parents
    # the daemon answers a refused peer at once and hangs up, so the client only reads
    code = (
        f"import os, socket; os.chdir({str(daemon.state_dir)!r}); os.setuid(65534); "
        "s = socket.socket(socket.AF_UNIX); s.connect('control.sock'); "
        "print(s.makefile().readline())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=10)
    assert "permission denied" in out.stdout, out.stderr


def test_leftover_record_with_a_reused_pid_is_never_signalled(daemon: DaemonHandle) -> None:
    daemon.write_config()
    daemon.state_dir.mkdir(parents=True)
    # a record whose PID now belongs to someone else (this test process, with another start time)
    (daemon.state_dir / "children.json").write_text(json.dumps({"old": {"pid": os.getpid(), "create_time": 1.0}}))
    daemon.start()
    assert psutil.pid_exists(os.getpid())  # still here: the start time did not match, so no signal was sent
    assert '"leftover_stopped"' not in (daemon.state_dir / "foss-supervisor.log").read_text()
    assert (
        not (daemon.state_dir / "children.json").exists()
        or "old" not in (daemon.state_dir / "children.json").read_text()
    )


def test_logs_follow_prints_new_lines(daemon: DaemonHandle) -> None:
    code = "import time\nfor i in range(1000):\n    print('tick', i, flush=True)\n    time.sleep(0.05)\ntime.sleep(300)"
    daemon.write_config(f"programs:\n  ticker:\n    command: [{PY!r}, '-c', {code!r}]\n    start_timeout: 0.1\n")
    daemon.start()
    wait_for(lambda: "tick 2" in daemon.cli("logs", "ticker", "-n", "5").stdout, 10, "first ticks")
    follow = subprocess.Popen(
        [PY, "-m", "foss_supervisor", "logs", "--config", str(daemon.config_path), "ticker", "-n", "1", "-f"],
        stdout=subprocess.PIPE,
        text=True,
        env=daemon.env,
    )
    try:
        assert follow.stdout is not None
        first = follow.stdout.readline()
        later = [follow.stdout.readline() for _ in range(5)]
        numbers = [int(line.split()[1]) for line in [first, *later]]
        assert numbers == sorted(numbers) and numbers[-1] > numbers[0]  # lines written after the call arrive
    finally:
        follow.terminate()
        follow.wait(timeout=10)
