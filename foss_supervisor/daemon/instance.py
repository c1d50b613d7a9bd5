"""Other instances: tell a live foss-supervisor from a stale one, and end what a killed one left.

Identity by proof, never by resemblance. A process is a foss-supervisor daemon only if it *holds* the
``fcntl`` lock on some ``<state_dir>/foss-supervisor.lock`` (its open files name the file, ``/proc/locks``
shows it holding the lock) and is the PID written in that state dir's PID file (a daemon writes it once it
holds the lock: any process can lock a file); it is alive only if it also answers ``ping`` on
``<state_dir>/control.sock`` with the instance id written in that lock file. Its command line proves nothing:
a docs server run from ``/srv/foss-supervisor-docs`` is a stranger. Only an instance of ours that does not
answer is stale and may be replaced; one that answers is never stopped; a stranger is named (PID, user,
command line) and left alone unless ``--take-over-port`` asks for the port. A killed daemon's programs are
found from its ``children.json`` record and ended whole.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import structlog

from foss_supervisor.base.pidfile import PidFile, answers_as_holder
from foss_supervisor.base.procinfo import (
    ProcessIdentity,
    identity_of,
    port_holder,
    read_stat,
    session_members,
    terminate,
    terminate_all,
)
from foss_supervisor.control.client import call
from foss_supervisor.core.containment import spawn_tag, tagged_processes
from foss_supervisor.core.statestore import Leftover, StateStore
from foss_supervisor.errors import DaemonError, InstanceConflict, PortInUse, SupervisorError

__all__ = [
    "LOCK_NAME",
    "Instance",
    "bind_dashboard",
    "clean_leftovers",
    "inspect_instance",
    "leftover_processes",
    "ping",
]

log = structlog.get_logger("foss_supervisor.daemon.instance")

LOCK_NAME = "foss-supervisor.lock"
# A daemon binds its port a moment before it serves its control socket: wait this long for an answer.
STARTING_GRACE_S = 5.0


@dataclass(frozen=True, slots=True)
class Instance:
    """What is known of a process (``pid``) that may be a foss-supervisor: its state dir, config and liveness."""

    pid: int
    state_dir: Path | None  # where it holds our lock (proved); None: it holds none, it is not ours
    config: str | None  # as it answered on its control socket, else from its command line
    answering: bool  # answered ping on <state_dir>/control.sock with its lock's instance id: never stopped

    @property
    def ours(self) -> bool:
        """It holds a foss-supervisor lock: a daemon of ours, live or stale."""
        return self.state_dir is not None

    def describe(self) -> str:
        return f"pid {self.pid}, state dir {self.state_dir or 'unknown'}, config {self.config or 'unknown'}"


def ping(control_socket: Path, timeout_s: float) -> dict[str, Any] | None:
    """The daemon's answer to ``ping`` (``{"pid", "phase", "config", "state_dir", ...}``), or None."""
    try:
        result = call(control_socket, "ping", timeout_s=timeout_s)
    except (OSError, SupervisorError, ValueError):
        return None
    return result if isinstance(result, dict) else None


def _held_lock_dir(pid: int) -> Path | None:
    """The state dir whose lock ``pid`` holds: a file named like our lock among its open files, which
    ``/proc/locks`` shows it holding. None otherwise (not ours, or not visible to this user)."""
    try:
        files = psutil.Process(pid).open_files()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    for f in files:
        path = Path(f.path)
        pidfile = PidFile(path.with_suffix(".pid"))
        # it holds the lock and is the PID a daemon wrote after taking it: holding a file alone proves nothing
        if path.name == LOCK_NAME and pid in pidfile.holders() and pidfile.read_pid() == pid:
            return path.parent
    return None


