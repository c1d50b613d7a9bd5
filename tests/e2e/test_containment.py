"""Containment with real daemons: nothing a program starts outlives it, nothing becomes a zombie.

Each test marks its processes with a unique word on their command line, finds them through /proc,
and kills any survivor by PID at the end (never by name).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import DaemonHandle, need, wait_for

PY = sys.executable


def procs_with(marker: str) -> list[int]:
    """Live (non-zombie) processes whose command line holds ``marker``."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if marker.encode() in cmd and stat.rsplit(")", 1)[1].split()[0] != "Z" and int(entry.name) != os.getpid():
            out.append(int(entry.name))
    return out


def exactly(marker: str, count: int) -> Callable[[], list[int] | None]:
    """A check returning the marked processes once there are exactly ``count`` of them."""
    return lambda: found if len(found := procs_with(marker)) == count else None


def zombies_of(ppid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] == "Z" and int(fields[1]) == ppid:
                out.append(int(entry.name))
    return out


@pytest.fixture
def marker() -> Iterator[str]:
    word = f"fsv-{uuid.uuid4().hex[:10]}"
    yield word
    for pid in procs_with(word):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def script(tmp: Path, name: str, body: str) -> str:
    path = tmp / name
    path.write_text(body)
    return str(path)


ESCAPER = """
import os, sys, time
marker = sys.argv[1]
if os.fork() == 0:                      # a child that leaves the program's process group
    os.setsid()
    os.execvp(sys.executable, [sys.executable, "-c", "import time; time.sleep(300)", marker + "-escaped"])
if os.fork() == 0:                      # and a double fork: its grandchild is orphaned at once
    if os.fork() == 0:
        os.setsid()
        os.execvp(sys.executable, [sys.executable, "-c", "import time; time.sleep(300)", marker + "-orphan"])
    os._exit(0)
time.sleep(float(sys.argv[2]))
sys.exit(3)
"""


@pytest.mark.parametrize("how", ["ctl stop", "leader exits", "daemon stop"])
def test_escaped_descendants_end_with_their_program(daemon: DaemonHandle, marker: str, how: str) -> None:
    lives = "300" if how != "leader exits" else "2"
    cmd = [PY, script(daemon.tmp, "escaper.py", ESCAPER), marker, lives]
    daemon.write_config(f"programs:\n  esc: {{command: {cmd!r}, start_timeout: 0.5, autorestart: never}}\n")
    daemon.start()
    wait_for(lambda: len(procs_with(marker)) == 3, 10, "leader, escaped child and orphan")
    if how == "ctl stop":
        assert daemon.cli("ctl", "stop", "esc").returncode == 0
    elif how == "daemon stop":
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGTERM)
        daemon.proc.wait(timeout=30)
    wait_for(lambda: not procs_with(marker), 10, f"nothing of the program left after {how}")
    if how == "leader exits":
        prog = daemon.program("esc")
        assert prog["state"] == "EXITED" and prog["exit_code"] == 3


DAEMONIZER = """
import os, sys, time
if os.fork() > 0:
    sys.exit(0)
os.setsid()
if os.fork() > 0:
    os._exit(0)
if len(sys.argv) > 2:
    with open(sys.argv[2] + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(sys.argv[2] + ".tmp", sys.argv[2])
os.execvp(sys.executable, [sys.executable, "-c", "import time; time.sleep(300)", sys.argv[1] + "-main"])
"""


def test_self_daemonizing_program_is_fatal_with_reason_and_no_copy_left(daemon: DaemonHandle, marker: str) -> None:
    cmd = [PY, script(daemon.tmp, "daemonizer.py", DAEMONIZER), marker]
    daemon.write_config(f"programs:\n  legacy: {{command: {cmd!r}, start_timeout: 1}}\n")
    daemon.start(wait_ready=False)
    wait_for(daemon.ping, 20, "daemon answers")
    try:
        prog = wait_for(lambda: (p := daemon.program("legacy"))["state"] == "FATAL" and p, 15, "FATAL")
    except TimeoutError:
        raise AssertionError(str(daemon.program("legacy"))) from None
    assert "daemonized itself" in prog["reason"] and "pidfile" in prog["reason"]
    assert prog["spawns"] == 1  # never respawned into a second copy
    wait_for(lambda: not procs_with(marker), 5, "the background copy ended")


