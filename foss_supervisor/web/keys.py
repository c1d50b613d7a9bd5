"""Typed keys of what the web app carries (aiohttp ``AppKey``s, instead of globals)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from foss_supervisor.web.core import Core
from foss_supervisor.web.history import History
from foss_supervisor.web.journalcharts import JournalCharts
from foss_supervisor.web.limits import ConnectionGuard, PerClient
from foss_supervisor.web.public import PublicParts
from foss_supervisor.web.sse import EventLog
from foss_supervisor.web.templates import Templates

__all__ = [
    "CHARTS",
    "CHARTS_READER",
    "CORE",
    "EVENTS",
    "EXPOSED",
    "GUARD",
    "HISTORY",
    "JINJA",
    "PUBLIC",
    "QUERIES",
    "TOKEN",
]

CORE = web.AppKey("core", Core)  # the daemon's command surface and events
TOKEN = web.AppKey("token", str)
EXPOSED = web.AppKey("exposed", bool)  # bound beyond loopback (reads need a token on any bind)
PUBLIC = web.AppKey("public", PublicParts)  # parts open without a token (dashboard.public)
EVENTS = web.AppKey("events", EventLog)
GUARD = web.AppKey("guard", ConnectionGuard)
QUERIES = web.AppKey("queries", PerClient)  # warehouse requests in progress per client
JINJA = web.AppKey("jinja", Templates)  # the page templates, made on first use
HISTORY = web.AppKey("history", History)
CHARTS = web.AppKey("charts", JournalCharts)  # 24 h and 7 d charts from the daemon's journal
CHARTS_READER = web.AppKey("charts_reader", asyncio.Lock)  # one thread reads the journal at a time
