"""The durable journal: every event the daemon numbers, appended to daily JSON-lines files that outlive it.

The :class:`~foss_supervisor.core.eventlog.EventLog` keeps the last few events in memory for live readers;
this keeps all of them on disk, for ``foss-supervisor events --since``, audits ("who stopped api?") and
queries. One file per UTC day, ``<state_dir>/history/events-YYYY-MM-DD.jsonl``, mode 0600, one event per
line exactly as subscribers read it (already redacted, with ``seq`` and the daemon run's ``boot``).

Supervision shares fate with nothing: :meth:`EventJournal.append` only puts the line on a queue (never blocks,
never raises); a thread of the journal's own (not the loop's default executor) writes what is queued, at
the latest every ``flush_interval_s`` (1 s), with ``fdatasync`` after each batch. A ``kill -9`` of the
daemon loses at most what was queued in the last second. A full or failing disk is reported like every
failed write, through the daemon's :class:`~foss_supervisor.base.writefailures.WriteFailures` (a warning in
``status`` until a write succeeds again); the lines it refused are kept (the newest
:data:`MAX_UNWRITTEN`; older ones are counted in :attr:`EventJournal.dropped`) and written once it takes
them again, tried every interval. Never the loop's time. At most ``max_queue`` lines wait; past that the newest
are dropped and counted.

Retention: at start and whenever a new day begins, files older than ``retention_days`` are removed, and
then the oldest files while all of them together exceed ``max_bytes`` (today's file is never removed).
Stdlib only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from foss_supervisor.base.jsonable import jsonable
from foss_supervisor.base.jsontext import parse_json
from foss_supervisor.base.writefailures import WriteFailures

__all__ = ["DAY_FILE", "EventJournal", "day_files", "read_journal"]

log = logging.getLogger("foss_supervisor.core.eventjournal")  # stdlib: the writer is a thread

#: a journal file's name: its UTC day
DAY_FILE = re.compile(r"^events-(\d{4}-\d{2}-\d{2})\.jsonl$")
_STOP = object()
MAX_UNWRITTEN = 10_000  # lines kept while the disk refuses them (the newest; older ones are counted lost)


def day_files(directory: Path) -> list[tuple[dt.date, Path]]:
    """The journal's files in ``directory``, oldest day first (other files are not the journal's)."""
    found = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(directory):
            if (m := DAY_FILE.match(entry.name)) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(ValueError):
                    found.append((dt.date.fromisoformat(m[1]), Path(entry.path)))
    return sorted(found)


def read_journal(directory: Path, since: float | None = None, *, boot: str | None = None) -> Iterator[dict[str, Any]]:
    """The journal's events in ``directory``, oldest first (files by day, lines in order): with ``since``
    (epoch seconds) those at or after it, from its day's file on; with ``boot``, only that daemon run's (the
    lines of other runs are not parsed). A line that is not a JSON object (the end of a file cut by a crash)
    is skipped. Reads files: call it off the event loop."""
    first_day = None if since is None else dt.datetime.fromtimestamp(since, dt.UTC).date()
    tag = None if boot is None else f'"boot":"{boot}"'
    for day, path in day_files(directory):
        if first_day is not None and day < first_day:
            continue
        with contextlib.suppress(FileNotFoundError), path.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                if tag is not None and tag not in line:
                    continue
                try:
                    event = parse_json(line)
                except ValueError:
                    continue
                if not isinstance(event, dict) or (since is not None and float(event.get("at") or 0) < since):
                    continue
                if boot is None or event.get("boot") == boot:
                    yield event


class EventJournal:
    """Appends events to ``directory``'s daily files from a thread of its own; see the module docstring.

    ``clock`` gives seconds since the epoch (the tests pass their own); ``failures`` (thread-safe) hears of
    each failed write and of the recovery.
    """

    def __init__(
        self,
        directory: Path,
        *,
        retention_days: int = 30,
        max_bytes: int = 1 << 30,
        flush_interval_s: float = 1.0,
        max_queue: int = 100_000,
        clock: Callable[[], float] = time.time,
        failures: WriteFailures | None = None,
    ) -> None:
        self.directory = directory
        self.retention_days = retention_days
        self.max_bytes = max_bytes
        self.flush_interval_s = flush_interval_s
        self.dropped = 0  # lines lost: the queue was full or a write failed
        self.written = 0
        self._clock = clock
        self._failures = failures or WriteFailures()
        self._queue: queue.Queue[object] = queue.Queue(max_queue)
        self._thread: threading.Thread | None = None
        self._day: dt.date | None = None
        self._fd: int | None = None
        self._unwritten: list[str] = []  # lines a failed write could not store, tried again each interval

    def start(self) -> None:
        """Create the folder (0700), apply retention, start the writer thread."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.trim()
        self._thread = threading.Thread(target=self._run, name="journal", daemon=True)
        self._thread.start()

    def append(self, data: Mapping[str, Any]) -> None:
        """Queue one event (JSON-able, as the event log keeps it); never blocks, never raises."""
        try:
            line = json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=jsonable)
            self._queue.put_nowait(line)
        except (queue.Full, TypeError, ValueError):
            self.dropped += 1

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is queued and stop the thread (bounded: past ``timeout_s`` the rest is abandoned)."""
        if self._thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=timeout_s)
        self._thread.join(timeout_s)
        self._thread = None

    # the writer thread

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[str] = []
            try:
                item = self._queue.get(timeout=self.flush_interval_s)
            except queue.Empty:
                item = None
            while item is not None:  # take everything queued now: one write and one sync per batch
                if item is _STOP:
                    stopping = True
                    break
                batch.append(str(item))
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = None
            if batch or self._unwritten:  # what a failed write kept is tried again each interval
                try:
                    self._write(batch)
                except Exception:  # a bug in one batch must not end the thread that writes every later one
                    self.dropped += len(batch)
                    log.exception("journal_write_crashed", extra={"lines": len(batch)})
        self._close_file()

    def _write(self, lines: list[str]) -> None:
        lines = self._unwritten + lines
        # text no UTF-8 can hold (a lone surrogate from a client's JSON or an undecodable argv byte) is
        # written as "?": the line is kept, and a reader of the journal never meets invalid UTF-8
        data = ("\n".join(lines) + "\n").encode("utf-8", "replace")
        day = dt.datetime.fromtimestamp(self._clock(), dt.UTC).date()
        path = self.directory / f"events-{day.isoformat()}.jsonl"
        try:
            fd = self._file_for(day, path)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fdatasync(fd)
        except OSError as exc:
            self._close_file()  # a new open next time: the folder may have come back
            # kept to try again (a part may have been written: a retried line can appear twice, never half)
            self._unwritten = lines[-MAX_UNWRITTEN:]
            self.dropped += len(lines) - len(self._unwritten)
            self._failures.failed(path, "journal", exc, len(data))
            return
        self._unwritten = []
        self.written += len(lines)
        self._failures.succeeded(path)

    def _file_for(self, day: dt.date, path: Path) -> int:
        if self._fd is None or day != self._day:
            self._close_file()
            if day != self._day:
                self._day = day
                self.trim()
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
            self._fd = os.open(path, flags, 0o600)
        return self._fd

    def _close_file(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def trim(self) -> list[Path]:
        """Apply retention now; return the files removed (see the module docstring)."""
        today = dt.datetime.fromtimestamp(self._clock(), dt.UTC).date()
        files = [(day, path) for day, path in day_files(self.directory) if day < today]
        removed = [path for day, path in files if (today - day).days > self.retention_days]
        kept = [path for day, path in files if (today - day).days <= self.retention_days]
        sizes: dict[Path, int] = {}
        for path in [*kept, self.directory / f"events-{today.isoformat()}.jsonl"]:
            with contextlib.suppress(OSError):
                sizes[path] = path.stat().st_size
        total = sum(sizes.values())
        for path in kept:  # oldest first
            if total <= self.max_bytes:
                break
            total -= sizes.get(path, 0)
            removed.append(path)
        for path in removed:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return removed
