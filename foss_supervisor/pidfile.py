"""The daemon's PID file: an ``fcntl`` lock proves liveness, the PID file says who.

The lock sits on ``foss-supervisor.lock`` for the daemon's whole life; the PID is written next to it
atomically. A PID file without a held lock is stale, whatever its PID: that PID may be dead or may
now belong to another program, and is never signalled on the file's word alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from foss_supervisor.atomicfile import atomic_write
from foss_supervisor.errors import AlreadyRunning, DaemonError

__all__ = ["PidFile", "PidFileStatus"]


@dataclass(frozen=True, slots=True)
class PidFileStatus:
    """What a look at the PID file found."""

    locked: bool  # a live daemon holds the lock
    pid: int | None  # the PID written in the file, if any


class PidFile:
    """Acquire on start, release on exit; :meth:`inspect` lets the CLI look without taking it."""

    def __init__(self, pid_path: Path) -> None:
        self.path = pid_path
        self.lock_path = pid_path.with_suffix(".lock")
        self._fd: int | None = None

    def read_pid(self) -> int | None:
        try:
            text = self.path.read_text(encoding="ascii").strip()
            return int(text) if text else None
        except (OSError, ValueError):
            return None

    def inspect(self) -> PidFileStatus:
        """Is a daemon alive? Answered by trying the lock, never by trusting the PID."""
        try:
            fd = os.open(self.lock_path, os.O_RDONLY)
        except FileNotFoundError:
            return PidFileStatus(False, self.read_pid())
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return PidFileStatus(True, self.read_pid())
        finally:
            os.close(fd)
        return PidFileStatus(False, self.read_pid())

    def acquire(self) -> int | None:
        """:meth:`lock`, then :meth:`write_pid`; the lock is not kept when the PID cannot be written."""
        stale = self.lock()
        try:
            self.write_pid()
        except DaemonError:
            self.release()
            raise
        return stale

    def lock(self) -> int | None:
        """Take the lock (kept until :meth:`release`); return the stale PID found in the file, if any.

        Raises :class:`AlreadyRunning` when a live daemon holds the lock, :class:`DaemonError` naming the
        file when it cannot be created. Holding it, this process alone may end what a killed daemon left.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise DaemonError(f"cannot create the lock file {self.lock_path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(self.read_pid()) from None
        self._fd = fd
        return self.read_pid()

    def write_pid(self) -> None:
        """Write our PID next to the held lock; DaemonError names the file and the reason (``No space left
        on device``) when it cannot be written (the lock stays held: the caller releases it)."""
        try:
            atomic_write(self.path, f"{os.getpid()}\n", mode=0o644, durable=False)
        except OSError as exc:
            raise DaemonError(f"cannot write the PID file {self.path}: {exc.strerror or exc}") from None

    def release(self) -> None:
        """Remove the PID file, then drop the lock (in that order, so no one reads a dead PID as live)."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            if self.read_pid() == os.getpid():  # a PID file we could not write is not ours to remove
                self.path.unlink()
        os.close(self._fd)
        self._fd = None
