"""The real daemon under a pretend systemd: the exact sd_notify sequence, the watchdog, socket activation."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from helpers import PY, DaemonHandle, kill_tree_by_pid, request, wait_for

from foss_supervisor.systemd.notify import parse_message


class NotifyReceiver:
    """A datagram socket bound where NOTIFY_SOCKET points, collecting parsed messages."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.path = path
        self.messages: list[dict[str, str]] = []

    def next(self, timeout_s: float = 15.0) -> dict[str, str]:
        self.sock.settimeout(timeout_s)
        msg = parse_message(self.sock.recv(65536))
        self.messages.append(msg)
        return msg

    def next_without(self, key: str, timeout_s: float = 15.0) -> dict[str, str]:
        """The next message that is not just ``key`` (watchdog pings and status refreshes interleave)."""
        deadline = time.monotonic() + timeout_s
        while True:
            msg = self.next(max(0.05, deadline - time.monotonic()))
            if set(msg) - {key, "STATUS"} or (key == "" and msg):
                return msg

    def pings_within(self, seconds: float) -> int:
        count = 0
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                if "WATCHDOG" in self.next(left):
                    count += 1
            except TimeoutError:
                break
        return count


SLEEPER = f'command: [{PY!r}, \'-c\', \'import os, time; print(sorted(k for k in os.environ if k.startswith(("NOTIFY", "WATCHDOG", "LISTEN")))); time.sleep(300)\']\n    start_timeout: 0.2'  # noqa: E501


def test_notify_sequence_for_start_watchdog_reload_and_stop(daemon: DaemonHandle, tmp_path: Path) -> None:
    receiver = NotifyReceiver(tmp_path / "notify.sock")
    daemon.write_config(f"programs:\n  a:\n    {SLEEPER}\n  b:\n    {SLEEPER}\n")
    daemon.env.update(NOTIFY_SOCKET=str(receiver.path), WATCHDOG_USEC="300000")  # ping every 0.15 s
    proc = daemon.start(wait_ready=False)

    ready = receiver.next_without("WATCHDOG")
    assert ready["READY"] == "1"
    assert ready["STATUS"] == "2/2 programs running"  # both autostart programs were RUNNING before READY=1
    assert daemon.ping()["phase"] == "ready"  # the port and control socket were up too
    assert all(p["state"] == "RUNNING" for p in daemon.call("status")["programs"])
    assert receiver.pings_within(1.0) >= 3

    # children never inherit the daemon's NOTIFY_SOCKET / WATCHDOG_*
    wait_for(lambda: "[]" in daemon.cli("logs", "a").stdout, 10, "child env line")

    # a stuck daemon stops pinging; once it runs again, so do the pings
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        receiver.pings_within(0.2)  # drain what was already queued
        assert receiver.pings_within(0.8) == 0
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    assert receiver.pings_within(1.0) >= 2

    daemon.call("reload")
    reloading = receiver.next_without("WATCHDOG")
    assert reloading["RELOADING"] == "1" and int(reloading["MONOTONIC_USEC"]) > 0
    assert abs(int(reloading["MONOTONIC_USEC"]) / 1e6 - time.monotonic()) < 5  # CLOCK_MONOTONIC
    assert receiver.next_without("WATCHDOG")["READY"] == "1"

    proc.send_signal(signal.SIGTERM)
    stopping = receiver.next_without("WATCHDOG")
    assert stopping["STOPPING"] == "1"
    assert proc.wait(timeout=30) == 0
    later = []
    receiver.sock.settimeout(0.2)
    while True:
        try:
            later.append(parse_message(receiver.sock.recv(65536)))
        except TimeoutError:
            break
    assert all("READY" not in m for m in later)


def test_socket_activation_serves_on_the_passed_socket(daemon: DaemonHandle) -> None:
    daemon.write_config()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    activated_port = listener.getsockname()[1]
    # a wrapper puts the socket on fd 3 and sets LISTEN_PID to its own pid before exec, as systemd does
    wrapper = (
        "import os, sys; fd = int(sys.argv[1]); os.dup2(fd, 3); os.close(fd); "
        "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES='dashboard'); "
        "os.execv(sys.executable, [sys.executable, '-m', 'foss_supervisor', 'start', '--foreground', "
        f"'--config', {str(daemon.config_path)!r}])"
    )
    log = (daemon.tmp / "daemon.stderr").open("ab")
    proc = subprocess.Popen(
        [PY, "-c", wrapper, str(listener.fileno())],
        pass_fds=[listener.fileno()],
        env=daemon.env,
        stdout=log,
        stderr=log,
    )
    listener.close()  # the daemon holds its own copy now
    try:
        daemon.proc = proc
        daemon.wait_ready()
        health = request(activated_port, "GET", "/health")
        assert health.status == 200 and health.json()["status"] == "healthy"
        with socket.socket() as probe:  # the configured port was never bound
            assert probe.connect_ex(("127.0.0.1", daemon.port)) != 0
        assert '"socket_activated"' in (daemon.state_dir / "foss-supervisor.log").read_text()
    finally:
        log.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                kill_tree_by_pid(proc.pid)


def test_sockets_for_another_pid_are_ignored(daemon: DaemonHandle) -> None:
    daemon.write_config()
    daemon.env.update(LISTEN_FDS="1", LISTEN_PID="1")  # not for us: bind the configured port as usual
    daemon.start()
    assert request(daemon.port, "GET", "/health").status == 200


def test_daemon_log_lines_carry_program_and_state_fields(daemon: DaemonHandle) -> None:
    daemon.write_config(f"programs:\n  a:\n    {SLEEPER}\n")
    daemon.start()

    def running() -> list[dict[str, object]]:  # the log's writer thread writes a moment after the event
        lines = [json.loads(x) for x in (daemon.state_dir / "foss-supervisor.log").read_text().splitlines()]
        return [x for x in lines if x.get("event") == "program_state" and x.get("state") == "RUNNING"]

    wait_for(lambda: bool(running()), 10, "the RUNNING line written")
    first = running()[0]
    assert first["program"] == "a" and first["old"] == "STARTING"


def test_install_service_prints_units_and_commands(daemon: DaemonHandle) -> None:
    daemon.write_config()
    result = daemon.cli("install-service", "--print", "--user", "--socket")
    assert result.returncode == 0, result.stderr
    assert "Type=notify" in result.stdout and "ListenStream=" in result.stdout
    assert f"Environment=FOSS_SUPERVISOR_CONFIG={daemon.config_path}" in result.stdout
    assert "systemctl --user enable --now foss-supervisor.socket foss-supervisor.service" in result.stdout
    assert "sudo" not in result.stdout


def test_install_service_without_config_carries_what_the_operator_exported(tmp_path: Path) -> None:
    """The default config, as loaded with the exported port and state dir: the unit runs the daemon there too."""
    env = {**os.environ, "FOSS_SUPERVISOR_PORT": "18555", "FOSS_SUPERVISOR_STATE_DIR": str(tmp_path / "state")}
    env.pop("FOSS_SUPERVISOR_CONFIG", None)
    argv = [PY, "-m", "foss_supervisor", "install-service", "--print", "--user"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert "Environment=FOSS_SUPERVISOR_PORT=18555" in result.stdout
    assert f"Environment=FOSS_SUPERVISOR_STATE_DIR={tmp_path / 'state'}" in result.stdout
