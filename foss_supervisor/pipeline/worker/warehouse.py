"""Opening the warehouse in the worker: DuckDB locked down before any step or query touches it (worker side).

UTC; no file access outside the allowed directories (``enable_external_access=false`` with
``allowed_directories``), the configuration frozen (``lock_configuration``) so no SQL can undo either;
no extension installed or loaded behind the operator's back; the memory limit and the spill folder and its
bound. See ``sandbox.py`` for what steps may name on top of this, and ``query.py`` for queries.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import duckdb

__all__ = ["open_database"]


def open_database(
    db_path: Path,
    *,
    allow_dirs: list[Path],
    memory_limit: int | None = None,
    threads: int | None = None,
    temp_dir: Path | None = None,
    max_temp_size: int | None = None,
) -> Any:
    """Open the warehouse and lock it down: UTC, no file access outside ``allow_dirs``, config frozen;
    ``memory_limit`` bytes, spilling to ``temp_dir`` (emptied first: it is this worker's alone) up to
    ``max_temp_size`` bytes."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(
        str(db_path), config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    con.execute("SET GLOBAL TimeZone = 'UTC'")
    if memory_limit:
        con.execute("SET GLOBAL memory_limit = ?", [f"{int(memory_limit)} bytes"])
    if temp_dir is not None:
        temp_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for leftover in temp_dir.iterdir():  # spill files of a worker that was killed
            with contextlib.suppress(OSError):
                leftover.unlink()
        con.execute("SET GLOBAL temp_directory = ?", [str(temp_dir)])
    if max_temp_size is not None:  # 0: nothing spills
        con.execute("SET GLOBAL max_temp_directory_size = ?", [f"{int(max_temp_size)} bytes"])
    if threads:
        con.execute(f"SET GLOBAL threads = {int(threads)}")
    dirs = [str(d.resolve()).rstrip("/") + "/" for d in allow_dirs]
    if dirs:
        con.execute("SET GLOBAL allowed_directories = ?", [dirs])
    con.execute("SET GLOBAL enable_external_access = false")
    con.execute("SET GLOBAL lock_configuration = true")
    return con
