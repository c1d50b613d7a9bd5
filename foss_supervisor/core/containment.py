"""Containment: every process the daemon starts is found, attributed, reaped and ended, down to the last one.

Three mechanisms, all Linux (elsewhere they degrade to no-ops and say so):

* **Child subreaper** (``prctl(PR_SET_CHILD_SUBREAPER)``, or simply being PID 1): a descendant whose
  parent dies is re-parented to the daemon instead of to init, so nothing a program starts can leave
  the daemon's tree, whatever it does (``setsid()``, double fork, daemonizing).
* **Spawn tags**: each spawn gets ``FOSS_SUPERVISOR_SPAWN=<instance>/<program>/<n>`` in its environment,
  which its descendants inherit. An adopted process is attributed to its program by that tag.
* **The reaper**: after a program's process exits, after a sweep, and every :data:`REAP_INTERVAL_S`, it
  reaps the daemon's children that the event loop's child watcher does *not* own. It never calls
  ``waitpid(-1)``, so it can never steal an exit status from asyncio ("exit status already read: will
  report returncode 255"): it lists its own children from ``/proc/<pid>/task/*/children`` and waits on
  each one it owns by PID; an adopted child it finds alive gets a pidfd on the loop, so its exit is reaped
  at once. It does not catch ``SIGCHLD``: Python's signal handler writes one byte per signal into the
  event loop's wakeup socket, which holds about 270 of them, so a mass stop of thousands of programs
  overflowed it ("Exception ignored when trying to write to the signal wakeup fd", once per child, on
  stderr) and a SIGTERM arriving then could have lost its byte. Programs' own processes are watched
  through pidfds too; an orphan adopted and dead between two looks is a zombie for at most
  :data:`REAP_INTERVAL_S`.

Descendants are walked through ``/proc/<pid>/task/*/children`` (cost proportional to the subtree, not to
the number of processes on the host), and every PID is checked against its start time before a signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import uuid
import warnings
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet

import structlog

from foss_supervisor.base.procinfo import ProcStat, all_stats, read_proc, read_stat

__all__ = [
    "SPAWN_ENV",
    "Containment",
    "OwningChildWatcher",
    "Reaper",
    "become_subreaper",
    "children_of",
    "install_child_watcher",
    "kill_all",
    "new_instance_id",
    "spawn_tag",
    "tagged_processes",
    "tagged_tree",
    "tree_of",
]

log = structlog.get_logger("foss_supervisor.core.containment")

SPAWN_ENV = "FOSS_SUPERVISOR_SPAWN"
PR_SET_CHILD_SUBREAPER = 36
# /proc/PID/environ can hold up to ARG_MAX; we only need to find one variable in it
_ENVIRON_MAX_BYTES = 4 * 1024 * 1024
# adopted orphans are looked for this often (and after every program exit and sweep): no SIGCHLD handler
REAP_INTERVAL_S = 1.0
# adopted children seen alive get a pidfd on the loop, so their exit is reaped at once; at most this many,
MAX_WATCHED = 64  # within the descriptors the daemon keeps for itself (daemon.FDS_RESERVED)


def become_subreaper() -> bool:
    """Ask Linux to re-parent orphaned descendants to this process. True when in force (or PID 1)."""
    if os.getpid() == 1:
        return True
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        log.warning("subreaper_unavailable", errno=ctypes.get_errno())
        return False
    return True


def new_instance_id() -> str:
    """A short random id for one daemon's life, the first part of every spawn tag."""
    return uuid.uuid4().hex[:12]


# ------------------------------------------------------------------------------------------- /proc


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (of every thread of it), zombies included."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        with contextlib.suppress(OSError, ValueError):
            out.extend(map(int, read_proc(f"/proc/{pid}/task/{tid}/children").split()))
    return out


def tree_of(pid: int) -> list[ProcStat]:
    """``pid`` and all its live descendants, parents before children (bounded by the process count)."""
    out: list[ProcStat] = []
    seen: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        entry = read_stat(current)
        if entry is None:
            continue
        out.append(entry)
        todo.extend(children_of(current))
    return out


# what spawn_tag says of a live process whose environment cannot be read right now: it is between
# exec() and its new image, or exiting (its memory already released), for a few milliseconds
UNREADABLE = "\0unreadable"


