"""Which process holding a daemon's PID lock may be signalled: only one proven to be our daemon."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from foss_supervisor.base.pidfile import PidFile, answers_as_holder
from foss_supervisor.base.procinfo import describe
from foss_supervisor.cli.terminal import say

__all__ = ["proven_holder"]


def proven_holder(
    pidfile: PidFile, pid: int | None, ping: Callable[[], dict[str, Any] | None], control_socket: Path
) -> int | None:
    """The daemon to signal, proven ours, or None: the process holding the lock whose PID the PID file names
    (``pid``: a daemon writes it once it holds the lock, so a frozen one is found), or the holder that answers
    ``ping()`` on ``control_socket`` with the lock's instance id. Any other holder of the lock
    (``/proc/locks``) is named and left alone: holding a file proves no identity, and a PID is never
    signalled on the file's word alone."""
    holders = pidfile.holders()
    if pid is not None and pid in holders:
        return pid
    pong = ping() if holders else None
    if pong is not None and answers_as_holder(pong, pidfile):
        return int(pong["pid"])
    for holder in sorted(holders):
        say(
            "WARN",
            f"pid {holder} ({describe(holder)['cmdline'] or 'unknown'}) holds {pidfile.lock_path} but is not "
            f"proven a foss-supervisor daemon (its PID is not in {pidfile.path}, and it does not answer on "
            f"{control_socket} with the lock's instance id): it is not signalled",
        )
    if pid is not None and pid not in holders:
        say("WARN", f"pid {pid} of {pidfile.path} does not hold its lock; it is not signalled")
    return None
