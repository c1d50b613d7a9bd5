"""Row hashes of snapshot files, kept beside them so a keyed diff never hashes every column again (issue 18).

A diff pairs the rows of a table that has a key by two 64-bit hashes per row, DuckDB's ``hash`` of the
key's columns and of the other columns (diff.py); at 10M rows computing them was most of a diff. So
each data file ``<file>`` of a table with a key gets ``_hashes/<file>``, written once with the data file:
zstd Parquet of two UBIGINT columns, ``k`` (``hash`` of the key's columns, in the key's order) and ``h``
(``hash`` of every other column, in the file's order; ``0`` when there is none), one row per row of the
data file, computed from the data file as DuckDB reads it back (so from the very values a diff reads). It
is hard-linked with its data file into later snapshots like the statistics file. The data file itself is
untouched: a restore, the statistics, the strict comparison of unchanged runs (engine/snapshotsame.py) and the
published files never see the hashes.

The manifest records per file ``hashes: {bytes, footer_sha256, key, duckdb}``: the file's size and footer
digest (checked as the data file's are, snapshotfiles.py), the key hashed, and the DuckDB version
that hashed it. A diff reads a side's stored hashes (:func:`stored_hashes`) only when every file of it has
them for the key it pairs by and the columns are the same on both sides, hashed by the running DuckDB
(``hash`` is not promised to stay the same across versions); otherwise it computes them (a snapshot from
before they were kept, a retyped or added column, another key), as before. Cost: 16 bytes a row that
zstd cannot shrink (hashes look random), and one read of the new file at snapshot time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb

from foss_supervisor.pipeline.errors import SnapshotError
from foss_supervisor.pipeline.worker.export import EXPORT_FORMATS
from foss_supervisor.pipeline.worker.snapshotfiles import footer_sha256
from foss_supervisor.pipeline.worker.snapshotstats import HASHES, parquet_list, quoted

__all__ = ["HASHES", "hashes_file", "link_or_write_hashes", "row_hashes_sql", "stored_hashes", "usable", "write_hashes"]


def hashes_file(data_file: Path) -> Path:
    """Where the row hashes of ``data_file`` (a snapshot's file) are kept."""
    return data_file.parent / HASHES / data_file.name


def row_hashes_sql(key: Sequence[str], columns: Sequence[str], source: str, names: tuple[str, str] = ("k", "h")) -> str:
    """``SELECT <hash of key> AS k, <hash of the other columns> AS h FROM source`` (``names`` the two
    columns' names): the two UBIGINT hashes of each row of ``source`` whose columns are ``columns`` (in
    order), ``h`` 0 when all are the key's."""
    others = [quoted(c) for c in columns if c not in key]
    row = f"hash({', '.join(others)})" if others else "0::UBIGINT"
    keys = ", ".join(quoted(k) for k in key)
    return f"SELECT hash({keys}) AS {names[0]}, {row} AS {names[1]} FROM {source}"  # noqa: S608 (quoted names)


def write_hashes(cursor: Any, data_file: Path, key: Sequence[str] | None) -> dict[str, Any] | None:
    """Write ``data_file``'s row hashes for ``key`` (see the module docstring) and return the manifest's
    ``hashes`` entry; None (nothing written) without a key or when the file lacks a column of it."""
    if not key:
        return None
    source = parquet_list([data_file])
    columns = [str(r[0]) for r in cursor.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]  # noqa: S608
    if not set(key) <= set(columns):
        return None
    target = hashes_file(data_file)
    target.parent.mkdir(exist_ok=True)
    literal = "'" + str(target).replace("'", "''") + "'"
    cursor.execute(f"COPY ({row_hashes_sql(key, columns, source)}) TO {literal} ({EXPORT_FORMATS['parquet']})")
    return {
        "bytes": target.stat().st_size,
        "footer_sha256": footer_sha256(target),
        "key": list(key),
        "duckdb": duckdb.__version__,
    }


def usable(entry: Any, key: Sequence[str]) -> bool:
    """Whether a file's manifest ``hashes`` entry is for ``key`` and hashed by the running DuckDB."""
    return isinstance(entry, Mapping) and entry.get("key") == list(key) and entry.get("duckdb") == duckdb.__version__


def stored_hashes(table: str, files: Sequence[Mapping[str, Any]], key: Sequence[str]) -> str | None:
    """The SQL source (``read_parquet([...])`` of columns ``k``, ``h``) of the stored row hashes of a table's
    ``files`` (its manifest entries, ``file`` absolute, already passed snapshotfiles.checked_files), or
    None when one of them has none usable for ``key`` (:func:`usable`). Raises SnapshotError when a hashes
    file the manifest records is missing or not the one it recorded (size, footer digest)."""
    if not files or not all(usable(f.get("hashes"), key) for f in files):
        return None
    paths = []
    for f in files:
        path = hashes_file(Path(str(f["file"])))
        try:
            same = path.stat().st_size == f["hashes"]["bytes"] and footer_sha256(path) == f["hashes"]["footer_sha256"]
        except (OSError, ValueError):
            same = False
        if not same:
            raise SnapshotError(
                f"the snapshot of run {path.parent.parent.name} cannot be trusted: table {table}, file"
                f" {path.name}: its row hashes file is missing or not the one its manifest recorded"
            )
        paths.append(path)
    return parquet_list(paths)


def link_or_write_hashes(
    cursor: Any, src: Mapping[str, Any], dest: Path, key: Sequence[str] | None
) -> dict[str, Any] | None:
    """The ``hashes`` entry of ``dest``, a data file hard-linked from ``src`` (the previous snapshot's manifest
    entry of it, ``file`` absolute): its hashes file hard-linked too when it is usable for ``key`` and the one
    recorded, else written anew (:func:`write_hashes`). Raises duckdb.Error, OSError."""
    try:
        stored = stored_hashes(str(dest.name), [src], key) if key else None
    except SnapshotError:
        stored = None
    if stored is None:
        return write_hashes(cursor, dest, key)
    target = hashes_file(dest)
    target.parent.mkdir(exist_ok=True)
    try:
        os.link(hashes_file(Path(str(src["file"]))), target)
    except OSError:
        return write_hashes(cursor, dest, key)
    return dict(src["hashes"])