def spawn_tag(pid: int) -> str | None:
    """The spawn tag in a process's environment; None when it has none or is gone; :data:`UNREADABLE`."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read(_ENVIRON_MAX_BYTES)
    except OSError:
        data = b""
    if not data:
        entry = read_stat(pid)
        return UNREADABLE if entry is not None and not entry.zombie else None
    key = SPAWN_ENV.encode() + b"="
    for item in data.split(b"\0"):
        if item.startswith(key):
            return item[len(key) :].decode("utf-8", "replace")
    return None


def tagged_tree(roots: Iterable[int], tag_prefix: str) -> tuple[list[ProcStat], bool]:
    """The subtrees of those ``roots`` whose spawn tag is ``tag_prefix`` or under it.

    The flag is True when some root could not be read (mid-exec or exiting): the caller may look
    again a moment later, when its tag (or its re-parented children) can be seen.
    """
    out: list[ProcStat] = []
    unsure = False
    for root in roots:
        tag = spawn_tag(root)
        if tag == UNREADABLE:
            unsure = True
        elif tag is not None and (tag == tag_prefix or tag.startswith(tag_prefix + "/")):
            out.extend(e for e in tree_of(root) if not e.zombie)
    return out, unsure


def tagged_processes(tags: Iterable[str], since_ticks: int) -> list[ProcStat]:
    """Every live process of this host whose spawn tag is one of ``tags`` or under one.

    Only processes started at or after ``since_ticks`` (boot-relative) are read, so a scan after a
    daemon crash reads the environment of the few processes started since its oldest child.
    """
    wanted = set(tags)
    out: list[ProcStat] = []
    for st in all_stats():
        if st.zombie or st.start_ticks < since_ticks:
            continue
        tag = spawn_tag(st.pid)
        if tag is not None and (tag in wanted or any(tag.startswith(t + "/") for t in wanted)):
            out.append(st)
    return out


def kill_all(entries: Iterable[ProcStat], sig: signal.Signals) -> int:
    """Send ``sig`` to each entry still alive *and still the same process* (start time checked)."""
    sent = 0
    for entry in entries:
        now = read_stat(entry.pid)
        if now is None or now.zombie or now.start_ticks != entry.start_ticks:
            continue  # gone, or the PID now names someone else
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(entry.pid, sig)
            sent += 1
    return sent


# ------------------------------------------------------------------------------------------- reaping


class OwningChildWatcher(asyncio.PidfdChildWatcher):
    """asyncio's pidfd watcher that can say which PIDs it will reap itself (so the reaper leaves them)."""

    def owned_pids(self) -> AbstractSet[int]:
        """The children this watcher reaps itself (a live view, cheap to subtract from)."""
        return self._callbacks.keys()  # type: ignore[attr-defined,no-any-return]


def install_child_watcher(loop: asyncio.AbstractEventLoop) -> OwningChildWatcher | None:
    """Use pidfds for asyncio's children and expose what it owns; None where pidfds are missing."""
    if not hasattr(os, "pidfd_open"):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        watcher = OwningChildWatcher()
        watcher.attach_loop(loop)
        asyncio.set_child_watcher(watcher)
    return watcher


