"""The DuckDB worker's command line (``python -m foss_supervisor.pipeline.worker.server ...``), as the daemon's
worker host writes it (workerservice.py): the warehouse file, the folders it may read and write, its bounds;
and the folders it makes of them (:func:`worker_folders`) before the warehouse is opened."""

from __future__ import annotations

import argparse
from pathlib import Path

from foss_supervisor.pipeline.engine.snapshots import snapshot_root
from foss_supervisor.pipeline.worker.supervision import ingest_dir_for

__all__ = ["worker_arguments", "worker_folders"]


def worker_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The parsed arguments (``argv``: None reads ``sys.argv``); exits with a usage error for bad ones."""
    parser = argparse.ArgumentParser(prog="python -m foss_supervisor.pipeline.worker.server")
    parser.add_argument("--db", required=True, type=Path)
    parser.add_argument("--allow-dir", action="append", default=[], type=Path)
    parser.add_argument("--memory-limit", type=int, help="DuckDB's memory_limit (bytes)")
    parser.add_argument("--os-memory-limit", type=int, help="RLIMIT_DATA the worker sets on itself (bytes)")
    parser.add_argument("--temp-dir", type=Path, help="where DuckDB spills (emptied at start)")
    parser.add_argument("--max-temp-size", type=int, help="DuckDB's max_temp_directory_size (bytes)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--export-dir", type=Path, help="where exports are written (also an allowed directory)")
    parser.add_argument("--publish-dir", type=Path, help="where published tables are written (also allowed)")
    parser.add_argument("--history-dir", type=Path, help="the daemon's event journal: the supervision schema")
    parser.add_argument("--history-days", type=int, default=30, help="days of it the supervision schema keeps")
    return parser.parse_args(argv)


def worker_folders(args: argparse.Namespace) -> tuple[list[Path], Path | None]:
    """The directories the warehouse may read and write (``--allow-dir``, the export folder, the publish folder
    and its run snapshots beside it, the journal's ingest folder), each made if missing (the export folder
    0700); and that ingest folder (None without a journal)."""
    allow = list(args.allow_dir)
    if args.export_dir is not None:
        args.export_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        allow.append(args.export_dir)
    if args.publish_dir is not None:
        args.publish_dir.mkdir(parents=True, exist_ok=True)
        allow += [args.publish_dir, snapshot_root(args.publish_dir)]  # run snapshots live beside it
        allow[-1].mkdir(parents=True, exist_ok=True)
    ingest_dir = ingest_dir_for(args.history_dir, args.temp_dir or args.db.parent)
    allow += [ingest_dir] if ingest_dir is not None else []
    return allow, ingest_dir
