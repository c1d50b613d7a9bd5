"""One daemon per config file, found by the file whatever state dir the file now names.

A daemon holds an ``fcntl`` lock on ``<runtime dir>/foss-supervisor-config-<24 hex digits of the SHA-256 of
the config file's real path>.lock`` for its whole life and writes its state dir into it (the runtime dir
of :func:`~foss_supervisor.base.controlsocket.runtime_dir`: ``/run/foss-supervisor`` for root, else
``$XDG_RUNTIME_DIR`` or a private ``/tmp`` folder). So:

- a second daemon for the same config file cannot start, even when the file now names another state dir
  (a save moved it: the running daemon keeps its own until a restart): it is refused naming the first;
- the CLI, finding no daemon where the file says, asks this lock where the daemon of that file runs.

The lock proves liveness, as the PID lock does; the text in the file only says where, and is read only
while the lock is held.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path

from foss_supervisor.base.controlsocket import runtime_dir
from foss_supervisor.errors import DaemonError

__all__ = ["ConfigLock"]

MAX_RECORD_BYTES = 8192  # a state dir path, with room


class ConfigLock:
    """The lock of one config file: :meth:`acquire` by its daemon, :meth:`running_state_dir` by anyone."""

    def __init__(self, config_file: Path, folder: Path | None = None) -> None:
        self.config_file = config_file
        digest = hashlib.sha256(os.fsencode(os.path.realpath(config_file))).hexdigest()[:24]
        self._name = f"foss-supervisor-config-{digest}.lock"
        self._folder = folder  # None: the runtime dir
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        """The lock file (the runtime dir is made private if needed; OSError when it cannot be)."""
        return (self._folder or Path(runtime_dir())) / self._name

    def acquire(self, state_dir: Path) -> None:
        """Take the lock for this process's life and record ``state_dir`` in it.

        Raises DaemonError naming the state dir of the daemon that holds it (another daemon runs this
        config file), or naming the file when it cannot be made.
        """
        while True:
            try:
                path = self.path
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                raise DaemonError(f"cannot create the config file's lock: {exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                held = self.running_state_dir()
                raise DaemonError(
                    f"another foss-supervisor daemon runs {self.config_file} with the state dir "
                    f"{held or 'unknown'} (the file may now name another one: the running daemon keeps its "
                    "own until `foss-supervisor restart`); stop it first (foss-supervisor stop --config ...)"
                ) from None
            if _same_file(fd, path):
                break
            os.close(fd)  # locked a file its holder removed as it left: take the one now there
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, os.fsencode(str(state_dir)), 0)
        except OSError as exc:
            os.close(fd)
            raise DaemonError(f"cannot write the config file's lock {path}: {exc.strerror or exc}") from None
        self._fd = fd

    def release(self) -> None:
        """Remove the file, then drop the lock (an acquirer that opened the removed file tries again)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            if _same_file(self._fd, self.path):
                self.path.unlink()
        os.close(self._fd)
        self._fd = None

    def running_state_dir(self) -> Path | None:
        """The state dir of the live daemon that runs this config file, or None when none holds the lock."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.pread(fd, MAX_RECORD_BYTES, 0)
                return Path(os.fsdecode(text)) if text.strip() else None
            return None  # no daemon holds it
        finally:
            os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``fd`` is still the file at ``path`` (not one removed since it was opened)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    held = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)
