"""One writer thread for programs' output files: the supervision loop hands it writes and never waits on a disk.

A write to a disk that is slow or hung (a stalled NFS mount, a device in error recovery) blocks the thread
that makes it. Made on the loop, it would stop supervision with it; here the loop only queues the write
(:meth:`FileWriter.submit`), and one thread makes the writes in the order they came, so every file's
content keeps its order. What is queued is bounded in bytes (:data:`QUEUED_BYTES_MAX`): past it
``submit`` refuses and the caller drops the chunk and counts it, as for a full disk (memory stays flat).
At interpreter exit the thread is given :data:`FLUSH_AT_EXIT_S` to write what is queued.
"""

from __future__ import annotations

import atexit
import collections
import logging
import threading
from collections.abc import Callable

__all__ = ["FLUSH_AT_EXIT_S", "QUEUED_BYTES_MAX", "WRITER", "FileWriter"]

QUEUED_BYTES_MAX = 16 * 1024 * 1024  # bytes of all programs' output waiting for the disk at most
FLUSH_AT_EXIT_S = 5.0

log = logging.getLogger("foss_supervisor.filewriter")


class FileWriter:
    """Runs file writes on one daemon thread, in submission order, ``max_bytes`` queued at most."""

    def __init__(self, max_bytes: int = QUEUED_BYTES_MAX) -> None:
        self.max_bytes = max_bytes
        self._pending: collections.deque[tuple[Callable[[], None], int]] = collections.deque()
        self._queued = 0  # bytes submitted and not yet written
        self._submitted = 0  # writes submitted since the start
        self._done = 0  # writes made (or failed) since the start, in submission order
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    @property
    def queued_bytes(self) -> int:
        """Bytes submitted and not yet written."""
        return self._queued

    def submit(self, write: Callable[[], None], size: int) -> bool:
        """Queue ``write`` (which writes ``size`` bytes); False, and nothing queued, when that would pass
        ``max_bytes`` (a single write larger than it is taken when nothing else waits)."""
        with self._cond:
            if self._queued and self._queued + size > self.max_bytes:
                return False
            self._queued += size
            self._submitted += 1
            self._pending.append((write, size))
            self._cond.notify()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="file-writer", daemon=True)
                self._thread.start()
        return True

    def mark(self) -> int:
        """A mark of everything submitted so far, for :meth:`wait`."""
        with self._cond:
            return self._submitted

    def wait(self, mark: int, timeout_s: float) -> bool:
        """Wait until what was submitted up to ``mark`` is written (not what came after: a chatty program
        does not hold it), ``timeout_s`` at most; False if it was not."""
        with self._cond:
            return self._cond.wait_for(lambda: self._done >= mark, timeout_s)

    def flush(self, timeout_s: float) -> bool:
        """:meth:`wait` for everything submitted before this call."""
        return self.wait(self.mark(), timeout_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._pending))
                write, size = self._pending.popleft()
            try:
                write()
            except Exception:  # a bug in a write must not end the thread that makes every other write
                log.exception("file_write_failed")
            finally:
                with self._cond:
                    self._queued -= size
                    self._done += 1
                    self._cond.notify_all()


WRITER = FileWriter()  # the daemon's one writer of programs' output


@atexit.register
def _flush_at_exit() -> None:
    if not WRITER.flush(FLUSH_AT_EXIT_S):  # stuck in a write holding a handler's lock, which logging's
        atexit.unregister(logging.shutdown)  # own flush at exit would wait for, for ever
