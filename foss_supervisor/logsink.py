"""Program output to size-rotated log files, in chunks, so no child and no daemon ever blocks.

Output arrives in chunks as the loop reads the pipes (not lines): a megabyte without a newline is
written as it comes and memory stays bounded. Rotation is the standard library's ``RotatingFileHandler``.
"""

from __future__ import annotations

import codecs
import logging
import logging.handlers
import re
import time
from pathlib import Path

__all__ = ["LogSink", "StreamWriter"]

_LINE = re.compile(r"[^\n]*\n|[^\n]+")


class LogSink:
    """One rotating file that any number of streams append to."""

    def __init__(self, path: Path, max_bytes: int, backups: int, timestamps: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.timestamps = timestamps
        self._handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
        self._handler.terminator = ""
        self._handler.setFormatter(logging.Formatter("%(message)s"))

    def write(self, text: str) -> None:
        if text:
            self._handler.emit(logging.makeLogRecord({"msg": text, "args": None}))

    def close(self) -> None:
        self._handler.close()


class StreamWriter:
    """Decodes one stream's bytes incrementally and stamps the start of each line when asked."""

    def __init__(self, sink: LogSink, label: str) -> None:
        self.sink = sink
        self.label = label
        # bytes that are not UTF-8 are kept as \xNN escapes, not replaced by U+FFFD (they may be the clue)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="backslashreplace")
        self._at_line_start = True

    def feed(self, data: bytes, final: bool = False) -> None:
        text = self._decoder.decode(data, final)
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
