"""What the OS says about a PID, checked against its start time so a reused PID is never signalled."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from dataclasses import dataclass
from typing import Any

import psutil

__all__ = [
    "ProcessIdentity",
    "describe",
    "identity_of",
    "port_holder",
    "terminate",
    "wait_gone",
]


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """A PID together with its start time: the pair names one process for its whole life."""

    pid: int
    create_time: float

    def alive(self) -> bool:
        """True when ``pid`` still runs and is the very process we recorded (not a reused PID)."""
        try:
            proc = psutil.Process(self.pid)
            return abs(proc.create_time() - self.create_time) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return False

    def as_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "create_time": self.create_time}


def identity_of(pid: int) -> ProcessIdentity | None:
    """The identity of a running ``pid``, or None when it is gone."""
    try:
        return ProcessIdentity(pid, psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


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


def port_holder(port: int) -> dict[str, Any] | None:
    """Who listens on TCP ``port`` (PID, user, command line), or None when nobody visible does."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return None
    for conn in conns:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return describe(conn.pid)
    return None


def wait_gone(identity: ProcessIdentity, timeout_s: float) -> bool:
    """Block until the process exits (or ``timeout_s`` passes); True when it is gone.

    A pidfd becomes readable the moment the process exits, so there is no polling delay; where
    pidfds are missing this falls back to a bounded poll.
    """
    try:
        fd = os.pidfd_open(identity.pid)
    except ProcessLookupError:
        return True
    except (OSError, AttributeError):
        deadline = time.monotonic() + timeout_s
        while identity.alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        return not identity.alive()
    try:
        if not identity.alive():  # the PID was reused before we opened it: ours is gone
            return True
        readable, _, _ = select.select([fd], [], [], max(0.0, timeout_s))
        return bool(readable) or not identity.alive()
    finally:
        os.close(fd)


def terminate(identity: ProcessIdentity, timeout_s: float, *, group: bool = False) -> str:
    """SIGTERM ``identity`` (or its process group), wait up to ``timeout_s``, then SIGKILL.

    Synchronous on purpose: it serves the CLI and the daemon's start-up clean-up, before any
    event loop runs. Returns ``"gone"``, ``"terminated"`` or ``"killed"``.
    """
    if not identity.alive():
        return "gone"
    pgid = os.getpgid(identity.pid) if group else None

    def send(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if pgid is not None and pgid == identity.pid:
                os.killpg(pgid, sig)
            elif identity.alive():
                os.kill(identity.pid, sig)

    send(signal.SIGTERM)
    if wait_gone(identity, timeout_s):
        if pgid is not None:
            send(signal.SIGKILL)  # members that outlived their leader
        return "terminated"
    send(signal.SIGKILL)
    wait_gone(identity, 5.0)
    return "killed"