def test_forking_program_with_pidfile_is_supervised_by_its_main_pid(daemon: DaemonHandle, marker: str) -> None:
    pidfile = daemon.tmp / "legacy.pid"
    cmd = [PY, script(daemon.tmp, "daemonizer.py", DAEMONIZER), marker, str(pidfile)]
    daemon.write_config(f"programs:\n  legacy: {{command: {cmd!r}, pidfile: {str(pidfile)!r}, start_timeout: 0.5}}\n")
    daemon.start()
    prog = wait_for(lambda: (p := daemon.program("legacy"))["state"] == "RUNNING" and p, 10, "RUNNING")
    main = int(pidfile.read_text())
    assert prog["pid"] == main and procs_with(marker) == [main]
    # the main PID dies: noticed (it is the daemon's child through the subreaper) and started again
    os.kill(main, signal.SIGKILL)
    wait_for(lambda: (p := daemon.program("legacy"))["state"] == "RUNNING" and p["pid"] not in (None, main), 15)
    assert len(procs_with(marker)) == 1
    assert daemon.cli("ctl", "stop", "legacy").returncode == 0
    wait_for(lambda: not procs_with(marker), 10, "main PID stopped")
    assert daemon.program("legacy")["state"] == "STOPPED"


def test_timed_out_exec_probe_leaves_nothing_behind(daemon: DaemonHandle, marker: str) -> None:
    app = [PY, "-c", "import time; time.sleep(300)", f"{marker}-app"]
    # the probe hangs; its shell has a child in its group and one that left it with setsid
    probe = [
        "sh",
        "-c",
        f"setsid {PY} -c 'import time; time.sleep(60)' {marker}-esc & "
        f"{PY} -c 'import time; time.sleep(60)' {marker}-kid; true",
    ]
    daemon.write_config(
        f"programs:\n  web:\n    command: {app!r}\n    start_timeout: 0.2\n"
        f"    health: {{exec: {probe!r}, interval: 200ms, timeout: 300ms, failure_threshold: 1000}}\n"
    )
    daemon.start()
    daemon_pid = daemon.proc.pid if daemon.proc else 0
    # several probes have timed out by the time both kinds of probe child were seen and ended
    seen: set[int] = set()

    def probes_ran_and_ended() -> bool:
        live = [p for p in procs_with(marker) if not _cmd(p).endswith("-app")]
        seen.update(live)
        return len(seen) >= 6 and len(live) <= 2

    wait_for(probes_ran_and_ended, 20, "probes that time out")
    wait_for(lambda: len([p for p in procs_with(marker) if not _cmd(p).endswith("-app")]) <= 2, 5)
    assert not zombies_of(daemon_pid)


