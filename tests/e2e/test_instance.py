"""One instance, safely: another daemon is never stopped while it answers, leftovers of a killed daemon
are ended whole, state writes are checked, and a failing subsystem never strands the others.

Real daemons run as subprocesses (see helpers/daemon.py); every wait is bounded.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from helpers import PY, DaemonHandle, free_port, is_gone, wait_for

from foss_supervisor.base.procinfo import boot_id, identity_of

SLEEPER = f"command: [{PY!r}, '-c', 'import time; time.sleep(300)']\n    start_timeout: 0.1"


def programs(*names: str) -> str:
    return "programs:\n" + "".join(f"  {name}:\n    {SLEEPER}\n" for name in names)


def log_events(daemon: DaemonHandle, event: str) -> list[dict[str, object]]:
    path = daemon.state_dir / "foss-supervisor.log"
    out = []
    for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("event") == event:
            out.append(rec)
    return out


def other_daemon(tmp_path: Path, port: int, body: str = "programs: {}") -> DaemonHandle:
    other = DaemonHandle(tmp_path / "other", port)
    other.tmp.mkdir()
    other.write_config(body)
    return other


# ------------------------------------------------------------------------------------------ instance safety


def test_live_instance_holding_our_port_is_never_stopped_and_is_named(daemon: DaemonHandle, tmp_path: Path) -> None:
    other = other_daemon(tmp_path, daemon.port, programs("a"))
    other.start()
    try:
        daemon.write_config()
        for extra in ((), ("--take-over-port",)):  # not even when asked to take the port over
            result = daemon.cli("start", *extra)
            assert result.returncode == 1, result.stdout + result.stderr
            assert "another running foss-supervisor" in result.stderr
            assert f"pid {other.proc.pid}" in result.stderr  # type: ignore[union-attr]
            assert str(other.state_dir) in result.stderr and str(other.config_path) in result.stderr
        assert other.proc.poll() is None  # type: ignore[union-attr]
        assert other.ping() is not None and other.program("a")["state"] == "RUNNING"
        assert log_events(daemon, "port_held_by_live_instance")
    finally:
        other.cleanup()


def test_port_held_by_a_stale_instance_of_ours_is_replaced(daemon: DaemonHandle, tmp_path: Path) -> None:
    other = other_daemon(tmp_path, daemon.port, programs("a"))
    stale = other.start()
    child = other.program("a")["pid"]
    os.kill(stale.pid, signal.SIGSTOP)  # holds the port and its lock, answers nothing
    try:
        daemon.write_config()
        result = daemon.cli("start")
    finally:
        if stale.poll() is None:
            os.kill(stale.pid, signal.SIGCONT)
        other.cleanup()
    assert result.returncode == 0, result.stdout + result.stderr
    assert stale.wait(timeout=15) == 0  # SIGTERM came with SIGCONT: it stopped its program and exited cleanly
    assert is_gone(child)
    stopping = log_events(daemon, "port_holder_stopping")
    assert stopping and "not answering" in str(stopping[0]["reason"]) and str(other.state_dir) in str(stopping[0])
    assert daemon.ping() is not None


def test_a_stale_instance_that_had_to_be_killed_leaves_no_program_behind(daemon: DaemonHandle, tmp_path: Path) -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
    body = f"programs:\n  deaf:\n    command: [{PY!r}, '-c', {code!r}]\n    start_timeout: 0.1\n    stop_timeout: 60\n"
    other = other_daemon(tmp_path, daemon.port, body)
    stale = other.start()
    deaf = other.program("deaf")["pid"]
    try:
        os.kill(stale.pid, signal.SIGSTOP)
        try:
            daemon.write_config()
            result = daemon.cli("start")  # the stale one wakes, but cannot stop its program in time: SIGKILL
        finally:
            if stale.poll() is None:
                os.kill(stale.pid, signal.SIGCONT)
        assert result.returncode == 0, result.stdout + result.stderr
        assert stale.wait(timeout=15) == -signal.SIGKILL
        assert is_gone(deaf)
        ended = log_events(daemon, "leftover_stopped")
        # its dashboard dies with it (PR_SET_PDEATHSIG), or is ended as a leftover if still seen
        programs = [(e["program"], e["state_dir"]) for e in ended if not str(e["program"]).startswith("@")]
        assert programs == [("deaf", str(other.state_dir))]
    finally:
        other.cleanup()


def test_start_with_another_config_on_the_same_state_dir_is_refused(daemon: DaemonHandle) -> None:
    daemon.write_config(programs("a"))
    assert daemon.cli("start").returncode == 0
    pid = daemon.read_pid()
    other_config = daemon.tmp / "other.yaml"
    other_config.write_text(daemon.config_path.read_text().replace("  a:", "  b:"))
    for extra in ((), ("--foreground",)):
        argv = [PY, "-m", "foss_supervisor", "start", "--config", str(other_config), *extra]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=daemon.env)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "already running with another config" in result.stderr
        assert f"pid {pid}" in result.stderr and str(daemon.config_path) in result.stderr
    same = daemon.cli("start")  # the same config stays idempotent
    assert same.returncode == 0 and "already running" in same.stdout
    assert daemon.read_pid() == pid and daemon.program("a")["state"] == "RUNNING"


def _evil_launch_dir(tmp_path: Path) -> tuple[Path, Path]:
    """A folder holding modules named like the daemon's lazy imports; importing one leaves a marker."""
    launch, marker = tmp_path / "launch", tmp_path / "imported-from-launch-dir"
    (launch / "aiohttp").mkdir(parents=True)
    evil = f"open({str(marker)!r}, 'w').write(__name__)\nraise ImportError('imported from the launch dir')\n"
    (launch / "aiohttp" / "__init__.py").write_text(evil)
    (launch / "structlog.py").write_text(evil)
    return launch, marker


