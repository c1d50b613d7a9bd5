"""``/logs`` (every log there is, and ``?q=TEXT``: a search across all of them) and ``/logs/{source}``: a live
viewer of a program's, the daemon's or the pipeline worker's log. The page script follows it through
``log_read``; lines are shown as text."""

from __future__ import annotations

from aiohttp import web

from foss_supervisor.commands.logs import LOG_SOURCES, MAX_SEARCH_CHARS
from foss_supervisor.errors import SupervisorError
from foss_supervisor.web.keys import CORE
from foss_supervisor.web.responder import respond

__all__ = ["DOWNLOAD_CHUNK_BYTES", "SEARCH_LINES", "log_index", "log_page"]

DOWNLOAD_CHUNK_BYTES = 256 * 1024  # what the text download holds at once (a log may be gigabytes)
SEARCH_LINES = 200  # the last matching lines shown per log
SOURCE_TITLES = {"daemon": "the daemon", "pipeline": "the pipeline worker and its runs"}


async def _sources(request: web.Request) -> list[dict[str, str]]:
    status = await request.app[CORE].read("status")
    out = [{"source": s, "title": SOURCE_TITLES[s], "state": ""} for s in LOG_SOURCES]
    out += [{"source": p["name"], "title": f"program {p['name']}", "state": p["state"]} for p in status["programs"]]
    return out


def _filename(source: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in source)[:100] or "log"


async def _download(request: web.Request, source: str) -> web.StreamResponse:
    """The whole log as text, redacted: read through ``log_read`` (the one reader of log bytes that leaves
    the daemon) a chunk of at most :data:`DOWNLOAD_CHUNK_BYTES` at a time, up to the size it had when the
    download began (a log that grows meanwhile does not keep the response open) or until it is rotated."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/plain; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{_filename(source)}.log"',
        }
    )
    await response.prepare(request)
    offset, end = 0, None
    while end is None or offset < end:
        chunk = await request.app[CORE].call(
            "log_read", {"source": source, "offset": offset, "max_bytes": DOWNLOAD_CHUNK_BYTES}
        )
        if chunk["rotated"] or chunk["next_offset"] <= offset:
            break
        end = chunk["size"] if end is None else end
        offset = chunk["next_offset"]
        if chunk["lines"]:
            await response.write("".join(f"{line}\n" for line in chunk["lines"]).encode())
    await response.write_eof()
    return response


async def log_index(request: web.Request) -> web.StreamResponse:
    """Every log; with ``?q=TEXT`` also the last :data:`SEARCH_LINES` lines of each holding that text
    (``matches``: ``[{"source", "line"}]``, programs first, then the daemon; the ``logs`` command's search)."""
    query = request.query.get("q", "").strip()
    if len(query) > MAX_SEARCH_CHARS:
        raise web.HTTPBadRequest(text=f"q: at most {MAX_SEARCH_CHARS} characters\n")
    matches: list[dict[str, str]] = []
    if query:
        found = await request.app[CORE].call(
            "logs", {"names": ["all", "daemon"], "lines": SEARCH_LINES, "contains": query}
        )
        matches = [{"source": name, "line": line} for name, lines in found["lines"].items() for line in lines]
    data = {
        "sources": await _sources(request),
        "q": query,
        "matches": matches,
        "search_lines": SEARCH_LINES,
        "search_chars": MAX_SEARCH_CHARS,
    }
    return await respond(request, "logs_index.html", data)


async def log_page(request: web.Request) -> web.StreamResponse:
    """The viewer, opened on the last 64 KiB of the log (the JSON twin is that ``log_read`` reply)."""
    source = request.match_info["source"]
    try:
        tail = await request.app[CORE].call("log_read", {"source": source, "offset": -1, "max_bytes": 65536})
    except SupervisorError as exc:
        raise web.HTTPNotFound(text=f"{exc}\n") from None
    if request.query.get("format") == "text":
        return await _download(request, source)
    title = SOURCE_TITLES.get(source, f"program {source}")
    return await respond(request, "logs.html", {"log": tail, "title": title, "source": source})