class Reaper:
    """Reaps the daemon's adopted children (orphans re-parented to it) and reports them by program.

    ``owned()`` gives the children something else reaps (asyncio's watcher); :meth:`own` adds more (a
    supervised main PID). Those are never waited for here.
    """

    def __init__(
        self, owned: Callable[[], AbstractSet[int]], on_reaped: Callable[[int, int, str | None], None]
    ) -> None:
        self._owned = owned
        self._extra_owned: set[int] = set()
        self._on_reaped = on_reaped
        self._pending = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tags: dict[int, str | None] = {}
        self._watched: dict[int, int] = {}  # adopted child seen alive -> a pidfd that wakes the loop at its exit
        self.reaped = 0

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Reap now, then every :data:`REAP_INTERVAL_S` and whenever :meth:`kick` is called (never on SIGCHLD)."""
        self._loop = loop
        self._arm_timer()
        self.kick()

    def close(self) -> None:
        for pid in list(self._watched):
            self._unwatch(pid)
        if self._timer is not None:
            self._timer.cancel()
        self._loop = None

    def own(self, pid: int) -> None:
        """Someone else waits for ``pid`` (for example a forking program's main PID)."""
        self._extra_owned.add(pid)

    def disown(self, pid: int) -> None:
        self._extra_owned.discard(pid)

    def adopted_pids(self) -> set[int]:
        """The daemon's children nobody else waits for: adopted orphans (one read, set arithmetic in C)."""
        return set(children_of(os.getpid())) - self._owned() - self._extra_owned

    def kick(self) -> None:
        """Schedule one reap pass for this loop iteration (many exits, one pass)."""
        if self._loop is not None and not self._pending:
            self._pending = True
            self._loop.call_soon(self.reap_now)

    def _arm_timer(self) -> None:
        if self._loop is not None:
            self._timer = self._loop.call_later(REAP_INTERVAL_S, self._backstop)

    def _backstop(self) -> None:
        self.kick()
        self._arm_timer()

    def reap_now(self) -> int:
        """Wait (without blocking) for every adopted child that has exited; return how many were reaped."""
        self._pending = False
        count = 0
        for pid in self.adopted_pids():
            if pid not in self._tags:  # remember the tag while it can still be read
                self._tags[pid] = spawn_tag(pid)
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                self._tags.pop(pid, None)
                continue
            if done:
                count += 1
                tag = self._tags.pop(pid, None)
                self._unwatch(pid)
                self._on_reaped(pid, os.waitstatus_to_exitcode(status), tag)
            else:
                self._watch(pid)
        self.reaped += count
        return count

    def _watch(self, pid: int) -> None:
        """Reap ``pid`` (our child, so its PID cannot be reused before we reap it) the moment it exits.

        Through a pidfd on the loop, at most :data:`MAX_WATCHED` at once (the rest wait for the timer).
        """
        if pid in self._watched or self._loop is None or len(self._watched) >= MAX_WATCHED:
            return
        try:
            fd = os.pidfd_open(pid)
        except (AttributeError, OSError):  # no pidfds here, or it is already reaped
            return
        self._watched[pid] = fd
        self._loop.add_reader(fd, self._exited, pid)

    def _exited(self, pid: int) -> None:
        self._unwatch(pid)
        self.kick()

    def _unwatch(self, pid: int) -> None:
        fd = self._watched.pop(pid, None)
        if fd is not None:
            if self._loop is not None:
                self._loop.remove_reader(fd)
            os.close(fd)


# ------------------------------------------------------------------------------------------- the facade


class Containment:
    """One daemon's containment: its instance id, its reaper, and the sweep of a spawn's escaped processes.

    ``owned()`` gives the daemon's children that asyncio's watcher reaps itself.
    Without :meth:`start` (unit tests, a plain library use) nothing is adopted and sweeps still work on
    whatever is visible.
    """

    def __init__(self, owned: Callable[[], AbstractSet[int]] = frozenset, instance_id: str | None = None) -> None:
        self.instance_id = instance_id or new_instance_id()
        self.subreaper = False
        self.reaper = Reaper(owned, self._reaped)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Become a subreaper and start reaping adopted children."""
        self.subreaper = become_subreaper()
        self.reaper.install(loop)
        log.info("containment_started", subreaper=self.subreaper, pid1=os.getpid() == 1, instance=self.instance_id)

    def close(self) -> None:
        self.reaper.close()

    def tag(self, program: str, suffix: str | int) -> str:
        """The spawn tag for one spawn of ``program`` (``suffix``: the spawn count, or ``probe``)."""
        return f"{self.instance_id}/{program}/{suffix}"

    def adopted(self, tag: str) -> list[ProcStat]:
        """Live processes re-parented to the daemon whose tag is ``tag``, with their subtrees (one look)."""
        return self._adopted(tag)[0]

    def _adopted(self, tag: str) -> tuple[list[ProcStat], bool]:
        return tagged_tree(self.reaper.adopted_pids(), tag)

    async def adopted_settled(self, tag: str, within_s: float = 1.0) -> list[ProcStat]:
        """Like :meth:`adopted`, looking again (bounded) while some adopted process is mid-exec or exiting."""
        deadline = asyncio.get_running_loop().time() + within_s
        found, unsure = self._adopted(tag)
        while unsure and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.005)
            found, unsure = self._adopted(tag)
        return found

    def tree(self, tag: str, leader: int | None) -> list[ProcStat]:
        """Everything a spawn left alive: the leader's subtree (when it still runs) and its escaped processes."""
        entries = [e for e in tree_of(leader) if not e.zombie] if leader is not None else []
        seen = {e.pid for e in entries}
        entries.extend(e for e in self.adopted(tag) if e.pid not in seen)
        return entries

    def sweep(self, tag: str, sig: signal.Signals = signal.SIGKILL) -> int:
        """Signal every escaped process of a spawn whose leader is gone; return how many were signalled."""
        entries = self.adopted(tag)
        if entries:
            log.warning("escaped_processes_ended", tag=tag, signal=sig.name, pids=[e.pid for e in entries])
        sent = kill_all(entries, sig)
        self.reaper.kick()
        return sent

    def end_adopted(self) -> int:
        """At shutdown, after every program stopped: SIGKILL whatever was still re-parented to the daemon.

        Those are descendants of ours whose tag was lost (a program that cleared its environment) or,
        as PID 1, orphans of the whole namespace. Returns how many were killed (each is then reaped).
        """
        me = os.getpid()
        entries = [e for pid in self.reaper.adopted_pids() for e in tree_of(pid) if not e.zombie]
        if entries:
            log.warning("adopted_processes_ended", pids=[e.pid for e in entries[:20]], count=len(entries))
        killed = kill_all(entries, signal.SIGKILL)
        for entry in entries:  # reap the ones that were our children; the rest are reaped by their parents
            with contextlib.suppress(ChildProcessError):
                os.waitpid(entry.pid, 0) if entry.ppid == me else None
        self.reaper.reap_now()
        return killed

    def _reaped(self, pid: int, code: int, tag: str | None) -> None:
        log.debug("adopted_child_reaped", pid=pid, exit_code=code, tag=tag)