def test_background_daemon_runs_from_root_and_never_imports_from_the_launch_dir(
    daemon: DaemonHandle, tmp_path: Path
) -> None:
    launch, marker = _evil_launch_dir(tmp_path)
    daemon.write_config(programs("a"))
    cli = Path(PY).parent / "foss-supervisor"  # the console script: its sys.path holds no cwd
    result = subprocess.run(
        [str(cli), "start", "--config", str(daemon.config_path)],
        cwd=launch,
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    pid = daemon.read_pid()
    if pid:
        daemon.extra_pids.append(pid)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not marker.exists(), marker.read_text()
    assert os.readlink(f"/proc/{pid}/cwd") == "/"
    assert os.readlink(f"/proc/{daemon.program('a')['pid']}/cwd") == "/"  # a program without cwd: in / too
    assert daemon.call("status")["daemon"]["problems"] == []  # the dashboard (aiohttp) started fine


def test_foreground_daemon_leaves_the_launch_dir_before_lazy_imports(daemon: DaemonHandle, tmp_path: Path) -> None:
    launch, marker = _evil_launch_dir(tmp_path)
    (launch / "structlog.py").unlink()  # imported at start-up by `python -m` itself: the user's own choice
    relative = os.path.relpath(daemon.config_path, launch)
    daemon.write_config(programs("a"))
    daemon.start(config=relative, cwd=launch)
    assert not marker.exists()
    assert os.readlink(f"/proc/{daemon.proc.pid}/cwd") == "/"
    status = daemon.call("status")["daemon"]
    assert status["problems"] == [] and status["config"] == str(daemon.config_path)  # made absolute
    assert daemon.call("reload", dry_run=True)["unchanged"] == ["a"]  # the config is still found from "/"


# ------------------------------------------------------------------------------------------ leftovers


def test_leftover_group_is_stopped_even_when_its_leader_died(daemon: DaemonHandle) -> None:
    helpers = daemon.tmp / "helpers"
    code = (
        "import subprocess, sys, time; "
        "h = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); "
        f"open({str(helpers)!r}, 'a').write(f'{{h.pid}}\\n'); time.sleep(300)"
    )
    daemon.write_config(f"programs:\n  p:\n    command: [{PY!r}, '-c', {code!r}]\n    start_timeout: 0.1\n")
    proc = daemon.start()
    leader = daemon.program("p")["pid"]
    helper = int(wait_for(lambda: helpers.exists() and helpers.read_text().split(), 10, "helper pid")[0])
    proc.kill()  # the daemon dies; then its program dies too, leaving its helper in the group
    proc.wait(timeout=10)
    os.kill(leader, signal.SIGKILL)
    wait_for(lambda: is_gone(leader), 10, "leader gone")
    assert not is_gone(helper) and os.getpgid(helper) == leader
    result = daemon.cli("start")
    assert result.returncode == 0, result.stdout + result.stderr
    assert is_gone(helper)
    assert [e["program"] for e in log_events(daemon, "leftover_stopped")] == ["p"]
    assert daemon.program("p")["state"] == "RUNNING"


def test_leftover_that_left_its_session_is_found_by_its_spawn_tag(daemon: DaemonHandle) -> None:
    escaped = daemon.tmp / "escaped"
    code = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        open({str(escaped)!r}, 'a').write(f'{{os.getpid()}}\\n')\n"
        "        time.sleep(300)\n"
        "    os._exit(0)\n"
        "time.sleep(300)\n"
    )
    daemon.write_config(f"programs:\n  p:\n    command: [{PY!r}, '-c', {code!r}]\n    start_timeout: 0.1\n")
    proc = daemon.start()
    leader = daemon.program("p")["pid"]
    runaway = int(wait_for(lambda: escaped.exists() and escaped.read_text().split(), 10, "escaped pid")[0])
    assert os.getsid(runaway) != os.getsid(leader)  # in a session of its own
    proc.kill()
    proc.wait(timeout=10)
    result = daemon.cli("start")
    assert result.returncode == 0, result.stdout + result.stderr
    assert is_gone(leader) and is_gone(runaway)
    assert [e["program"] for e in log_events(daemon, "leftover_stopped")] == ["p"]


