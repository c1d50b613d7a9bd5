"""Identity by proof, never by resemblance: a process is a foss-supervisor only if it holds our PID lock
(``/proc/locks``) and is a live one only if it answers its control socket with that lock's instance id.

Strangers are real processes holding the dashboard port, generated with every likeness to us a command
line or a file can give (our name in argv, ``--config``, an open but unlocked ``foss-supervisor.lock``, a
socket that answers ``ping`` with a forged reply): each is named and left alone, never signalled.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import PY, DaemonHandle, free_port, kill_tree_by_pid
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.base.pidfile import PidFile, answers_as_holder
from foss_supervisor.daemon.instance import LOCK_NAME, bind_dashboard, inspect_instance
from foss_supervisor.errors import PortInUse

# a server on the port that looks like us in every way but the proof; SIGTERM is written down, not obeyed
STRANGER = r"""
import fcntl, json, os, signal, socket, sys, threading, time
port, marks, lock_dir = sys.argv[1:4]
opens_lock, answers, locks_other = map(int, sys.argv[4:7])
signal.signal(signal.SIGTERM, lambda *a: open(marks, "a").write("SIGTERM\n"))
held = []
if opens_lock:  # our lock file's name, open, never locked
    held.append(open(os.path.join(lock_dir, "foss-supervisor.lock"), "a+"))
    held[-1].write("f" * 32 + "\n"); held[-1].flush()
if locks_other:  # a lock it does hold, on a file of another name
    held.append(open(os.path.join(lock_dir, "foss-supervisor.pid"), "a+"))
    fcntl.flock(held[-1], fcntl.LOCK_EX)
if answers:  # a control socket that answers anything with a forged pong
    unix = socket.socket(socket.AF_UNIX); unix.bind(os.path.join(lock_dir, "control.sock")); unix.listen()
    def serve():
        while True:
            conn, _ = unix.accept()
            conn.recv(65536)
            pong = {"pong": True, "pid": os.getpid(), "phase": "ready", "instance": "f" * 32}
            conn.sendall(json.dumps({"v": 1, "id": 1, "ok": True, "result": pong}).encode() + b"\n")
            conn.close()
    threading.Thread(target=serve, daemon=True).start()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(port))); s.listen(8)
print("up", flush=True)
while True:
    time.sleep(1)
"""

ARGV_WORDS = st.sampled_from(
    [
        "foss-supervisor",
        "foss_supervisor",
        "-m",
        "start",
        "--foreground",
        "--config",
        "/srv/foss-supervisor-docs",
        "--root",
        "docs",
        "serve",
        "python3",
        "x",
    ]
)


def _stranger(
    tmp: Path, port: int, words: list[str], opens_lock: bool, answers: bool, locks_other: bool
) -> tuple[subprocess.Popen[str], Path]:
    marks = tmp / "signals.txt"
    flags = [str(int(x)) for x in (opens_lock, answers, locks_other)]
    proc = subprocess.Popen(
        [PY, "-c", STRANGER, str(port), str(marks), str(tmp), *flags, *words],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "up\n"
    return proc, marks


@pytest.fixture
def lock_dir(tmp_path: Path) -> Iterator[Path]:
    short = Path(f"/tmp/fs-id-{os.getpid()}-{tmp_path.name[-12:]}")  # a control socket path fits in 108 bytes
    short.mkdir()
    try:
        yield short
    finally:
        for child in short.iterdir():
            child.unlink()
        short.rmdir()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(ARGV_WORDS, max_size=6), st.booleans(), st.booleans(), st.booleans())
def test_a_stranger_holding_the_port_is_named_and_never_signalled(
    lock_dir: Path, words: list[str], opens_lock: bool, answers: bool, locks_other: bool
) -> None:
    for child in lock_dir.iterdir():
        child.unlink()
    port = free_port()
    proc, marks = _stranger(lock_dir, port, ["foss-supervisor", *words], opens_lock, answers, locks_other)
    try:
        assert not inspect_instance(proc.pid, grace_s=0.5).ours
        with pytest.raises(PortInUse) as refused:
            bind_dashboard("127.0.0.1", port, take_over=False)
        assert f"pid {proc.pid}" in str(refused.value) and "foss-supervisor" in str(refused.value)
        assert proc.poll() is None and not marks.exists()
    finally:
        kill_tree_by_pid(proc.pid)
        proc.wait(timeout=10)


def test_a_stranger_is_stopped_only_when_asked_to_take_the_port_over(lock_dir: Path) -> None:
    port = free_port()
    proc, marks = _stranger(lock_dir, port, ["foss-supervisor"], True, True, False)
    try:
        sock = bind_dashboard("127.0.0.1", port, take_over=True)
        sock.close()
        assert marks.read_text() == "SIGTERM\n"  # it ignores SIGTERM: then SIGKILL
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        kill_tree_by_pid(proc.pid)
        proc.wait(timeout=10)


def test_a_ping_answer_is_ours_only_with_the_lock_holders_instance_id(tmp_path: Path) -> None:
    pidfile = PidFile(tmp_path / "foss-supervisor.pid")
    assert pidfile.holders() == set() and not answers_as_holder({"pid": os.getpid(), "instance": ""}, pidfile)
    pidfile.acquire()
    try:
        assert pidfile.holders() == {os.getpid()}
        assert (tmp_path / LOCK_NAME).read_text().strip() == pidfile.instance_id != ""
        assert answers_as_holder({"pid": os.getpid(), "instance": pidfile.instance_id}, pidfile)
        assert not answers_as_holder({"pid": os.getpid(), "instance": "f" * 32}, pidfile)  # forged id
        assert not answers_as_holder({"pid": os.getpid() + 1, "instance": pidfile.instance_id}, pidfile)
        assert not answers_as_holder(None, pidfile)
    finally:
        pidfile.release()
    assert not answers_as_holder({"pid": os.getpid(), "instance": pidfile.instance_id}, pidfile)


def test_start_leaves_a_foreign_server_named_like_us_alone(daemon: DaemonHandle, tmp_path: Path) -> None:
    """Repro 26: a docs server run from /srv/foss-supervisor-docs held the dashboard port; `start` SIGTERMed
    it as a "stale instance". Now it is named and left alone, and `start` fails."""
    proc, marks = _stranger(tmp_path, daemon.port, ["--root", "/srv/foss-supervisor-docs"], False, False, False)
    try:
        daemon.write_config()
        result = daemon.cli("start")
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"pid {proc.pid}" in result.stderr and "/srv/foss-supervisor-docs" in result.stderr
        assert "--take-over-port" in result.stdout + result.stderr
        assert proc.poll() is None and not marks.exists()
        log = daemon.state_dir / "foss-supervisor.log"
        events = [json.loads(line)["event"] for line in log.read_text().splitlines()] if log.exists() else []
        assert "port_holder_stopping" not in events and "port_held_by_another_program" in events
    finally:
        kill_tree_by_pid(proc.pid)
        proc.wait(timeout=10)


def test_ping_gives_the_instance_id_written_in_the_lock(daemon: DaemonHandle) -> None:
    daemon.write_config()
    daemon.start()
    pidfile = PidFile(daemon.state_dir / "foss-supervisor.pid")
    pong = daemon.ping()
    assert daemon.proc is not None and pidfile.holders() == {daemon.proc.pid}
    assert pong is not None and pong["instance"] == pidfile.recorded_instance() and answers_as_holder(pong, pidfile)
