"""The log commands: ``logs`` (the last lines of programs' and the daemon's logs) and ``log_read`` (a
byte range of one log, for followers and the dashboard's text download).

These are the only readers of log bytes that leave the daemon, and both pass their lines through
:meth:`~foss_supervisor.base.redact.Redactor.lines` (log text spans lines: a private key block is
redacted whole, which the per-string redaction of every reply cannot see)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from foss_supervisor.base.filewriter import WRITER
from foss_supervisor.base.jsonable import dataclass_to_json
from foss_supervisor.commands.registry import CommandContext, Limit, command
from foss_supervisor.core.logview import DAEMON, PIPELINE, LogSource, search, select_sources, tail
from foss_supervisor.errors import CommandError

__all__ = ["LOG_SOURCES", "MAX_SEARCH_CHARS"]

MAX_SEARCH_CHARS = 256
# a reader first waits (this long at most: a hung disk) for the file-writer thread to write what programs
# printed before the request, so that what the daemon has received is what it shows
READ_YOUR_WRITES_S = 1.0


@command("logs", names=(list, ["all"]), lines=(int, 100, Limit(0, 100_000)), contains=(str, ""))
async def logs(ctx: CommandContext, names: list[str], lines: int, contains: str) -> dict[str, Any]:
    """The last lines of the logs that names select: programs (any selector), ``daemon`` or ``pipeline``.

    ``contains`` (at most 256 characters): only the last lines holding that text (case-insensitive, plain
    text), searched in the last 16 MiB of each log, after redaction. Returns ``{"sources": [{"name",
    "file", "logger_prefix"}], "lines": {name: [line, ...]}}``; the files are what ``logs -f`` follows.
    Non-UTF-8 bytes come back as ``\\xNN`` escapes.
    """
    if len(contains) > MAX_SEARCH_CHARS:
        raise CommandError(f"contains: at most {MAX_SEARCH_CHARS} characters")
    sup = ctx.supervisor
    program_logs = {name: proc.log_path for name, proc in sup.processes.items()}
    sources = select_sources(names, program_logs, ctx.config.state_dir, ctx.config.replica_sets, ctx.config.groups)

    def read(source: LogSource) -> list[str]:
        if contains:
            return search(source, contains, lines, ctx.redactor.lines)
        return list(ctx.redactor.lines(tail(source, lines)))

    def read_all() -> dict[str, list[str]]:
        WRITER.flush(READ_YOUR_WRITES_S)
        return {s.name: read(s) for s in sources}

    tails = await asyncio.to_thread(read_all)
    return {"sources": [dataclass_to_json(s) for s in sources], "lines": tails}


LOG_SOURCES = (DAEMON, PIPELINE)


def _log_source(ctx: CommandContext, name: str) -> LogSource:
    """One log by its exact name: a program, ``daemon`` or ``pipeline`` (CommandError if unknown)."""
    program_logs = {n: proc.log_path for n, proc in ctx.supervisor.processes.items()}
    if name not in program_logs and name not in LOG_SOURCES:
        raise CommandError(f"no such log: {name!r}; known: {', '.join([*program_logs, *LOG_SOURCES])}")
    [source] = select_sources([name], program_logs, ctx.config.state_dir, {}, {})
    return source


def _read_log(path: Path, offset: int, max_bytes: int) -> tuple[int, int, bytes, bool]:
    """(start, size, bytes) of whole lines from ``offset`` (-1: the last ``max_bytes``); rotated when it shrank.
    First lets the file-writer thread write what programs printed so far (bounded)."""
    WRITER.flush(READ_YOUR_WRITES_S)
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            rotated = offset > size
            start = 0 if rotated else (max(0, size - max_bytes) if offset < 0 else offset)
            f.seek(start)
            data = f.read(max_bytes)
    except FileNotFoundError:
        return 0, 0, b"", False
    if offset < 0 and start > 0:  # tail: begin at a whole line
        cut = data.find(b"\n")
        start, data = (start + cut + 1, data[cut + 1 :]) if cut >= 0 else (start + len(data), b"")
    if len(data) == max_bytes and b"\n" in data:  # a full read: end at a whole line, the rest comes next time
        data = data[: data.rfind(b"\n") + 1]
    return start, size, data, rotated


@command(
    "log_read",
    source=(str, ...),
    offset=(int, -1, Limit(-1, 2**53)),
    max_bytes=(int, 65536, Limit(1, 1024 * 1024)),
    contains=(str, ""),
)
async def log_read(ctx: CommandContext, source: str, offset: int, max_bytes: int, contains: str) -> dict[str, Any]:
    """Lines of a log from a byte offset, for live viewers: a program's name, "daemon" or "pipeline".

    offset -1 reads the tail (the last max_bytes, at most 1 MiB, from a line start). Returns
    ``{"source", "file", "offset", "next_offset", "size", "rotated", "lines": [str]}``; ask again with
    next_offset to follow. "pipeline" is the daemon's log kept to the pipeline runner's and worker's lines;
    contains keeps only lines holding that text (case-insensitive). Non-UTF-8 bytes come back as \\xNN.
    """
    log_source = _log_source(ctx, source)
    start, size, data, rotated = await asyncio.to_thread(_read_log, log_source.file, offset, max_bytes)
    kept = (line for line in data.decode("utf-8", "backslashreplace").splitlines() if log_source.keeps(line))
    lines = list(ctx.redactor.lines(kept))
    if contains:
        needle = contains.lower()
        lines = [line for line in lines if needle in line.lower()]
    return {
        "source": source,
        "file": str(log_source.file),
        "offset": start,
        "next_offset": start + len(data),
        "size": size,
        "rotated": rotated,
        "lines": lines,
    }
