"""What the OS says about a PID, checked against its start time so a reused PID is never signalled.

A process is named by its PID together with its start time in clock ticks after boot (field 22,
``starttime``, of ``/proc/PID/stat``). That clock is monotonic: unlike psutil's ``create_time()``,
which is derived from the wall clock, a clock step between recording and checking never makes a
live process look dead. Records also carry the boot id, because ticks restart at every boot.

Signals go through a pidfd opened *before* the start time is checked, so the process checked is
the process signalled, even if its PID is reused a moment later.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import psutil

__all__ = [
    "ProcStat",
    "ProcessIdentity",
    "all_stats",
    "boot_id",
    "describe",
    "fd_count",
    "identity_of",
    "io_bytes",
    "lock_holders",
    "port_holder",
    "read_proc",
    "read_stat",
    "send_signal",
    "session_members",
    "terminate",
    "terminate_all",
    "ticks_per_s",
    "wait_gone",
]

PROC = Path("/proc")
PID_MAX_LIMIT = 4 * 1024 * 1024  # the kernel's ceiling for kernel.pid_max


@dataclass(frozen=True, slots=True)
class ProcStat:
    """The fields of ``/proc/PID/stat`` the daemon acts on (``start_ticks``: clock ticks after boot).

    ``cpu_ticks`` (user + system time, clock ticks) and ``rss_pages`` (resident pages) are what the process
    uses at the moment of the read; they are no part of its identity (not compared).
    """

    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str  # R, S, D, T, Z, X, ...
    start_ticks: int
    cpu_ticks: int = field(default=0, compare=False)
    rss_pages: int = field(default=0, compare=False)

    @property
    def zombie(self) -> bool:
        return self.state in ("Z", "X")


def read_proc(path: str) -> bytes:
    """The whole of a /proc file (``/proc/PID/stat``, ``.../children``): plain ``open``/``read`` calls, about
    2.5x quicker than ``Path.read_bytes`` on a supervision step's path (a crash's respawn reads one file per
    daemon thread). Raises OSError (no such process, no permission)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = [os.read(fd, 65536)]
        while len(chunks[-1]) == 65536:  # /proc files can be longer than one read (a children list of 10k)
            chunks.append(os.read(fd, 65536))
    finally:
        os.close(fd)
    return b"".join(chunks)


def read_stat(pid: int) -> ProcStat | None:
    """``/proc/PID/stat`` parsed (the one reader of it), or None when there is no such process."""
    try:
        raw = read_proc(f"{PROC}/{pid}/stat")
    except OSError:
        return None
    try:
        # the command name (field 2) may hold spaces and parentheses: split after its last ')'
        fields = raw[raw.rindex(b")") + 2 :].split()
        return ProcStat(
            pid,
            int(fields[1]),
            int(fields[2]),
            int(fields[3]),
            fields[0].decode(),
            int(fields[19]),
            cpu_ticks=int(fields[11]) + int(fields[12]),  # utime + stime (fields 14 and 15)
            rss_pages=int(fields[21]),  # field 24
        )
    except (IndexError, ValueError):
        return None


def fd_count(pid: int) -> int | None:
    """How many descriptors process ``pid`` holds open (the entries of ``/proc/PID/fd``); None when they
    cannot be read (gone, or another user's without the privilege)."""
    try:
        return len(os.listdir(PROC / str(pid) / "fd"))
    except OSError:
        return None


def io_bytes(pid: int) -> tuple[int, int] | None:
    """``(read_bytes, write_bytes)`` of process ``pid`` since it started: what it made the storage layer
    read and write (``/proc/PID/io``; cached reads are not counted); None when they cannot be read."""
    try:
        raw = (PROC / str(pid) / "io").read_bytes()
    except OSError:
        return None
    fields = dict(line.split(b": ", 1) for line in raw.splitlines() if b": " in line)
    try:
        return int(fields[b"read_bytes"]), int(fields[b"write_bytes"])
    except (KeyError, ValueError):
        return None


def all_stats() -> Iterable[ProcStat]:
    """Every process this user can see, as :class:`ProcStat` (processes that vanish meanwhile are skipped)."""
    for entry in os.scandir(PROC):
        if entry.name.isdigit() and (st := read_stat(int(entry.name))) is not None:
            yield st


