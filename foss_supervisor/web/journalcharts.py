"""Charts over 24 h and 7 d from the durable journal, read by the dashboard process (never by the daemon).

The daemon's journal (:mod:`foss_supervisor.core.eventjournal`) keeps a ``ResourcesSampled`` event every
``history.sample_interval`` (60 s by default). The dashboard runs in a process of its own, so reading a
week of it here costs supervision nothing: no lock, loop or thread of the daemon's is involved, and the
daemon never imports anything for it (no DuckDB, with or without pipelines).

What is kept here is a *rollup*: for every series and every bucket of :data:`FINE_S` (288 s: a UTC day
holds :data:`PER_DAY` = 300 of them exactly) the minimum, maximum, sum and count of the samples in it, in
one ``array('d')`` per series and day (~9.6 KB). The 24 h chart shows 300 such buckets; the 7 d chart
merges them seven by seven into 300 buckets of 2,016 s. The journal's files are read once, from the byte
offset reached last time (they are append-only; only whole lines), on a thread of this process, and a
refresh stops after :data:`READ_BUDGET_S` (its answer then says ``"complete": false`` and the next
request reads on). Days older than :data:`KEEP_DAYS` are forgotten.

Series: the host's ``cpu`` (% of all cores), ``mem`` (% used), ``disk`` (% of the state dir's disk),
``rss`` (the daemon's tree, MiB) and ``running`` (programs with a process), and per program ``cpu`` (% of
one core, whole tree) and ``rss`` (MiB, whole tree).

Stdlib only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import math
import os
import threading
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

from foss_supervisor.core.eventjournal import day_files
from foss_supervisor.core.events import ResourcesSampled

__all__ = [
    "BUCKET_S",
    "FINE_S",
    "HOST_SERIES",
    "JOURNAL_RANGES",
    "KEEP_DAYS",
    "MAX_ANSWERS",
    "MAX_LINE_BYTES",
    "MAX_POINTS",
    "PER_DAY",
    "READ_BUDGET_S",
    "JournalCharts",
    "Rollup",
]

MAX_POINTS = 300  # buckets per series in one chart
FINE_S = 288  # the rollup's bucket (s): 24 h / 300
PER_DAY = 86400 // FINE_S
#: the ranges read from the journal, and the width (s) of one of their buckets
BUCKET_S = {"24h": FINE_S, "7d": 7 * FINE_S}
JOURNAL_RANGES = tuple(BUCKET_S)
HOST_SERIES = ("cpu", "mem", "rss", "running", "disk")
PROGRAM_SERIES = ("cpu", "rss")
KEEP_DAYS = 8  # days of rollup kept (7 d and the bucket that straddles its start)
MAX_ANSWERS = 64  # answers kept for reuse (per range and program asked); forgotten all at once beyond
READ_BUDGET_S = 5.0  # one refresh reads the journal at most this long, then answers with what it has
MAX_LINE_BYTES = 16 * 2**20  # a sample of 2,000 programs is ~200 KB; a longer line is skipped, in pieces
_MARK = f'"type":"{ResourcesSampled.type}"'.encode()
_DEADLINE_EVERY = 256  # lines between two looks at the clock


def _finite(value: Any) -> float | None:
    """A JSON value as a finite float, or None (missing, null, text, NaN, infinite, boolean)."""
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is int:
        return float(value)
    return None


class Rollup:
    """Min, max, sum and count per :data:`FINE_S` bucket per series: ``{series: {day: array('d')}}``, each array
    ``[min, max, sum, n] * PER_DAY`` (day = days since the epoch, UTC)."""

    def __init__(self) -> None:
        self._days: dict[str, dict[int, array[float]]] = {}

    def add(self, at: float, values: dict[str, Any]) -> None:
        """Count each of ``values`` (series -> anything: only a finite number counts) in the bucket of ``at``
        (epoch s)."""
        if not math.isfinite(at):
            return
        day, i = divmod(int(at // FINE_S), PER_DAY)
        j = 4 * i
        for series, value in values.items():
            number = _finite(value)
            if number is None:
                continue
            days = self._days.setdefault(series, {})
            cells = days.get(day)
            if cells is None:
                cells = days[day] = array("d", (math.nan, math.nan, 0.0, 0.0) * PER_DAY)
            if cells[j + 3] == 0:
                cells[j] = cells[j + 1] = number
            elif number < cells[j]:
                cells[j] = number
            elif number > cells[j + 1]:
                cells[j + 1] = number
            cells[j + 2] += number
            cells[j + 3] += 1

    def series_names(self) -> list[str]:
        """Every series with at least one sample kept."""
        return list(self._days)

    def forget_before(self, day: int) -> None:
        """Drop the days before ``day`` (days since the epoch), and series left empty."""
        for name in list(self._days):
            days = self._days[name]
            for old in [d for d in days if d < day]:
                del days[old]
            if not days:
                del self._days[name]

    def buckets(self, series: str, first: int, count: int, k: int) -> tuple[list[Any], list[Any], list[Any]]:
        """``(mins, maxs, avgs)`` of ``count`` buckets of ``k`` fine buckets each, the first being bucket
        ``first`` of that width (fine buckets ``first * k`` to ``first * k + k - 1``); None where no sample fell."""
        days = self._days.get(series, {})
        mins: list[Any] = []
        maxs: list[Any] = []
        avgs: list[Any] = []
        for c in range(first, first + count):
            lo, hi, total, n = math.inf, -math.inf, 0.0, 0.0
            for fine in range(c * k, c * k + k):
                day, i = divmod(fine, PER_DAY)
                cells = days.get(day)
                if cells is None or cells[4 * i + 3] == 0:
                    continue
                j = 4 * i
                lo, hi = min(lo, cells[j]), max(hi, cells[j + 1])
                total += cells[j + 2]
                n += cells[j + 3]
            if n:
                mins.append(round(lo, 1))
                maxs.append(round(hi, 1))
                avgs.append(round(total / n, 1))
            else:
                mins.append(None)
                maxs.append(None)
                avgs.append(None)
        return mins, maxs, avgs


class JournalCharts:
    """The journal in ``directory`` (``<state_dir>/history``; None: no journal, every chart empty), rolled up;
    a refresh reads for at most ``budget_s``, and a line longer than ``max_line_bytes`` is skipped.

    :meth:`chart` is thread-safe and reads files: call it off the event loop (the view uses a thread)."""

    def __init__(
        self,
        directory: Path | None,
        *,
        clock: Callable[[], float] = time.time,
        budget_s: float = READ_BUDGET_S,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self.directory = directory
        self._max_line = max_line_bytes
        self._clock = clock
        self._budget_s = budget_s
        self._files: dict[Path, tuple[int, int]] = {}  # path -> (inode, bytes read)
        self._rollup = Rollup()
        self._lock = threading.Lock()
        self.complete = True  # the last refresh read every file to its end
        # answers while nothing new was read and the buckets did not move: (range, program) -> (when, answer)
        self._answers: dict[tuple[str, str | None], tuple[tuple[int, int], dict[str, Any]]] = {}

    def refresh(self) -> bool:
        """Read what the journal gained since the last refresh, for at most the budget; True when all of it."""
        with self._lock:
            self.complete = self._read()
            return self.complete

    def _read(self) -> bool:
        if self.directory is None:
            return True
        deadline = time.monotonic() + self._budget_s
        today = int(self._clock() // 86400)
        first = dt.date.fromordinal(dt.date(1970, 1, 1).toordinal() + today - KEEP_DAYS)
        self._rollup.forget_before(today - KEEP_DAYS)
        files = [path for day, path in day_files(self.directory) if day >= first]
        self._files = {p: self._files[p] for p in files if p in self._files}
        return all(self._read_file(path, deadline) for path in files)  # stops at the first cut short

    def _read_file(self, path: Path, deadline: float) -> bool:
        """Read ``path`` on from its offset (only whole lines); False when the deadline came first."""
        try:
            st = os.stat(path)
        except OSError:
            return True
        inode, offset = self._files.get(path, (st.st_ino, 0))
        if inode != st.st_ino or st.st_size < offset:  # another file under that name: read it anew
            offset = 0
        if st.st_size == offset:
            return True
        done = True
        with contextlib.suppress(OSError), path.open("rb") as f:
            f.seek(offset)
            for n in itertools.count():
                line = f.readline(self._max_line)
                if not line.endswith(b"\n") and len(line) < self._max_line:
                    break  # the end, or the writer's line in progress: read next time
                offset += len(line)  # a longer line goes by in pieces, none of them a JSON object
                if _MARK in line:
                    self._take(line)
                if n % _DEADLINE_EVERY == 0 and time.monotonic() > deadline:
                    done = False
                    break
        self._files[path] = (st.st_ino, offset)
        return done

    def _take(self, line: bytes) -> None:
        """One ``ResourcesSampled`` line into the rollup (a line that is no such object is skipped)."""
        try:
            event = json.loads(line)
        except ValueError:
            return
        if not isinstance(event, dict) or event.get("type") != ResourcesSampled.type:
            return
        at = _finite(event.get("at"))
        if at is None:
            return
        host = _part(event, "host", dict)
        values = {
            "cpu": host.get("cpu_percent"),
            "mem": host.get("memory_percent"),
            "disk": host.get("disk_percent"),
            "rss": _mib(_part(event, "daemon", dict).get("rss_bytes")),
        }
        running = 0
        for tree in _part(event, "programs", list):
            if not isinstance(tree, dict) or not isinstance(tree.get("name"), str):
                continue
            running += bool(tree.get("pid"))
            values[f"{tree['name']}\0cpu"] = tree.get("cpu_percent")
            values[f"{tree['name']}\0rss"] = _mib(tree.get("rss_bytes"))
        values["running"] = running
        self._rollup.add(at, values)

    def chart(self, range_: str, program: str | None = None) -> dict[str, Any]:
        """Refresh, then the figures of ``range_`` (one of :data:`JOURNAL_RANGES`, else KeyError).

        Shape: ``{"range", "bucket_s", "complete", "t": [bucket start, epoch s] * 300, "pt": the same,
        HOST: [avg], HOST_min: [min], HOST_max: [max] for each of :data:`HOST_SERIES`, "programs": {name:
        {"cpu": [avg], "rss": [avg]}}}``; with ``program``, only that program, with ``cpu_min``, ``cpu_max``,
        ``rss_min``, ``rss_max`` too. None where a bucket holds no sample; programs without any are left out.
        """
        width = BUCKET_S[range_]
        complete = self.refresh()
        k = width // FINE_S
        first = int(self._clock() // width) - MAX_POINTS + 1
        with self._lock:
            generation = (first, sum(offset for _, offset in self._files.values()))
            kept = self._answers.get((range_, program))
            if kept is not None and kept[0] == generation:
                return {**kept[1], "complete": complete}
            out: dict[str, Any] = {"range": range_, "bucket_s": width, "complete": complete}
            out["t"] = out["pt"] = [c * width for c in range(first, first + MAX_POINTS)]
            for name in HOST_SERIES:
                lo, hi, avg = self._rollup.buckets(name, first, MAX_POINTS, k)
                out.update({name: avg, f"{name}_min": lo, f"{name}_max": hi})
            names = sorted({s.split("\0")[0] for s in self._rollup.series_names() if "\0" in s})
            out["programs"] = {}
            for name in names if program is None else [n for n in names if n == program]:
                entry: dict[str, list[Any]] = {}
                for series in PROGRAM_SERIES:
                    lo, hi, avg = self._rollup.buckets(f"{name}\0{series}", first, MAX_POINTS, k)
                    entry[series] = avg
                    if program is not None:
                        entry.update({f"{series}_min": lo, f"{series}_max": hi})
                if any(v is not None for v in entry["cpu"]) or any(v is not None for v in entry["rss"]):
                    out["programs"][name] = entry
            if len(self._answers) >= MAX_ANSWERS:
                self._answers.clear()
            self._answers[(range_, program)] = (generation, out)
        return out


def _part(event: dict[str, Any], key: str, kind: type[Any]) -> Any:
    """``event[key]`` when it is of ``kind`` (dict or list), else an empty one (a cut line reads as nothing)."""
    value = event.get(key)
    return value if isinstance(value, kind) else kind()


def _mib(value: Any) -> float | None:
    number = _finite(value)
    return None if number is None else number / 2**20
