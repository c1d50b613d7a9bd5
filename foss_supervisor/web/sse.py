"""Server-sent events: the bus, as JSON, to every open dashboard.

Streams are tracked so shutdown closes them (aiohttp does not cancel a handler whose client went
away on its own); each stream reads a bounded subscription, so a slow browser never blocks the core.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from enum import Enum
from typing import Any

from aiohttp import web

from foss_supervisor.events import EventBus

__all__ = ["event_to_json", "stream_events"]

KEEPALIVE_S = 15.0


def event_to_json(event: object) -> dict[str, Any]:
    """A bus event (any frozen dataclass) as JSON-able data, with its type name."""
    assert dataclasses.is_dataclass(event) and not isinstance(event, type)
    data = {k: (v.value if isinstance(v, Enum) else v) for k, v in dataclasses.asdict(event).items()}
    data["type"] = type(event).__name__
    return data


async def stream_events(request: web.Request, bus: EventBus, streams: set[asyncio.Task[object]]) -> web.StreamResponse:
    """Write every bus event until the client leaves or the app shuts down (it cancels ``streams``)."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    task = asyncio.current_task()
    assert task is not None
    streams.add(task)
    sub = bus.subscribe(maxsize=500)
    try:
        await response.write(b"retry: 2000\n\n")
        while True:
            try:
                event = await asyncio.wait_for(sub.get(), KEEPALIVE_S)
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            payload = json.dumps(event_to_json(event), default=str)
            await response.write(f"event: {type(event).__name__}\ndata: {payload}\n\n".encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        sub.close()
        streams.discard(task)
    return response
