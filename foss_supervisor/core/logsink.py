"""Program output to size-rotated log files, in chunks, so no child and no daemon ever blocks.

Output arrives in chunks as the loop reads the pipes (not lines): a megabyte without a newline is
written as it comes and memory stays bounded. Rotation is the standard library's ``RotatingFileHandler``.

One writer per file: the daemon writes every program's log, and programs (or replicas) that name the same
``log.file`` share one :class:`LogSink` (:meth:`LogSink.shared`), so the file is rotated once, by one
handler, and every program keeps writing the live file (two handlers would each rotate and then write to a
different rotated file). While a sink is shared, each stream writes whole lines (a partial line waits for
its newline, up to :data:`MAX_PENDING` characters, or the stream's end), so lines never interleave mid-line.
The loader refuses programs that share a file with different ``max_bytes``/``backups``.
A write that fails (full disk) drops that chunk and is counted in :class:`WriteFailures`, which reports
it once per interval and shows it in ``status``; the next chunk that is written clears it.

The writes themselves are made by the daemon's file-writer thread (:mod:`foss_supervisor.base.filewriter`),
never on the loop: a hung disk stalls the files, not supervision. A chunk the writer has no room for (the
disk is that far behind) is dropped and counted the same way.
"""

from __future__ import annotations

import codecs
import functools
import logging
import re
import time
import weakref
from pathlib import Path

from foss_supervisor.base.filewriter import WRITER
from foss_supervisor.base.writefailures import CheckedFileHandler, WriteFailures

__all__ = ["LogSink", "OutputTail", "StreamWriter"]

_LINE = re.compile(r"[^\n]*\n|[^\n]+")
MAX_PENDING = 64 * 1024  # characters of a partial line held back while a sink is shared
_OPEN: weakref.WeakValueDictionary[Path, LogSink] = weakref.WeakValueDictionary()


class LogSink:
    """One rotating file that any number of streams append to; failed writes go to ``failures``."""

    def __init__(
        self, path: Path, max_bytes: int, backups: int, timestamps: bool, failures: WriteFailures | None = None
    ) -> None:
        self.path = path
        self.timestamps = timestamps
        self.owners: set[str] = set()
        self.failures = failures or WriteFailures()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # counted like any failed write; the file is opened at the first chunk
            self.failures.failed(path, "program_log", exc)
        self._handler = CheckedFileHandler(
            path, kind="program_log", failures=self.failures, max_bytes=max_bytes, backups=backups
        )
        self._handler.terminator = ""
        self._handler.setFormatter(logging.Formatter("%(message)s"))

    @classmethod
    def shared(
        cls, path: Path, max_bytes: int, backups: int, timestamps: bool, failures: WriteFailures | None, owner: str
    ) -> LogSink:
        """The one sink of ``path`` (made at the first call), with ``owner`` (a program name) among its writers."""
        sink = _OPEN.get(path)
        if sink is None:
            sink = _OPEN[path] = cls(path, max_bytes, backups, timestamps, failures)
        sink.owners.add(owner)
        return sink

    @property
    def is_shared(self) -> bool:
        """More than one program writes here: streams then write whole lines."""
        return len(self.owners) > 1

    def write(self, text: str) -> None:
        """Append ``text`` (by the writer thread, in order); dropped and counted when the writer is full."""
        if text and not WRITER.submit(functools.partial(self._emit, text), len(text)):
            behind = BlockingIOError(f"the disk is behind: {WRITER.queued_bytes} bytes of output wait for it")
            self.failures.failed(self.path, "program_log", behind, len(text))

    def _emit(self, text: str) -> None:
        self._handler.emit(logging.makeLogRecord({"msg": text, "args": None}))

    def close(self) -> None:
        """Close the file once what was written before is on it."""
        WRITER.submit(self._handler.close, 0)


class OutputTail:
    """The last :data:`TAIL_CHARS` characters a spawn printed (its streams in arrival order), in memory: what
    an exit event quotes, without reading the log file on the loop."""

    def __init__(self) -> None:
        self._text = ""

    def add(self, text: str) -> None:
        self._text = (self._text + text)[-TAIL_CHARS:]

    def lines(self, count: int = 2) -> tuple[str, ...]:
        """The last ``count`` lines that hold more than blanks, each stripped and cut at 200 characters."""
        kept = [line.strip()[:200] for line in self._text.splitlines() if line.strip()]
        return tuple(kept[-count:]) if count > 0 else ()


TAIL_CHARS = 1024


class StreamWriter:
    """Decodes one stream's bytes incrementally and stamps the start of each line when asked; ``tail`` (when
    given) hears the decoded text too."""

    def __init__(self, sink: LogSink, label: str, tail: OutputTail | None = None) -> None:
        self.sink = sink
        self.label = label
        self.tail = tail
        # bytes that are not UTF-8 are kept as \xNN escapes, not replaced by U+FFFD (they may be the clue)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="backslashreplace")
        self._at_line_start = True
        self._pending = ""

    def feed(self, data: bytes, final: bool = False) -> None:
        decoded = self._decoder.decode(data, final)
        if self.tail is not None and decoded:
            self.tail.add(decoded)
        text = self._pending + decoded
        self._pending = ""
        if self.sink.is_shared and not final:
            cut = text.rfind("\n") + 1
            if len(text) - cut < MAX_PENDING:
                text, self._pending = text[:cut], text[cut:]
        if not text:
            return
        if self.sink.timestamps:
            text = self._stamp(text)
        self.sink.write(text)

    def _stamp(self, text: str) -> str:
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z {self.label}"
        out = []
        for piece in _LINE.findall(text):
            if self._at_line_start:
                out.append(stamp)
            out.append(piece)
            self._at_line_start = piece.endswith("\n")
        return "".join(out)