@cache
def boot_id() -> str:
    """This boot's random id (``/proc/sys/kernel/random/boot_id``); "" where the kernel has none."""
    try:
        return (PROC / "sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return ""


@cache
def ticks_per_s() -> int:
    """Clock ticks per second (``SC_CLK_TCK``): the unit of ``start_ticks`` and ``cpu_ticks``."""
    return os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """A PID together with its start time: the pair names one process for its whole life.

    ``start_ticks`` is the boot-relative start time (monotonic); ``create_time`` is the wall-clock
    start in seconds since the epoch, kept only for records written before ``start_ticks`` existed
    (``start_ticks`` None), which are compared the old way.
    """

    pid: int
    start_ticks: int | None
    create_time: float = 0.0

    def alive(self) -> bool:
        """True when ``pid`` still runs and is the very process we recorded (not a reused PID)."""
        if self.start_ticks is None:
            return _legacy_alive(self.pid, self.create_time)
        st = read_stat(self.pid)
        return st is not None and not st.zombie and st.start_ticks == self.start_ticks

    def as_dict(self) -> dict[str, Any]:
        """``{"pid", "start_ticks", "boot_id", "create_time"}``; readers of the old format use pid + create_time."""
        return {"pid": self.pid, "start_ticks": self.start_ticks, "boot_id": boot_id(), "create_time": self.create_time}

    @classmethod
    def from_dict(cls, rec: Any) -> ProcessIdentity | None:
        """A record written by :meth:`as_dict` (or the older pid + create_time form); None when unusable.

        A record from another boot names no live process: its PID and ticks mean nothing now. The file
        is input like any other: a PID outside 2..PID_MAX_LIMIT (init included), or a field of the wrong
        type, makes the record unusable rather than naming a process.
        """
        if not isinstance(rec, dict):
            return None
        pid, ticks, create_time = rec.get("pid"), rec.get("start_ticks"), rec.get("create_time", 0.0)
        if type(pid) is not int or not 1 < pid <= PID_MAX_LIMIT:
            return None
        if type(create_time) not in (int, float) or not math.isfinite(create_time):
            return None
        if ticks is None:
            return cls(pid, None, float(create_time))
        if type(ticks) is not int or ticks < 0 or rec.get("boot_id") != boot_id():
            return None
        return cls(pid, ticks, float(create_time))


def _legacy_alive(pid: int, create_time: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - create_time) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ValueError, OverflowError):
        return False


def identity_of(pid: int) -> ProcessIdentity | None:
    """The identity of a running ``pid``, or None when it is gone (or only a zombie)."""
    st = read_stat(pid)
    if st is None or st.zombie:
        return None
    return ProcessIdentity(pid, st.start_ticks, psutil.boot_time() + st.start_ticks / ticks_per_s())


def session_members(leaders: Iterable[ProcessIdentity]) -> dict[ProcessIdentity, list[ProcessIdentity]]:
    """For each leader, the live processes of its process group and session, the leader included if alive.

    One scan of ``/proc`` serves all leaders. A leader may be gone: its group and session live on as
    long as a member does, and while they do Linux never hands their id to a new process. So if the
    leader's PID now names *another* process, its old group and session are empty. Members must have
    started at or after the leader; a legacy record (no ``start_ticks``) yields only the leader.
    """
    leaders = list(leaders)
    out: dict[ProcessIdentity, list[ProcessIdentity]] = {}
    wanted: dict[int, ProcessIdentity] = {}
    for leader in leaders:
        now = read_stat(leader.pid)
        if leader.start_ticks is None:
            out[leader] = [leader] if leader.alive() else []
        elif now is not None and now.start_ticks != leader.start_ticks:
            out[leader] = []  # the PID was reused, so the old group and session have no member left
        else:
            out[leader] = []
            wanted[leader.pid] = leader
    if wanted:
        for st in all_stats():
            owner = wanted.get(st.pgid) or wanted.get(st.sid)
            if owner is not None and not st.zombie and st.start_ticks >= (owner.start_ticks or 0):
                out[owner].append(ProcessIdentity(st.pid, st.start_ticks))
    return out


def describe(pid: int) -> dict[str, Any]:
    """PID, user and command line of a process, as far as this user may see them."""
    out: dict[str, Any] = {"pid": pid, "user": None, "cmdline": None}
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            with contextlib.suppress(psutil.AccessDenied):
                out["user"] = proc.username()
            with contextlib.suppress(psutil.AccessDenied):
                out["cmdline"] = " ".join(proc.cmdline()) or proc.name()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        pass
    return out


def lock_holders(path: Path) -> set[int]:
    """PIDs that hold a lock (``flock``, POSIX) on the file ``path`` now, as ``/proc/locks`` lists them.

    Proof of holding, not of having the file open: waiters (``->`` lines) are left out, and so are
    open-file-description locks (their owner shows as -1). Empty when nobody holds one, the file is
    gone or ``/proc/locks`` cannot be read.
    """
    try:
        st = os.stat(path)
        text = (PROC / "locks").read_text(encoding="ascii", errors="replace")
    except OSError:
        return set()
    where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    holders = set()
    for line in text.splitlines():  # "3: FLOCK  ADVISORY  WRITE 14493 fe:00:2165719 0 EOF"
        fields = line.split()
        if len(fields) >= 6 and fields[1] != "->" and fields[5] == where and fields[4].isdigit():
            holders.add(int(fields[4]))
    return holders


