"""What the OS says about a PID, checked against its start time so a reused PID is never signalled."""

from __future__ import annotations

import contextlib
import os
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
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while identity.alive() and time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    if not identity.alive():
        if pgid is not None:
            send(signal.SIGKILL)  # members that outlived their leader
        return "terminated"
    send(signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while identity.alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    return "killed"
