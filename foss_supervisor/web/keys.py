"""Typed keys of what the web app carries (aiohttp ``AppKey``s, instead of globals)."""

from __future__ import annotations

import asyncio

import jinja2
from aiohttp import web
from prometheus_client import CollectorRegistry

from foss_supervisor.commands import CommandContext
from foss_supervisor.events import EventBus

__all__ = ["BUS", "CTX", "JINJA", "REGISTRY", "STREAMS", "TOKEN"]

CTX = web.AppKey("ctx", CommandContext)
BUS = web.AppKey("bus", EventBus)
TOKEN = web.AppKey("token", str)
STREAMS: web.AppKey[set[asyncio.Task[object]]] = web.AppKey("streams")
REGISTRY = web.AppKey("registry", CollectorRegistry)
JINJA = web.AppKey("jinja", jinja2.Environment)
