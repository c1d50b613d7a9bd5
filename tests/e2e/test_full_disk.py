"""A full disk under the logs or the state: writes fail, are counted and shown, never flood, and recover.

These tests put the folder on a real, small tmpfs (root only), fill it, and watch a real daemon keep
supervising. Every wait is bounded; every mount is undone. (The counting alone: tests/unit/test_write_failures.py.)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path

import psutil
from helpers import PY, DaemonHandle, fill, health, is_gone, tmpfs, wait_for

CHATTY = (
    f"command: [{PY!r}, '-u', '-c', 'import time; [(print(\"x\" * 200), time.sleep(0.001)) for _ in iter(int, 1)]']"
)
SLEEPER = f"command: [{PY!r}, '-c', 'import time; time.sleep(300)']"


# ------------------------------------------------------------------------------------------ without a disk


# ------------------------------------------------------------------------------------------ a real full disk


def problems(daemon: DaemonHandle) -> list[str]:
    """What the daemon shows of failing writes: warnings (degraded, /health 200), as verdict.assess says."""
    return list(daemon.call("status")["daemon"]["warnings"])


def kill_and_wait_restart(daemon: DaemonHandle, name: str) -> None:
    old = daemon.program(name)["pid"]
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: (p := daemon.program(name))["state"] == "RUNNING" and p["pid"] != old, 20, f"{name} restarted")


def test_full_log_disk_is_counted_shown_and_recovers_without_flooding_stderr(daemon: DaemonHandle) -> None:
    daemon.write_config(f"programs:\n  chatty:\n    {CHATTY}\n  quiet:\n    {SLEEPER}\n")
    with tmpfs(daemon.state_dir / "logs", "2m") as logs:
        daemon.start()
        filler = fill(logs)
        found = wait_for(lambda: [p for p in problems(daemon) if "chatty.log" in p], 20, "the problem shown")
        assert "No space left on device" in found[0]
        code, body = health(daemon.port)
        assert (code, body["status"]) == (200, "degraded") and any("chatty.log" in p for p in body["warnings"])
        before = len(daemon.stderr())
        kill_and_wait_restart(daemon, "quiet")  # still supervising, while the chatty one keeps failing
        wait_for(lambda: "writes failed" in " ".join(problems(daemon)), 10, "failures counted")
        grown = len(daemon.stderr()) - before
        assert grown < 20_000, f"stderr grew {grown} bytes while the disk was full"
        assert "Logging error" not in daemon.stderr()
        filler.unlink()
        wait_for(lambda: not problems(daemon), 20, "the problem cleared after space returned")
        size = (logs / "chatty.log").stat().st_size
        wait_for(lambda: (logs / "chatty.log").stat().st_size > size, 10, "output written again")
        assert health(daemon.port)[0] == 200
        daemon.cleanup()


def test_a_quiet_programs_failing_log_clears_once_space_returns(daemon: DaemonHandle) -> None:
    once = f"command: [{PY!r}, '-u', '-c', 'import time; print(\"x\" * 20000); time.sleep(300)']"
    daemon.write_config(f"programs:\n  once:\n    {once}\n")
    with tmpfs(daemon.state_dir / "logs", "1m") as logs:
        daemon.start()
        filler = fill(logs)
        kill_and_wait_restart(daemon, "once")  # its one burst of output meets the full disk, then it is silent
        wait_for(lambda: [p for p in problems(daemon) if "once.log" in p], 20, "the problem shown")
        filler.unlink()
        wait_for(lambda: not problems(daemon), 30, "the problem cleared, though nothing writes that log again")
        assert daemon.program("once")["state"] == "RUNNING"
        assert not list(logs.glob(".write-probe-*"))
        daemon.cleanup()


def test_a_removed_programs_failing_log_is_no_longer_a_problem(daemon: DaemonHandle) -> None:
    daemon.write_config(f"programs:\n  chatty:\n    {CHATTY}\n  quiet:\n    {SLEEPER}\n")
    with tmpfs(daemon.state_dir / "logs", "1m") as logs:
        daemon.start()
        filler = fill(logs)
        wait_for(lambda: [p for p in problems(daemon) if "chatty.log" in p], 20, "the problem shown")
        daemon.write_config(f"programs:\n  quiet:\n    {SLEEPER}\n")
        daemon.call("reload")
        assert problems(daemon) == []  # the disk is still full, but nothing writes that log any more
        filler.unlink()
        daemon.cleanup()


def test_full_state_disk_is_shown_and_no_program_runs_twice_after_kill9(daemon: DaemonHandle) -> None:
    daemon.write_config(f"programs:\n  a:\n    {SLEEPER}\n  b:\n    {SLEEPER}\n")
    with tmpfs(daemon.state_dir, "2m") as state:
        proc = daemon.start()
        filler = fill(state)
        kill_and_wait_restart(daemon, "a")  # its new PID cannot be recorded: children.json is stale
        found = wait_for(lambda: [p for p in problems(daemon) if "children.json" in p], 20, "the problem shown")
        assert "No space left on device" in found[0]
        before = len(daemon.stderr())
        for _ in range(3):  # each restart logs: the daemon's own log fails too, counted, not a traceback each
            kill_and_wait_restart(daemon, "a")
        assert any("cannot write daemon log" in p for p in problems(daemon))
        assert len(daemon.stderr()) - before < 20_000 and "Logging error" not in daemon.stderr()
        new_a = daemon.program("a")["pid"]
        instances = {instance_of(state)}
        proc.kill()  # SIGKILL while the disk is still full
        proc.wait(timeout=10)
        filler.unlink()
        daemon.start()
        wait_for(lambda: is_gone(new_a), 15, "the unrecorded child of the killed daemon ended")
        assert daemon.proc is not None
        mine = {c.pid for c in psutil.Process(daemon.proc.pid).children(recursive=True)}
        assert daemon.program("a")["state"] == "RUNNING" and daemon.program("a")["pid"] in mine
        filler = fill(state)
        daemon.call("stop", names=["b"], wait_s=10.0)  # the operator's wish cannot be written now
        wait_for(lambda: [p for p in problems(daemon) if "intent.json" in p], 20, "the intent problem shown")
        filler.unlink()
        wait_for(lambda: not problems(daemon), 20, "the problems cleared after space returned")
        assert json.loads((state / "intent.json").read_text())["stopped"] == ["b"]  # written again by itself
        instances.add(instance_of(state))
        runners = [p for p in psutil.process_iter(["environ"]) if spawn_of(p, instances, "a")]
        assert len(runners) == 1, f"program a runs {len(runners)} times"
        daemon.cleanup()


def instance_of(state_dir: Path) -> str:
    """The daemon instance that wrote ``children.json`` (the first part of its spawn tags)."""
    record = json.loads((state_dir / "children.json").read_text())
    return str(next(iter(record.values()))["tag"]).split("/")[0]


def spawn_of(proc: psutil.Process, instances: set[str], program: str) -> bool:
    """Is ``proc`` a live spawn of ``program`` by one of these daemon ``instances`` (other tests run too)?"""
    with contextlib.suppress(psutil.Error):
        tag = (proc.info.get("environ") or {}).get("FOSS_SUPERVISOR_SPAWN", "")
        parts = tag.split("/")
        live = proc.status() != psutil.STATUS_ZOMBIE
        return len(parts) >= 3 and parts[0] in instances and parts[1] == program and live
    return False


def test_start_after_kill9_on_a_full_state_disk_names_the_reason_and_ends_the_leftovers(daemon: DaemonHandle) -> None:
    """`start` used to exit 1 with an empty reason (its stderr file on the full disk) while the killed daemon's
    program ran on unsupervised. The daemon now says why through a pipe `start` reads, and ends what was left."""
    daemon.write_config(f"programs:\n  a:\n    {SLEEPER}\n")
    with tmpfs(daemon.state_dir, "2m") as state:
        proc = daemon.start()
        left = daemon.program("a")["pid"]
        filler = fill(state)
        proc.kill()  # SIGKILL while the disk is full: program a runs on, recorded in children.json
        proc.wait(timeout=10)
        result = daemon.cli("start")  # in the background, as an operator starts it
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"cannot write the PID file {state / 'foss-supervisor.pid'}: No space left on device" in result.stderr
        assert f"ended what the previous daemon left: a (pid {left})" in result.stderr
        assert "Traceback" not in result.stderr
        wait_for(lambda: is_gone(left), 15, "the killed daemon's program ended")
        assert not (state / "children.json").exists()
        filler.unlink()
        started = daemon.cli("start")
        assert started.returncode == 0, started.stdout + started.stderr
        assert daemon.program("a")["state"] == "RUNNING" and daemon.program("a")["pid"] != left
        daemon.cleanup()


def test_cli_output_to_a_full_device_never_stops_a_command(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\n")
    with open("/dev/full", "w") as full:  # every write fails with ENOSPC
        result = subprocess.run(
            [PY, "-m", "foss_supervisor", "status", "--config", str(config)], stdout=full, stderr=full, timeout=60
        )
    assert result.returncode == 3  # "not running", said into a full device: not a crash (exit 1)


def test_a_stalled_log_disk_never_holds_supervision(daemon: DaemonHandle) -> None:
    """The daemon's log and a chatty program's log are FIFOs nobody reads, so their writers block for ever (as
    on a hung NFS mount): the daemon still gets ready, restarts a killed program, answers, and stops (the
    writers' exit is bounded)."""
    fifo = daemon.tmp / "chatty.log"
    os.mkfifo(fifo, 0o600)
    daemon.write_config(
        f"programs:\n  a:\n    {SLEEPER}\n    start_timeout: 0.1\n"
        f"  chatty:\n    {CHATTY}\n    start_timeout: 0.1\n    log: {{file: {str(fifo)!r}}}\n"
    )
    daemon.state_dir.mkdir(parents=True, exist_ok=True)
    os.mkfifo(daemon.state_dir / "foss-supervisor.log", 0o600)
    daemon.start()
    wait_for(lambda: daemon.program("a")["state"] == "RUNNING", 20, "a running")
    for _ in range(3):
        kill_and_wait_restart(daemon, "a")
    assert daemon.cli("status").returncode == 0
    proc = daemon.proc
    assert proc is not None
    stopped = daemon.cli("stop", timeout_s=60)
    assert stopped.returncode == 0, stopped.stderr
    assert proc.wait(timeout=30) == 0
