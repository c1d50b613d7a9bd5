"""The daemon's PID file: an ``fcntl`` lock proves liveness, the PID file says who.

The lock sits on ``foss-supervisor.lock`` for the daemon's whole life; the PID is written next to it
atomically. A PID file without a held lock is stale, whatever its PID: that PID may be dead or may
now belong to another program, and is never signalled on the file's word alone.

The lock file holds the daemon's instance id (random, new at every start), which it also gives in its
``ping`` answer: a process that answers a control socket is the daemon that holds this lock only when
the ids match (:meth:`PidFile.recorded_instance`). Who holds the lock is read from ``/proc/locks``
(:meth:`PidFile.holders`), never guessed from a command line.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from foss_supervisor.base.atomicfile import atomic_write
from foss_supervisor.base.procinfo import lock_holders
from foss_supervisor.errors import AlreadyRunning, DaemonError

__all__ = ["PidFile", "PidFileStatus", "answers_as_holder"]


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
        self.instance_id = ""  # set by acquire: this daemon's id, in the lock file and in its ping answer
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

    def holders(self) -> set[int]:
        """The PIDs that hold the lock now (``/proc/locks``): the live daemon's, or none."""
        return lock_holders(self.lock_path)

    def recorded_instance(self) -> str:
        """The instance id the lock's holder wrote into the lock file ("" when none was written)."""
        try:
            return self.lock_path.read_text(encoding="ascii", errors="replace").strip()[:64]
        except OSError:
            return ""

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
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
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
        """Write a new instance id into the held lock file and our PID next to it. DaemonError names the file
        and the reason (``No space left on device``) when either cannot be written (the lock stays held:
        the caller releases it). The id is what ``ping`` answers with: a process is this daemon only if it
        holds the lock and answers with the id written in it (:func:`answers_as_holder`)."""
        assert self._fd is not None, "lock() first"
        instance_id = secrets.token_hex(16)
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{instance_id}\n".encode(), 0)
        except OSError as exc:
            raise DaemonError(f"cannot write the lock file {self.lock_path}: {exc.strerror or exc}") from None
        try:
            atomic_write(self.path, f"{os.getpid()}\n", mode=0o600, durable=False)
        except OSError as exc:
            raise DaemonError(f"cannot write the PID file {self.path}: {exc.strerror or exc}") from None
        self.instance_id = instance_id

    def release(self) -> None:
        """Remove the PID file, then drop the lock (in that order, so no one reads a dead PID as live)."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            if self.read_pid() == os.getpid():  # a PID file we could not write is not ours to remove
                self.path.unlink()
        os.close(self._fd)
        self._fd = None


def answers_as_holder(pong: object, pidfile: PidFile) -> bool:
    """Is ``pong`` (a ``ping`` answer) from the daemon that holds ``pidfile``'s lock? Proof: the instance id
    it gives is the one written in the lock file, and its PID holds the lock now."""
    if not isinstance(pong, dict):
        return False
    recorded = pidfile.recorded_instance()
    return bool(recorded) and pong.get("instance") == recorded and pong.get("pid") in pidfile.holders()
