"""Shared pages: a view whose answer depends only on the core's state and the visitor's login renders
once for everyone asking at the same time (nginx's "microcaching").

The overview renders 50 programs, their sparklines and the pipelines' flow: a few milliseconds of CPU,
on a thread that shares the interpreter with the supervision loop. A hundred browsers reloading it would
hold the GIL most of the time and delay restarts. With :func:`shared_page`, callers asking at once wait
for one render, and that answer serves for ``max_age_s`` unless the state changed since
(:attr:`Core.generation <foss_supervisor.web.core.Core.generation>`: a bus event or a state-changing
command): a page is never older than the last event or command, other changes (a failed write) show
within ``max_age_s``, and its live parts update over SSE anyway. The key is the path with its query, JSON or
HTML, the role the request proves (auth.role_of: its Bearer header's or its login cookie's) and whether it
has a login cookie (the Log out button): the only per-visitor parts; the CSRF token is derived from the token.
Keyed by the cookie's role alone, a page fetched with a Bearer token was served as the anonymous one.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from foss_supervisor.web import auth
from foss_supervisor.web.keys import CORE, TOKEN
from foss_supervisor.web.responder import wants_json
from foss_supervisor.web.shared import SharedResults

__all__ = ["PageCache", "shared_page"]

MAX_PAGES = 64  # distinct keys remembered; forgotten all at once beyond (queries are open-ended)


@dataclass(frozen=True, slots=True)
class _Page:
    status: int
    content_type: str
    charset: str | None
    body: bytes


class PageCache(SharedResults[tuple[str, bool, str], _Page]):
    """The pages of one app, by (path with query, JSON or not, the request's role or "" and "cookie" or "")."""

    def __init__(self) -> None:
        super().__init__(MAX_PAGES)


async def _capture(rendering: Awaitable[web.StreamResponse]) -> _Page:
    response = await rendering
    if not isinstance(response, web.Response) or not isinstance(response.body, bytes):
        raise TypeError("a shared page must be a web.Response with a bytes body")
    return _Page(response.status, response.content_type, response.charset, response.body)


def shared_page(max_age_s: float = 0.5) -> Callable[[Handler], Handler]:
    """Decorate a GET view so that concurrent visitors share its answer (see the module docstring)."""

    def wrap(view: Handler) -> Handler:
        @functools.wraps(view)
        async def shared(request: web.Request) -> web.StreamResponse:
            app = request.app
            role = auth.role_of(request, app[TOKEN])
            cookie = "cookie" if auth.session_role(request, app[TOKEN]) is not None else ""
            key = (request.path_qs, wants_json(request), f"{role or ''}/{cookie}")
            page = await app[PAGES].get(key, app[CORE].generation, max_age_s, lambda: _capture(view(request)))
            return web.Response(
                status=page.status, body=page.body, content_type=page.content_type, charset=page.charset
            )

        return shared

    return wrap


PAGES = web.AppKey("pages", PageCache)
