"""Reading logs by name: programs' output files, the daemon's own log and the pipeline's share of it.

Used by the ``logs`` command in the daemon and by the CLI itself when the daemon is down (the
files are on disk either way), so it is stdlib only. Names a selector can give (``all``, groups,
globs) select programs; two more names are always there:

- ``daemon``: the daemon's structured log (``<state_dir>/foss-supervisor.log``, JSON lines);
- ``pipeline``: the lines of that log written by the pipeline runner and its worker process;
- ``dashboard``: the dashboard process's own log (``<state_dir>/logs/@dashboard.log``: JSON lines, and the
  stacks Python's faulthandler writes when its watchdog aborts it).

Bytes that are not UTF-8 are shown as ``\\xNN`` escapes, never replaced.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from foss_supervisor.base.jsontext import parse_json
from foss_supervisor.core.selectors import resolve

__all__ = [
    "DAEMON",
    "DASHBOARD",
    "PIPELINE",
    "SEARCH_SCAN_BYTES",
    "Follower",
    "LineSource",
    "LogSource",
    "dashboard_log",
    "follow",
    "search",
    "select_sources",
    "tail",
]

DAEMON = "daemon"
PIPELINE = "pipeline"
DASHBOARD = "dashboard"
_PIPELINE_LOGGERS = ("foss_supervisor.pipeline",)  # the runner and the service (foss_supervisor.pipelines)
_SCAN_LIMIT_BYTES = 16 * 1024 * 1024  # how far back a filtered tail reads at most
SEARCH_SCAN_BYTES = 16 * 1024 * 1024  # how far back a search reads each log at most


@dataclass(frozen=True, slots=True)
class LogSource:
    """One named log: its file and, for ``pipeline``, the logger-name prefix its lines carry."""

    name: str
    file: Path
    logger_prefix: tuple[str, ...] = ()

    def keeps(self, line: str) -> bool:
        if not self.logger_prefix:
            return True
        try:
            record = parse_json(line)
        except ValueError:
            return False
        return isinstance(record, dict) and str(record.get("logger", "")).startswith(self.logger_prefix)


def dashboard_log(state_dir: Path) -> Path:
    """Where the dashboard process (the service ``@dashboard``) writes its output."""
    return state_dir / "logs" / "@dashboard.log"


def select_sources(
    selectors: Sequence[str],
    program_logs: Mapping[str, Path],
    state_dir: Path,
    replica_sets: Mapping[str, Sequence[str]],
    groups: Mapping[str, Sequence[str]],
) -> list[LogSource]:
    """The sources ``selectors`` name (programs in config order, then daemon, pipeline and dashboard).

    ``program_logs``: program name -> its log file. Raises CommandError listing the known names
    when a selector selects nothing.
    """
    daemon_log = state_dir / "foss-supervisor.log"
    specials = {
        DAEMON: LogSource(DAEMON, daemon_log),
        PIPELINE: LogSource(PIPELINE, daemon_log, _PIPELINE_LOGGERS),
        DASHBOARD: LogSource(DASHBOARD, dashboard_log(state_dir)),
    }
    names = resolve(selectors, list(program_logs), replica_sets, groups, extra=list(specials))
    return [specials[n] if n in specials else LogSource(n, program_logs[n]) for n in names]


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "backslashreplace")


def _scan(source: LogSource, scan_bytes: int) -> list[str]:
    """The whole lines ``source`` keeps among the last ``scan_bytes`` of its file ([] when there is none)."""
    try:
        f = source.file.open("rb")
    except FileNotFoundError:
        return []
    with f:
        pos = max(0, f.seek(0, 2) - scan_bytes)
        f.seek(pos)
        data = f.read(scan_bytes)
    lines = _decode(data).splitlines()[1 if pos > 0 else 0 :]  # the first line is cut when not at the start
    return [line for line in lines if source.keeps(line)]


def tail(source: LogSource, count: int, block: int = 64 * 1024) -> list[str]:
    """The last ``count`` lines of a source (reading backwards, so a big file costs little)."""
    if count <= 0:
        return []
    if source.logger_prefix:  # a filtered view: its lines may be anywhere in the last megabytes
        return _scan(source, _SCAN_LIMIT_BYTES)[-count:]
    try:
        f = source.file.open("rb")
    except FileNotFoundError:
        return []
    with f:
        pos = f.seek(0, 2)
        data = b""
        while pos > 0 and data.count(b"\n") <= count:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
    return _decode(data).splitlines()[1 if pos > 0 else 0 :][-count:]  # the first line is cut when not at the start


Redact = Callable[[Iterable[str]], Iterable[str]]


def search(source: LogSource, text: str, count: int, redact: Redact, scan_bytes: int = SEARCH_SCAN_BYTES) -> list[str]:
    """The last ``count`` lines of ``source`` holding ``text`` (case-insensitive, as plain text: no pattern,
    so no input can make the scan slow), among the last ``scan_bytes`` of the file.

    Lines are redacted (``redact``) before they are matched: a search cannot find a secret that reading
    would not show.
    """
    if count <= 0:
        return []
    lines = _scan(source, scan_bytes)
    needle = text.casefold()
    kept: deque[str] = deque(maxlen=count)
    kept.extend(line for line in redact(lines) if needle in line.casefold())
    return list(kept)


class LineSource(Protocol):
    """Something :func:`follow` polls: a name and the new complete lines since the last call."""

    @property
    def name(self) -> str: ...

    def lines(self) -> list[str]: ...

    def close(self) -> None: ...


class Follower:
    """``tail -F`` of one source's file: new complete lines, reopened when the file is rotated or appears.

    ``redact`` (a :meth:`~foss_supervisor.base.redact.Redactor.lines`) is what the lines pass before they
    are returned: the CLI reads files itself only when the daemon is down, with a redactor that learned
    the config (with the daemon up it follows through ``log_read``, redacted by the daemon).
    """

    def __init__(self, source: LogSource, redact: Redact) -> None:
        self.source = source
        self._redact = redact
        self.f: IO[bytes] | None = None
        self.partial = b""
        self._open(at_end=True)

    def _open(self, at_end: bool) -> None:
        try:
            self.f = self.source.file.open("rb")
        except FileNotFoundError:
            self.f = None
            return
        if at_end:
            self.f.seek(0, 2)

    def lines(self) -> list[str]:
        if self.f is None:
            self._open(at_end=False)
            if self.f is None:
                return []
        chunk = self.f.read(1024 * 1024)
        if not chunk:
            try:
                rotated = os.stat(self.source.file).st_ino != os.fstat(self.f.fileno()).st_ino
            except FileNotFoundError:
                rotated = False
            if rotated:
                self.f.close()
                self._open(at_end=False)
            return []
        data = self.partial + chunk
        *complete, self.partial = data.split(b"\n")
        return list(self._redact(text for raw in complete if self.source.keeps(text := _decode(raw))))

    @property
    def name(self) -> str:
        return self.source.name

    def close(self) -> None:
        if self.f is not None:
            self.f.close()


def follow(
    followers: Sequence[LineSource],
    write: Callable[[str], object] | None = None,
    stop: Callable[[], bool] = lambda: False,
    poll_s: float = 0.2,
    contains: str = "",
) -> None:
    """Print the lines each follower gives as they come, prefixed ``name | `` when more than one; with
    ``contains``, only those holding that text (case-insensitive, as :func:`search` matches).

    Runs until ``stop()`` is true or KeyboardInterrupt; polls a few times a second (a human is reading);
    closes the followers.
    """
    write = write or sys.stdout.write
    needle = contains.casefold()
    width = max((len(f.name) for f in followers), default=0)
    prefix = len(followers) > 1
    try:
        while not stop():
            quiet = True
            for f in followers:
                for line in f.lines():
                    quiet = False
                    if needle and needle not in line.casefold():
                        continue
                    write(f"{f.name.ljust(width)} | {line}\n" if prefix else f"{line}\n")
            if quiet:
                sys.stdout.flush()
                time.sleep(poll_s)
    except KeyboardInterrupt:
        pass
    finally:
        for f in followers:
            f.close()