def _config_from_cmdline(pid: int) -> str | None:
    try:
        argv = psutil.Process(pid).cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def inspect_instance(pid: int, grace_s: float = STARTING_GRACE_S, ping_timeout_s: float = 2.0) -> Instance:
    """Find the state dir whose lock ``pid`` holds and ask it over its control socket, for up to ``grace_s``.

    A process that holds no lock of ours comes back at once with ``state_dir`` None (a stranger). One
    that holds one but does not answer within the grace with that lock's instance id (hung, stopped,
    or another process on its socket) comes back with ``answering`` False (stale).
    """
    state_dir = _held_lock_dir(pid)
    if state_dir is None:
        return Instance(pid, None, _config_from_cmdline(pid), answering=False)
    pidfile = PidFile(state_dir / "foss-supervisor.pid")
    deadline = time.monotonic() + grace_s
    delay = 0.05
    while True:
        pong = ping(state_dir / "control.sock", ping_timeout_s)
        if pong is not None and answers_as_holder(pong, pidfile):
            config = pong.get("config") or _config_from_cmdline(pid)
            return Instance(int(pong.get("pid") or pid), state_dir, config, answering=True)
        if time.monotonic() >= deadline or not psutil.pid_exists(pid):
            return Instance(pid, state_dir, _config_from_cmdline(pid), answering=False)
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


RELEASE_S = 2.0  # how long a killed holder may take to let go of its descriptors (the port, its lock)


