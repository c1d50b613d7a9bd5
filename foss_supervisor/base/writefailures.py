"""Failed writes of logs and state files: counted, reported at most once per interval, shown as problems.

A full or read-only disk must not turn into a flood. The standard library's logging handlers print
a traceback to stderr for every record they fail to write ("--- Logging error ---", about a thousand
a second from one chatty program, megabytes a second into a file on the state disk). Here each file
that fails gets one log line when it starts failing, then at most one per :data:`REPORT_INTERVAL_S`
with the counts, and one when a write to it succeeds again; meanwhile it is one line of
:attr:`WriteFailures.problems`, which ``status --json`` (``daemon.problems``) and ``/health`` show.
What could not be written is dropped and counted, never queued: memory stays flat.

A problem describes the present: a file nothing tries to write any more (its program stopped, or prints once
an hour) would otherwise stay failing long after space returned. :meth:`WriteFailures.watch_quiet` probes,
every :data:`PROBE_AFTER_S`, each failing file of a kind whose failed writes are dropped
(:data:`PROBED_KINDS`: logs and the journal; a state file's owner keeps and retries its write) that has had no
failed write for that long, on the file-writer thread after what is queued (a hung disk stalls the probe,
never the loop): the file must open for appending and :data:`PROBE_BYTES` written to a new file beside it must
be taken; then it is recovered.

Kinds (the log events are ``<kind>_write_failed`` and ``<kind>_write_recovered``): ``state`` (``intent.json``,
``children.json``, pipeline run history), ``program_log`` (a program's output), ``daemon_log`` (the daemon's own
structured log), ``journal`` (the event journal).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import logging.handlers
import os
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from foss_supervisor.base.filewriter import WRITER

__all__ = [
    "PROBED_KINDS",
    "PROBE_AFTER_S",
    "PROBE_BYTES",
    "REPORT_INTERVAL_S",
    "CheckedFileHandler",
    "WriteFailures",
    "writable",
]

log = structlog.get_logger("foss_supervisor.writes")

REPORT_INTERVAL_S = 60.0  # at most one log line per failing file and minute
PROBE_AFTER_S = 5.0  # a failing file with no failed write for this long is probed (and again this often)
PROBE_BYTES = 4096  # what a probe writes beside the file (then removes): one page, as a small log write takes
#: the kinds whose failed writes are dropped (and counted), so nothing but a write says the file is current again;
#: a state file's failed write is kept and retried by its owner, who alone knows when it is on disk
PROBED_KINDS = frozenset({"program_log", "daemon_log", "journal"})


@dataclasses.dataclass(slots=True)
class _Failing:
    kind: str
    error: str
    since: float  # wall clock of the first failure of this spell
    reported_at: float  # monotonic
    failed_at: float  # monotonic, of the last failed write or probe
    failures: int = 0
    dropped_bytes: int = 0


class WriteFailures:
    """The files whose last write failed, per path; thread-safe (logging handlers run in any thread).

    ``clock`` is monotonic seconds (injectable for tests); ``interval_s`` bounds the report rate per file.
    """

    def __init__(self, interval_s: float = REPORT_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._failing: dict[Path, _Failing] = {}
        self._lock = threading.Lock()
        self._reporting = threading.local()  # a report that itself fails to be written is counted, not reported
        self._probing = False  # a round of probes is queued on the file writer and not yet done
        self._probed: dict[Path, float] = {}  # a probed recovery's last report (monotonic): a relapse is counted

    @property
    def problems(self) -> list[str]:
        """One line per failing file, e.g. ``cannot write program log /s/logs/a.log: No space left on device
        (812 writes failed, 81.2 KB dropped, since 2026-11-30T13:55:02Z)``."""
        with self._lock:
            items = sorted(self._failing.items())
        return [self._describe(path, f) for path, f in items]

    def failing(self, path: Path) -> bool:
        return path in self._failing

    def failed(self, path: Path, kind: str, exc: BaseException, dropped_bytes: int = 0) -> bool:
        """Count a failed write of ``path``; log it when it is the first or the interval has passed.

        Returns True when this call logged a report (callers with a fallback channel may echo it).
        """
        error = (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__
        now = self._clock()
        with self._lock:
            f = self._failing.get(path)
            if f is None or f.error != error:  # (a relapse after a probed recovery keeps its report interval)
                reported = self._probed.pop(path, now - self._interval_s)
                f = self._failing[path] = _Failing(kind, error, time.time(), reported, now)
            f.failed_at = now
            f.failures += 1
            f.dropped_bytes += dropped_bytes
            due = now - f.reported_at >= self._interval_s and not getattr(self._reporting, "on", False)
            if due:
                f.reported_at = now
            fields = {"file": str(path), "error": error, "failures": f.failures, "dropped_bytes": f.dropped_bytes}
        if due:
            self._report(f"{kind}_write_failed", "error", fields)
        return due

    def succeeded(self, path: Path) -> None:
        """A write of ``path`` worked: if it was failing, log the recovery and drop it from :attr:`problems`."""
        if path not in self._failing:  # the common case, without the lock
            return
        with self._lock:
            f = self._failing.pop(path, None)
        if f is not None:
            self._recovered(path, f, probed=False)

    def probe_quiet(self) -> bool:
        """Queue one round of probes (on the file writer's thread) of the files that failed and have had no
        failed write for :data:`PROBE_AFTER_S`; each that is :func:`writable` again is recovered (logged
        ``<kind>_write_recovered`` with ``probed=True``) unless a write failed while it was probed.
        Returns False, queueing nothing, while there is none or the last round is not done (a hung disk)."""
        now = self._clock()
        with self._lock:
            quiet = {
                p: f.failures
                for p, f in self._failing.items()
                if f.kind in PROBED_KINDS and now - f.failed_at >= PROBE_AFTER_S
            }
            if not quiet or self._probing:
                return False
            self._probing = True
        if not WRITER.submit(functools.partial(self._probe, quiet), 0):
            with self._lock:
                self._probing = False
            return False
        return True

    async def watch_quiet(self) -> None:
        """:meth:`probe_quiet` every :data:`PROBE_AFTER_S`, for ever (the daemon runs it as a task)."""
        while True:
            await asyncio.sleep(PROBE_AFTER_S)
            self.probe_quiet()

    def _probe(self, quiet: dict[Path, int]) -> None:
        try:
            for path, failures in quiet.items():
                if not writable(path):
                    with self._lock:
                        if (f := self._failing.get(path)) is not None:
                            f.failed_at = self._clock()
                    continue
                with self._lock:  # a write that failed since the round began keeps the problem
                    f = self._failing.get(path)
                    if f is None or f.failures != failures:
                        continue
                    del self._failing[path]
                    self._probed[path] = f.reported_at
                self._recovered(path, f, probed=True)
        finally:
            with self._lock:
                self._probing = False

    def _recovered(self, path: Path, f: _Failing, *, probed: bool) -> None:
        fields: dict[str, object] = {"file": str(path), "failures": f.failures, "dropped_bytes": f.dropped_bytes}
        if probed:
            fields["probed"] = True
        self._report(f"{f.kind}_write_recovered", "info", fields)

    def forget(self, path: Path) -> None:
        """Stop tracking ``path`` (nothing writes it any more: its program was removed)."""
        with self._lock:
            self._failing.pop(path, None)
            self._probed.pop(path, None)

    def _report(self, event: str, level: str, fields: dict[str, object]) -> None:
        self._reporting.on = True
        try:
            getattr(log, level)(event, **fields)
        except Exception:  # noqa: S110 - a report must never break the write path it reports on
            pass
        finally:
            self._reporting.on = False

    @staticmethod
    def _describe(path: Path, f: _Failing) -> str:
        what = f.kind.replace("_", " ")
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(f.since))
        dropped = f", {_size(f.dropped_bytes)} dropped" if f.dropped_bytes else ""
        return f"cannot write {what} {path}: {f.error} ({f.failures} writes failed{dropped}, since {since})"


def writable(path: Path) -> bool:
    """Whether a write to ``path`` would be taken now: the file (if it exists) opens for appending, without
    blocking (a file that is not a regular file, a FIFO, is not probed: it says no), and :data:`PROBE_BYTES`
    written to a new file in its folder (a symlink's target's) are all taken (a full disk, a read-only mount, a
    folder gone or closed say no). The probe file,
    ``.write-probe-*``, is removed. Nothing is written to ``path`` itself. Blocks on a hung disk."""
    try:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISREG(os.stat(path).st_mode):  # (a FIFO is not opened: a reader would see an EOF)
                os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK | os.O_CLOEXEC))
            else:
                return False
        fd, name = tempfile.mkstemp(prefix=".write-probe-", dir=os.path.dirname(os.path.realpath(path)))
        try:
            try:
                taken = os.write(fd, b"\0" * PROBE_BYTES)
            finally:
                os.close(fd)  # (may fail on a disk in trouble: the file is removed all the same)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name)
    except OSError:
        return False
    return taken == PROBE_BYTES


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    value = float(n)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            break
    return f"{value:.1f} {unit}"


class CheckedFileHandler(logging.handlers.RotatingFileHandler):
    """A size-rotated log file whose failed writes go to :class:`WriteFailures`, not to stderr as tracebacks.

    A record that cannot be written (full disk, read-only folder, rotation failing) is dropped and
    counted; the next record that is written clears the problem. With ``echo_stderr``, each report
    is also written as one line to stderr (the daemon's own log, when it has no other destination).
    Errors other than OSError (a formatting bug) keep the standard library's report.
    """

    def __init__(
        self, path: Path, *, kind: str, failures: WriteFailures, max_bytes: int, backups: int, echo_stderr: bool = False
    ) -> None:
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", delay=True)
        self.path = path
        self.kind = kind
        self.failures = failures
        self.echo_stderr = echo_stderr
        self._failed = False

    def emit(self, record: logging.LogRecord) -> None:
        self._failed = False
        super().emit(record)
        if not self._failed:
            self.failures.succeeded(self.path)

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError):
            super().handleError(record)
            return
        self._failed = True
        dropped = len(record.msg) if isinstance(record.msg, str) else 0
        if self.failures.failed(self.path, self.kind, exc, dropped) and self.echo_stderr:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write(
                    f"cannot write {self.path}: {exc.strerror or exc}; see `foss-supervisor status --json`\n"
                )
                sys.stderr.flush()