def port_holder(port: int) -> dict[str, Any] | None:
    """Who listens on TCP ``port`` (PID, user, command line), or None when nobody visible does.

    A listening socket may be shared by a process and the children it passed it to (our daemon and its
    dashboard process; a pre-forking server and its workers): the holder is the eldest of them, found by
    walking up the parents that listen on the port too.
    """
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return None
    pid = next((c.pid for c in conns if _listens(c, port) and c.pid), None)
    if pid is None:
        return None
    try:
        parent = psutil.Process(pid).parent()
        while parent is not None and any(_listens(c, port) for c in parent.net_connections(kind="tcp")):
            pid, parent = parent.pid, parent.parent()
    except psutil.Error:
        pass
    return describe(pid)


def _listens(conn: Any, port: int) -> bool:
    return bool(conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port)


def _open_pidfd(identity: ProcessIdentity) -> int | None:
    """A pidfd on ``identity``, or None when it is gone; opened first, then checked, so it cannot be a newcomer."""
    try:
        fd = os.pidfd_open(identity.pid)
    except OSError:
        return None
    if identity.alive():
        return fd
    os.close(fd)
    return None


def wait_gone(identity: ProcessIdentity, timeout_s: float) -> bool:
    """Block until the process exits (or ``timeout_s`` passes); True when it is gone.

    A pidfd becomes readable the moment the process exits, so there is no polling delay.
    """
    fd = _open_pidfd(identity)
    if fd is None:
        return True
    try:
        return bool(_readable([fd], timeout_s)) or not identity.alive()
    finally:
        os.close(fd)


def _readable(fds: list[int], timeout_s: float) -> list[int]:
    """The pidfds among ``fds`` whose process has exited, waiting up to ``timeout_s`` for one (poll: no fd limit)."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    return [fd for fd, _ in poller.poll(max(0.0, timeout_s) * 1000)]


def send_signal(identity: ProcessIdentity, sig: signal.Signals) -> bool:
    """Signal ``identity`` through a pidfd opened before its start time is checked.

    False when it is gone, or is not ours to signal (another user's): either way nothing to wait for.
    """
    fd = _open_pidfd(identity)
    if fd is None:
        return False
    try:
        signal.pidfd_send_signal(fd, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False
    finally:
        os.close(fd)


def _still_alive(members: list[ProcessIdentity], timeout_s: float) -> list[ProcessIdentity]:
    """Those of ``members`` still alive after waiting up to ``timeout_s`` for them to exit.

    A bounded poll (5 ms growing to 50 ms) rather than a pidfd each: a clean-up of thousands of
    processes must not run out of descriptors, least of all in a CLI under a soft limit of 1,024.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    left = [m for m in members if m.alive()]
    while left and (rest := deadline - time.monotonic()) > 0:
        time.sleep(min(delay, rest))
        delay = min(delay * 1.5, 0.05)
        left = [m for m in left if m.alive()]
    return left


def terminate_all(
    find: Callable[[], list[ProcessIdentity]], timeout_s: float, sig: signal.Signals = signal.SIGTERM
) -> dict[int, str]:
    """Send ``sig`` (and SIGCONT) to every process ``find`` returns, wait up to ``timeout_s``, then SIGKILL the rest.

    ``find`` is asked again before each SIGKILL round, so members forked meanwhile are caught too
    (at most three rounds). Synchronous on purpose: it serves the CLI and the daemon's start-up
    clean-up, before any event loop runs. Returns, for each PID it signalled, ``"terminated"`` (gone
    after ``sig``) or ``"killed"``; empty when nothing was alive.
    """
    sent = [m for m in find() if send_signal(m, sig)]
    for m in sent:
        send_signal(m, signal.SIGCONT)  # a stopped process handles its signal only once continued
    outcome = {m.pid: "terminated" for m in sent}
    left = _still_alive(sent, timeout_s) if sent else []
    for _ in range(3):
        known = {m.pid for m in left}
        left += [m for m in find() if m.pid not in known]  # latecomers forked while we waited
        left = [m for m in left if send_signal(m, signal.SIGKILL)]
        if not left:
            break
        outcome.update((m.pid, "killed") for m in left)
        left = _still_alive(left, 5.0)
    return outcome


def terminate(identity: ProcessIdentity, timeout_s: float, *, group: bool = False) -> str:
    """SIGTERM ``identity`` (with ``group``, every member of its group and session), wait, then SIGKILL.

    Returns ``"gone"``, ``"terminated"`` or ``"killed"`` (see :func:`terminate_all`).
    """
    if group:
        done = terminate_all(lambda: session_members([identity])[identity], timeout_s)
    else:
        done = terminate_all(lambda: [identity] if identity.alive() else [], timeout_s)
    return "gone" if not done else "killed" if "killed" in done.values() else "terminated"
