"""The one gate every reader of a snapshot's files passes (restore, diff, and the next snapshot that links them):
the files on disk must be the files the manifest describes, or the snapshot is refused by run, table and file.

A snapshot's files are plain files an operator (or a faulty tool) can replace, rewrite in place, truncate or
append to, and its statistics files can be edited; a reader that trusted them would restore or report other
rows than the run had, without an error. So before any of them is read (:func:`checked_files`), each data file
must be a regular file (not a symlink) inside the snapshot folder whose size, Parquet footer (SHA-256 of its
bytes: row groups, row counts, schema, column statistics), footer row count and column names are those the
manifest recorded when the snapshot was written, and its statistics file must have the SHA-256 recorded. A
snapshot written before the digests were kept is checked by size, row count and column names only.

The digests cost only the footer and the small statistics file, never a scan of the data: a diff of two
10M-row snapshots reads a few kB more. What they do not catch is a rewrite that keeps the size and the footer
byte for byte (values swapped inside a page with equal statistics): that takes intent, not an accident.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import duckdb

from foss_supervisor.pipeline.errors import SnapshotError
from foss_supervisor.pipeline.worker.snapshotstats import parquet_list, stats_file

__all__ = ["CheckedFiles", "checked_files", "file_sha256", "footer_sha256"]

_MAGIC = b"PAR1"
#: the largest Parquet footer read to digest it (DuckDB's footers of 10M-row files are some 100 kB)
_MAX_FOOTER = 64 * 1024 * 1024


class CheckedFiles(NamedTuple):
    """A table's files as checked: absolute paths in order, and whether each has a statistics file whose
    digest the manifest recorded and matched (False: a snapshot from before digests; the diff then scans)."""

    paths: list[Path]
    stats: bool


def footer_sha256(path: Path) -> str:
    """SHA-256 (hex) of the Parquet footer of ``path``: its last ``8 + footer length`` bytes. Raises ValueError
    (not a Parquet file: too short, no magic bytes, a footer longer than the file) or OSError."""
    with path.open("rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size < 12:
            raise ValueError(f"{size} bytes are no Parquet file")
        fh.seek(size - 8)
        tail = fh.read(8)
        length = int.from_bytes(tail[:4], "little")
        if tail[4:] != _MAGIC or length > min(size - 12, _MAX_FOOTER):
            raise ValueError("no Parquet footer at its end")
        fh.seek(size - 8 - length)
        return hashlib.sha256(fh.read(length) + tail).hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of the whole file ``path`` (a statistics file: one row, a few kB). Raises OSError."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def checked_files(cursor: Any, table: str, entry: Mapping[str, Any], *, root: Path) -> CheckedFiles:
    """``entry``'s files (a manifest table entry: ``files: [{file (absolute), rows, bytes, footer_sha256?,
    stats_sha256?}], schema: [{name, type}]``), each checked against what the manifest recorded for it (see the
    module docstring), before anything reads them. ``root`` is the folder of every snapshot.

    Raises SnapshotError naming the run (the file's folder), ``table``, the file and what differs. Reads only
    footers (DuckDB) and statistics files.
    """
    files = entry.get("files")
    if not isinstance(files, list) or not files:
        raise SnapshotError(f"the snapshot of {table} lists no files")
    names = [str(c.get("name")) for c in entry.get("schema") or () if isinstance(c, Mapping)]
    paths: list[Path] = []
    stats = True
    for f in files:
        path = Path(str(f.get("file")))
        run = path.parent.name

        def refuse(why: str, run: str = run, path: Path = path) -> SnapshotError:
            return SnapshotError(f"the snapshot of run {run} cannot be trusted: table {table}, file {path.name}: {why}")

        try:
            info = path.lstat()
        except OSError as exc:
            raise refuse(f"unreadable ({exc.strerror or exc})") from None
        if not stat.S_ISREG(info.st_mode) or not path.resolve().is_relative_to(root.resolve()):
            raise refuse(f"not a plain file inside {root}")
        if info.st_size != f.get("bytes"):
            raise refuse(f"{info.st_size} bytes, its manifest recorded {f.get('bytes')}")
        try:
            if f.get("footer_sha256") and footer_sha256(path) != f["footer_sha256"]:
                raise refuse("its Parquet footer is not the one its manifest recorded (rewritten or replaced)")
            rows = int(cursor.execute(f"SELECT count(*) FROM {parquet_list([path])}").fetchone()[0])  # noqa: S608
            described = cursor.execute(f"DESCRIBE SELECT * FROM {parquet_list([path])}").fetchall()  # noqa: S608
        except (OSError, ValueError, duckdb.Error) as exc:
            raise refuse(f"not a readable Parquet file ({str(exc).splitlines()[0][:200]})") from None
        if rows != f.get("rows"):
            raise refuse(f"{rows} rows, its manifest recorded {f.get('rows')}")
        if names and [str(r[0]) for r in described] != names:
            raise refuse("its columns are not the ones its manifest recorded")
        if f.get("stats_sha256"):
            try:
                same = file_sha256(stats_file(path)) == f["stats_sha256"]
            except OSError:
                same = False
            if not same:
                raise refuse("its statistics file is missing or not the one its manifest recorded (edited)")
        else:
            stats = False
        paths.append(path)
    return CheckedFiles(paths, stats)