def test_leftovers_are_asked_to_stop_with_their_own_stop_signal(daemon: DaemonHandle) -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
    daemon.write_config(f"""programs:
  by_int:
    command: [{PY!r}, '-c', {code!r}]
    start_timeout: 0.1
    stop_signal: INT
    stop_timeout: 30
  deaf:
    command: [{PY!r}, '-c', {code!r}]
    start_timeout: 0.1
    stop_timeout: 0.5
""")
    proc = daemon.start()
    old = {name: daemon.program(name)["pid"] for name in ("by_int", "deaf")}
    proc.kill()
    proc.wait(timeout=10)
    result = daemon.cli("start")
    assert result.returncode == 0, result.stdout + result.stderr
    assert all(is_gone(pid) for pid in old.values())
    outcomes = {e["program"]: e["outcome"] for e in log_events(daemon, "leftover_stopped")}
    assert outcomes == {"by_int": "terminated", "deaf": "killed"}  # SIGINT ended one; the other was SIGKILLed


def test_clock_step_does_not_make_a_live_leftover_look_dead(daemon: DaemonHandle) -> None:
    daemon.write_config(programs("a"))
    proc = daemon.start()
    old = daemon.program("a")["pid"]
    proc.kill()
    proc.wait(timeout=10)
    record = json.loads((daemon.state_dir / "children.json").read_text())
    for rec in record.values():  # the wall clock stepped an hour after the record was written
        rec["create_time"] -= 3600.0
    (daemon.state_dir / "children.json").write_text(json.dumps(record))
    result = daemon.cli("start")
    assert result.returncode == 0, result.stdout + result.stderr
    assert is_gone(old)
    assert daemon.program("a")["pid"] != old


def test_leftover_records_naming_someone_else_are_never_signalled(daemon: DaemonHandle) -> None:
    me = identity_of(os.getpid())
    assert me is not None and me.start_ticks is not None
    daemon.write_config()
    daemon.state_dir.mkdir(parents=True)
    records = {  # this test process's PID, but with another start time (new and old format) or another boot
        "ticks": {"pid": me.pid, "start_ticks": me.start_ticks - 1, "boot_id": boot_id(), "create_time": 1.0},
        "legacy": {"pid": me.pid, "create_time": 1.0},
        "other-boot": {"pid": me.pid, "start_ticks": me.start_ticks, "boot_id": "another", "create_time": 1.0},
    }
    (daemon.state_dir / "children.json").write_text(json.dumps(records))
    daemon.start()
    assert not log_events(daemon, "leftover_stopped")  # and this test is still running


def test_children_record_write_failure_is_logged_once_shown_and_retried(daemon: DaemonHandle) -> None:
    daemon.write_config(programs("a"))
    daemon.start()
    record = daemon.state_dir / "children.json"
    wait_for(record.exists, 10, "children.json")
    record.unlink()
    record.mkdir()  # the rename onto it fails from now on, as on a full or read-only disk
    (record / "block").write_text("")
    for _ in range(3):
        daemon.call("restart", names=["a"], wait_s=10.0)
    # a failing write makes the daemon degraded (verdict.assess): shown under warnings, /health stays 200
    problems = wait_for(lambda: daemon.call("status")["daemon"]["warnings"], 10, "problem shown")
    assert any("children.json" in p for p in problems)
    assert len(log_events(daemon, "state_write_failed")) == 1  # rate-limited, not one per attempt
    shutil.rmtree(record)
    wait_for(lambda: record.is_file(), 10, "children.json written again")
    assert json.loads(record.read_text())["a"]["pid"] == daemon.program("a")["pid"]
    assert daemon.call("status")["daemon"]["warnings"] == []
    assert log_events(daemon, "state_write_recovered")


# ------------------------------------------------------------------------------------------ scale and failures