def _cmd(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


BACKGROUNDER = """
import os, sys, time
JOB = "import os, sys, time; open(sys.argv[1], 'a').write('%d\\\\n' % os.getpid()); time.sleep(0.05)"
while True:                              # `cmd &` from a script: the intermediate exits, the job is orphaned
    pid = os.fork()
    if pid == 0:
        if os.fork() == 0:
            os.execvp(sys.executable, [sys.executable, "-c", JOB, sys.argv[2], sys.argv[1] + "-job"])
        os._exit(0)
    os.waitpid(pid, 0)
    time.sleep(0.1)
"""


def jobs_seen(record: Path, count: int) -> Callable[[], bool]:
    """A check that is true once ``count`` different jobs have run: each job writes its PID to ``record`` as it
    starts (a job lives 50 ms: sampling /proc on a busy machine could miss them all)."""

    def check() -> bool:
        with contextlib.suppress(FileNotFoundError):
            return len(set(record.read_text().split())) >= count
        return False

    return check


def test_orphaned_jobs_are_reaped_by_the_daemon(daemon: DaemonHandle, marker: str) -> None:
    record = daemon.tmp / "jobs.pids"
    cmd = [PY, script(daemon.tmp, "bg.py", BACKGROUNDER), marker, str(record)]
    daemon.write_config(f"programs:\n  jobs: {{command: {cmd!r}, start_timeout: 0.2}}\n")
    daemon.start()
    assert daemon.proc is not None
    wait_for(jobs_seen(record, 10), 20, "ten orphaned jobs")
    # each job became the daemon's child (subreaper) and was reaped when it ended
    wait_for(lambda: len(zombies_of(daemon.proc.pid)) <= 1, 5, "no zombies piling up")  # type: ignore[union-attr]


def test_as_pid1_of_a_namespace_no_zombie_piles_up(daemon: DaemonHandle, marker: str) -> None:
    unshare = need("unshare", "apt-get install -y util-linux")
    probe = subprocess.run([unshare, "--pid", "--fork", "--mount-proc", "true"], capture_output=True)
    assert probe.returncode == 0, f"no PID namespace (needs root, as .ci/run runs): {probe.stderr.decode().strip()}"
    record = daemon.tmp / "jobs.pids"
    cmd = [PY, script(daemon.tmp, "bg.py", BACKGROUNDER), marker, str(record)]
    daemon.write_config(f"programs:\n  jobs: {{command: {cmd!r}, start_timeout: 0.2}}\n")
    argv = [
        "unshare",
        "--pid",
        "--fork",
        "--mount-proc",
        PY,
        "-m",
        "foss_supervisor",
        "start",
        "--foreground",
        "--config",
        str(daemon.config_path),
    ]
    outer = subprocess.Popen(
        argv, env=daemon.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        daemon.wait_ready()
        inner = daemon.read_pid()
        assert inner == 1  # the daemon is PID 1 of its namespace
        host_pid = wait_for(lambda: next((p for p in procs_with(str(daemon.config_path)) if p != outer.pid), None))
        wait_for(jobs_seen(record, 10), 20, "ten orphaned jobs")
        wait_for(lambda: len(zombies_of(host_pid)) <= 1, 5, "no zombies piling up under PID 1")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(outer.pid, signal.SIGTERM)
        try:
            outer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(outer.pid, signal.SIGKILL)
            outer.wait(timeout=5)


def test_after_kill9_a_new_daemon_ends_what_escaped_the_old_ones_groups(daemon: DaemonHandle, marker: str) -> None:
    cmd = [PY, script(daemon.tmp, "escaper.py", ESCAPER), marker, "300"]
    daemon.write_config(f"programs:\n  esc: {{command: {cmd!r}, start_timeout: 0.2}}\n")
    daemon.start()
    old = set(wait_for(exactly(marker, 3), 10, "three processes"))
    assert daemon.proc is not None
    daemon.proc.kill()  # no clean-up at all: the leader, the escaped child and the orphan run on
    daemon.proc.wait(timeout=10)
    assert set(procs_with(marker)) == old
    daemon.start()  # the new daemon ends all three (two of them by their spawn tag), then starts one copy
    wait_for(lambda: not old & set(procs_with(marker)), 10, "the old copy's processes ended")
    new = wait_for(exactly(marker, 3), 10, "one new copy")
    assert not old & set(new)


def test_stop_after_kill9_ends_what_the_dead_daemon_left(daemon: DaemonHandle, marker: str) -> None:
    cmd = [PY, script(daemon.tmp, "escaper.py", ESCAPER), marker, "300"]
    daemon.write_config(f"programs:\n  esc: {{command: {cmd!r}, start_timeout: 0.2}}\n")
    daemon.start()
    wait_for(exactly(marker, 3), 10, "three processes")
    assert daemon.proc is not None
    daemon.proc.kill()
    daemon.proc.wait(timeout=10)
    stop = daemon.cli("stop")  # no daemon answers, but its programs run: stop ends them all the same
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert "left by the killed daemon" in stop.stdout
    assert not procs_with(marker)
