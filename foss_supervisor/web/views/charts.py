"""``/api/v1/charts``: the overview's charts over 1 h (the dashboard's own samples, every 5 s) or 24 h and 7 d
(the daemon's journal, rolled up by :mod:`foss_supervisor.web.journalcharts` in this process)."""

from __future__ import annotations

import asyncio
import re

from aiohttp import web

from foss_supervisor.web.journalcharts import JOURNAL_RANGES, MAX_POINTS
from foss_supervisor.web.keys import CHARTS, CHARTS_READER, HISTORY

__all__ = ["CHART_RANGES", "PROGRAM_PATTERN", "charts_api"]

CHART_RANGES = ("1h", *JOURNAL_RANGES)
#: a program's name (config.schema.PROGRAM_NAME)
PROGRAM_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


async def charts_api(request: web.Request) -> web.Response:
    """The figures of ``?range=`` (1h, 24h or 7d; default 1h), every program's or ``?program=`` NAME's only.

    1h: ``{"range", "bucket_s": 5, "t", "cpu", "mem", "rss", "running", "disk", "pt", "programs": {name:
    {"cpu", "rss"}}}`` (the last hour this process sampled, at most 300 points); 24h and 7d: 300 buckets of
    288 s or 2,016 s from the journal, each series its average with ``_min`` and ``_max`` beside it
    (:meth:`~foss_supervisor.web.journalcharts.JournalCharts.chart`). 400 for another range or a ``program``
    that is no program's name."""
    range_ = request.query.get("range", "1h")
    if range_ not in CHART_RANGES:
        raise web.HTTPBadRequest(text=f"range must be one of {', '.join(CHART_RANGES)}\n")
    program = request.query.get("program")
    if program is not None and not re.fullmatch(PROGRAM_PATTERN, program):
        raise web.HTTPBadRequest(text="program must be a program's name (letters, digits, '_', '.', '-')\n")
    if range_ == "1h":
        history = request.app[HISTORY]
        series = history.page_series(points=MAX_POINTS, program_points=MAX_POINTS)
        if program is not None:
            series["programs"] = {n: s for n, s in series["programs"].items() if n == program}
        return web.json_response({"range": range_, "bucket_s": history.every_s, "complete": True, **series})
    # one reading thread at a time: a flood of chart requests queues here, never on the loop's executor
    async with request.app[CHARTS_READER]:
        answer = await asyncio.to_thread(request.app[CHARTS].chart, range_, program)
    return web.json_response(answer)