def test_dashboard_that_cannot_start_leaves_programs_running_and_is_shown(daemon: DaemonHandle) -> None:
    daemon.write_config(programs("a"))
    (daemon.state_dir / "api-token").mkdir(parents=True)  # the web layer fails on its token file
    proc = daemon.start()
    assert daemon.program("a")["state"] == "RUNNING"
    problems = daemon.call("status")["daemon"]["problems"]
    assert len(problems) == 1 and problems[0].startswith("dashboard failed: IsADirectoryError")
    child = daemon.program("a")["pid"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert is_gone(child)


def test_open_files_soft_limit_is_raised_to_the_hard_limit(daemon: DaemonHandle) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip(f"hard open-files limit is only {hard}")
    daemon.write_config()
    argv = [PY, "-m", "foss_supervisor", "start", "--config", str(daemon.config_path)]
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=60,
        env=daemon.env,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)),
    )
    pid = daemon.read_pid()
    if pid:
        daemon.extra_pids.append(pid)
    assert result.returncode == 0, result.stderr
    limits = Path(f"/proc/{pid}/limits").read_text().split("Max open files")[1].split()
    assert int(limits[0]) > 256 and (hard == resource.RLIM_INFINITY or int(limits[0]) == hard)
    assert log_events(daemon, "open_files_limit_raised")[0]["old_soft"] == 256


def test_status_and_stop_of_a_stopped_daemon(daemon: DaemonHandle) -> None:
    daemon.write_config(programs("a"))
    proc = daemon.start()
    child = daemon.program("a")["pid"]
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        status = daemon.cli("status")
        assert status.returncode == 1 and "did not answer" in status.stderr
        assert "Traceback" not in status.stderr
        stop = daemon.cli("stop")  # the shutdown command gets no answer: SIGTERM with SIGCONT
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert proc.wait(timeout=10) == 0
    assert is_gone(child)


def test_more_programs_than_the_open_files_limit_allows_are_refused_cleanly(daemon: DaemonHandle) -> None:
    def limit_300() -> None:  # soft and hard: the daemon cannot raise it
        resource.setrlimit(resource.RLIMIT_NOFILE, (300, 300))

    names = [f"p{i:02d}" for i in range(40)]  # 40 programs need about 328 open files
    daemon.write_config(programs(*names))
    argv = [PY, "-m", "foss_supervisor", "start", "--foreground", "--config", str(daemon.config_path)]
    refused = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=daemon.env, preexec_fn=limit_300)
    assert refused.returncode == 1
    assert "40 programs need about 328 open files, and this daemon may open 300" in refused.stderr
    assert not (daemon.state_dir / "children.json").exists()  # nothing was started
    daemon.write_config(programs(*names[:20]))
    daemon.start(preexec_fn=limit_300)
    daemon.write_config(programs(*names))
    reload = daemon.cli("reload")
    assert reload.returncode == 2 and "40 programs need about 328 open files" in reload.stderr
    status = daemon.call("status")["programs"]
    assert len(status) == 20 and {p["state"] for p in status} == {"RUNNING"}


def test_control_socket_that_cannot_be_served_is_a_clean_refusal(tmp_path: Path) -> None:
    handle = DaemonHandle(tmp_path, free_port())
    (handle.socket_path / "in-the-way").mkdir(parents=True)  # a folder where the socket goes: bind fails
    try:
        handle.write_config(programs("a"))
        argv = [PY, "-m", "foss_supervisor", "start", "--foreground", "--config", str(handle.config_path)]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=handle.env)
        assert result.returncode == 1
        assert f"cannot serve the control socket {handle.socket_path}" in result.stderr
        assert not (handle.state_dir / "children.json").exists()  # no program was started
        assert not (handle.state_dir / "foss-supervisor.pid").exists()
    finally:
        handle.cleanup()


def test_a_pid_file_that_cannot_be_written_is_a_clear_refusal(daemon: DaemonHandle) -> None:
    daemon.write_config(programs("a"))
    (daemon.state_dir / "foss-supervisor.pid" / "in-the-way").mkdir(parents=True)  # the rename onto it fails
    argv = [PY, "-m", "foss_supervisor", "start", "--foreground", "--config", str(daemon.config_path)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=daemon.env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"cannot write the PID file {daemon.state_dir / 'foss-supervisor.pid'}" in result.stderr
    shutil.rmtree(daemon.state_dir / "foss-supervisor.pid")
    daemon.start()  # the lock was let go: the next start works
    assert daemon.program("a")["state"] == "RUNNING"


def test_a_dashboard_address_that_cannot_be_bound_is_a_clear_refusal(daemon: DaemonHandle) -> None:
    daemon.write_config(programs("a"))
    env = {**daemon.env, "FOSS_SUPERVISOR_HOST": "192.0.2.1"}  # TEST-NET-1: on no interface of this host
    argv = [PY, "-m", "foss_supervisor", "start", "--foreground", "--config", str(daemon.config_path)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"cannot bind the dashboard to 192.0.2.1:{daemon.port}" in result.stderr
    assert not (daemon.state_dir / "foss-supervisor.pid").exists()