def _try_bind(host: str, port: int) -> socket.socket | None:
    """A listening, non-blocking socket on ``host:port``; None while the port is in use."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise DaemonError(f"cannot open a socket for the dashboard: {exc.strerror or exc}") from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(socket.SOMAXCONN)  # while the dashboard process starts or is busy, clients wait here
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRINUSE:
            raise DaemonError(f"cannot bind the dashboard to {host}:{port}: {exc.strerror or exc}") from None
        return None
    return sock


def bind_dashboard(host: str, port: int, *, take_over: bool, stop_timeout_s: float = 5.0) -> socket.socket:
    """Bind the dashboard port; replace a stale foss-supervisor; touch a stranger only if asked.

    Who holds the port is found by proof (:func:`inspect_instance`). A foss-supervisor that answers on
    its own control socket is never stopped, not even with ``take_over``: that raises
    :class:`InstanceConflict` naming its PID, state dir and config. One that holds its lock but does not
    answer is stale and replaced. Any other process raises :class:`PortInUse` naming it (PID, user,
    command line) and is left alone, unless ``take_over``. Any other failure (an address not on this
    host, a privileged port, no descriptor left) raises :class:`DaemonError` naming the address and the
    reason.
    """
    sock = _try_bind(host, port)
    if sock is not None:
        return sock
    holder = port_holder(port)
    ident = identity_of(int(holder["pid"])) if holder else None
    if holder is None or ident is None or ident.pid == os.getpid():
        raise PortInUse(host, port, holder)
    other = inspect_instance(ident.pid)
    if other.answering:
        log.error(
            "port_held_by_live_instance", port=port, pid=other.pid, state_dir=str(other.state_dir), config=other.config
        )
        raise InstanceConflict(f"port {host}:{port}", other.pid, str(other.state_dir), other.config)
    if other.ours:
        why = f"stale foss-supervisor instance ({other.describe()}, not answering on its control socket)"
    elif take_over:
        why = "--take-over-port"
    else:  # whatever its command line says: it holds no lock of ours
        log.error("port_held_by_another_program", port=port, **holder)
        raise PortInUse(host, port, holder)
    log.warning("port_holder_stopping", port=port, reason=why, **holder)
    outcome = terminate(ident, stop_timeout_s)
    log.info("port_holder_stopped", port=port, pid=ident.pid, outcome=outcome)
    if other.state_dir is not None and outcome == "killed":
        _end_programs_of(other.state_dir)
    # a killed multi-threaded holder lets its descriptors go a moment after it is seen gone
    deadline = time.monotonic() + RELEASE_S
    while (sock := _try_bind(host, port)) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if sock is not None:
        return sock
    raise PortInUse(host, port, port_holder(port))


def _end_programs_of(state_dir: Path) -> None:
    """A stale instance had to be SIGKILLed: end the programs it recorded, unless a new daemon holds its lock.

    The killed daemon's descriptors (its lock among them) are let go a moment after it is seen gone, so
    the lock is looked at again, bounded, before it is taken for a new daemon's.
    """
    pidfile = PidFile(state_dir / "foss-supervisor.pid")
    deadline = time.monotonic() + RELEASE_S
    while (locked := pidfile.inspect().locked) and time.monotonic() < deadline:
        time.sleep(0.02)
    if locked:
        return
    for name, pid, outcome in clean_leftovers(StateStore(state_dir)):
        log.warning("leftover_stopped", program=name, pid=pid, outcome=outcome, state_dir=str(state_dir))


def _self_and_ancestors() -> set[int]:
    """This process and its ancestors: a `stop` run by a supervised program must not end itself."""
    out, pid = set(), os.getpid()
    while pid > 1 and pid not in out and (st := read_stat(pid)) is not None:
        out.add(pid)
        pid = st.ppid
    return out


def leftover_processes(leftovers: Mapping[str, Leftover]) -> dict[str, list[ProcessIdentity]]:
    """Per program, the live processes a killed daemon's program left: its group and session (also
    when the leader is gone), and every process carrying its spawn tag (those that left the session).

    Each is checked by start time (none started before the recorded leader); this process and its
    ancestors are never included.
    """
    spared = _self_and_ancestors()
    by_leader = session_members(rec.identity for rec in leftovers.values())
    out = {name: [m for m in by_leader[rec.identity] if m.pid not in spared] for name, rec in leftovers.items()}
    prefixes = {rec.spawn_tag: name for name, rec in leftovers.items() if rec.spawn_tag}
    since = min((rec.identity.start_ticks for rec in leftovers.values() if rec.identity.start_ticks), default=None)
    if prefixes and since is not None:
        seen = spared | {m.pid for found in out.values() for m in found}
        for st in tagged_processes((p.rstrip("/") for p in prefixes), since):
            tag = spawn_tag(st.pid) or ""
            name = next((n for prefix, n in prefixes.items() if tag.startswith(prefix)), None)
            if (
                st.pid not in seen
                and name is not None
                and st.start_ticks >= (leftovers[name].identity.start_ticks or 0)
            ):
                out[name].append(ProcessIdentity(st.pid, st.start_ticks))
    return out


StopPolicy = tuple[signal.Signals, float]  # the signal that asks a program to stop, and how long it gets
DEFAULT_STOP: StopPolicy = (signal.SIGTERM, 5.0)


def clean_leftovers(store: StateStore, policies: Mapping[str, StopPolicy] | None = None) -> list[tuple[str, int, str]]:
    """Stop what a killed predecessor left running, so no program ever runs twice.

    Ends every process :func:`leftover_processes` finds, each program with its own stop signal and
    timeout from ``policies`` (by program name; :data:`DEFAULT_STOP` otherwise), the programs in
    parallel. Returns ``(program, pid, outcome)`` for each program that had something left
    (``"terminated"`` or ``"killed"``); the record is then removed.
    """
    leftovers = store.leftovers()
    found = leftover_processes(leftovers) if leftovers else {}
    policies = policies or {}
    by_policy: dict[StopPolicy, list[str]] = {}
    for name, members in found.items():
        if members:
            by_policy.setdefault(policies.get(name, DEFAULT_STOP), []).append(name)

    def end(policy: StopPolicy, names: list[str]) -> dict[int, str]:
        def members() -> list[ProcessIdentity]:
            mine = {n: leftovers[n] for n in names}
            return [m for group in leftover_processes(mine).values() for m in group]

        return terminate_all(members, policy[1], policy[0])

    outcome: dict[int, str] = {}
    if by_policy:
        with ThreadPoolExecutor(max_workers=min(32, len(by_policy))) as pool:
            for result in pool.map(lambda item: end(*item), by_policy.items()):
                outcome.update(result)
    done = []
    for name, rec in leftovers.items():
        if found[name]:
            ended = [outcome.get(m.pid, "gone") for m in found[name]]
            done.append((name, rec.identity.pid, "killed" if "killed" in ended else "terminated"))
    store.forget_leftovers()
    return done
