"""A landing file's content hash and whether DuckDB's line reader can take it as is (:func:`scan_file`).

Shared by ``discover`` (ledger.py: registers a content once), ``ingest`` (ingest.py: reads it, and tells a
file that changed under it) and ``release`` (hold.py: tells a held file that changed or went). It lives
here, below the three, so none of them imports another to reach it (ingest imports the ledger, the ledger
imports hold). Stdlib only: the daemon imports hold.py and the ledger too.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
from pathlib import Path
from typing import BinaryIO

__all__ = ["LINE_DELIM", "FileScan", "open_raw", "scan_file"]

#: a delimiter no text line contains, so DuckDB's CSV reader hands back each whole line as one column
LINE_DELIM = "\x01\x02\x03\x04"
_CHUNK = 1 << 20


class FileScan:
    """Content hash of a file plus whether DuckDB's line reader can take it as is."""

    __slots__ = ("python_reader_reason", "sha256", "size")

    def __init__(self, sha256: str, size: int, python_reader_reason: str | None) -> None:
        self.sha256 = sha256
        self.size = size
        self.python_reader_reason = python_reader_reason


def open_raw(path: Path) -> BinaryIO:
    """The file's bytes, gunzipped on the fly for ``*.gz`` (DuckDB's readers do the same by extension)."""
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def scan_file(path: Path) -> FileScan:
    """Hash a file's content in chunks (uncompressed, so ``a.csv`` and ``a.csv.gz`` are one content) and note
    anything that would make DuckDB's line reader renumber lines."""
    h = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    reason: str | None = None
    size = 0
    tail = b""
    with open_raw(path) as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
            if reason is None:
                window = tail + chunk
                if b"\r" in chunk:
                    reason = "carriage returns"
                elif b"\x00" in chunk:
                    reason = "NUL bytes"
                elif LINE_DELIM.encode() in window:
                    reason = "control characters"
                else:
                    try:
                        decoder.decode(chunk)
                    except UnicodeDecodeError:
                        reason = "invalid UTF-8"
                tail = chunk[-4:]
    if reason is None:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            reason = "invalid UTF-8"
    return FileScan(h.hexdigest(), size, reason)
