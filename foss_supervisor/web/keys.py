"""Typed keys of what the web app carries (aiohttp ``AppKey``s, instead of globals)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

from aiohttp import web

from foss_supervisor.web.core import Core
from foss_supervisor.web.history import History
from foss_supervisor.web.journalcharts import JournalCharts
from foss_supervisor.web.limits import ConnectionGuard, PerClient
from foss_supervisor.web.public import PublicParts
from foss_supervisor.web.sse import EventLog
from foss_supervisor.web.templates import Templates

if TYPE_CHECKING:
    from foss_supervisor.web.routes import Route

__all__ = [
    "CHARTS",
    "CHARTS_READER",
    "CORE",
    "EVENTS",
    "EXPOSED",
    "GUARD",
    "HISTORY",
    "JINJA",
    "PARTS",
    "PUBLIC",
    "QUERIES",
    "ROUTE_TABLE",
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
#: the route table the app serves (routes.py), handed in by create_app: the route table imports the views,
#: which import what reads it (access.py, openapi.py), so those find it here rather than import it
ROUTE_TABLE: web.AppKey[tuple[Route, ...]] = web.AppKey("route_table")
PARTS: web.AppKey[Mapping[tuple[str, str], str]] = web.AppKey("parts")  # (method, path) -> part (access.py)
