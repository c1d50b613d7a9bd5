"""Who is that other foss-supervisor? Tell a live instance from a stale one before touching it.

A daemon proves it is alive two ways: it holds the ``fcntl`` lock on ``<state_dir>/foss-supervisor.lock``
and it answers ``ping`` on ``<state_dir>/control.sock``. Another process's state dir is found from the
lock file it holds open (``/proc/PID/fd``), so this works whatever config or environment started it.
Only an instance that does not answer is stale and may be replaced; one that answers is never stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from foss_supervisor.control.client import call
from foss_supervisor.errors import SupervisorError

__all__ = ["LOCK_NAME", "Instance", "inspect_instance", "looks_like_ours", "ping"]

LOCK_NAME = "foss-supervisor.lock"
# A daemon binds its port a moment before it serves its control socket: wait this long for an answer.
STARTING_GRACE_S = 5.0


@dataclass(frozen=True, slots=True)
class Instance:
    """What is known of a foss-supervisor process (``pid``): its state dir, config and liveness."""

    pid: int
    state_dir: Path | None  # from the lock file it holds open; None when it holds none
    config: str | None  # as it answered on its control socket, else from its command line
    answering: bool  # answered ping on <state_dir>/control.sock: alive, never to be stopped

    def describe(self) -> str:
        return f"pid {self.pid}, state dir {self.state_dir or 'unknown'}, config {self.config or 'unknown'}"


def looks_like_ours(holder: dict[str, Any]) -> bool:
    """A process (as :func:`foss_supervisor.procinfo.describe` returns it) whose command line is foss-supervisor."""
    cmdline = str(holder.get("cmdline") or "")
    return "foss_supervisor" in cmdline or "foss-supervisor" in cmdline


def ping(control_socket: Path, timeout_s: float) -> dict[str, Any] | None:
    """The daemon's answer to ``ping`` (``{"pid", "phase", "config", "state_dir", ...}``), or None."""
    try:
        result = call(control_socket, "ping", timeout_s=timeout_s)
    except (OSError, SupervisorError, ValueError):
        return None
    return result if isinstance(result, dict) else None


def _held_lock_dir(pid: int) -> Path | None:
    try:
        files = psutil.Process(pid).open_files()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    for f in files:
        path = Path(f.path)
        if path.name == LOCK_NAME:
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
    """Find ``pid``'s state dir and ask it over its control socket, for up to ``grace_s`` seconds.

    An instance that holds no lock, or does not answer within the grace (hung, stopped, or not a
    daemon at all), comes back with ``answering`` False.
    """
    state_dir = _held_lock_dir(pid)
    if state_dir is None:
        return Instance(pid, None, _config_from_cmdline(pid), answering=False)
    deadline = time.monotonic() + grace_s
    delay = 0.05
    while True:
        pong = ping(state_dir / "control.sock", ping_timeout_s)
        if pong is not None:
            config = pong.get("config") or _config_from_cmdline(pid)
            return Instance(int(pong.get("pid") or pid), state_dir, config, answering=True)
        if time.monotonic() >= deadline or not psutil.pid_exists(pid):
            return Instance(pid, state_dir, _config_from_cmdline(pid), answering=False)
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
