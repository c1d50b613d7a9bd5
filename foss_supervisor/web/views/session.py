"""``/login`` and ``/logout``: the token for an HttpOnly cookie, and back.

``GET /login?token=...`` is the URL ``foss-supervisor start`` prints (as Jupyter's); ``GET /login``
alone shows a form that POSTs the token. ``POST /logout`` (CSRF token required) drops the cookie.
"""

from __future__ import annotations

from aiohttp import web

from foss_supervisor.web import auth
from foss_supervisor.web.keys import TOKEN
from foss_supervisor.web.limits import read_body
from foss_supervisor.web.responder import respond

__all__ = ["login", "login_form", "logout"]


def _local(target: str) -> str:
    """Only paths on this site: ``//evil.example`` and ``https://...`` become ``/``."""
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/"


def _logged_in(target: str, token: str) -> web.HTTPSeeOther:
    response = web.HTTPSeeOther(_local(target))
    response.set_cookie(auth.COOKIE, token, httponly=True, samesite="Strict", path="/")
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    """With ``?token=`` log in at once; without it, the form."""
    if "token" in request.query:
        if not auth.token_matches(request.query["token"], request.app[TOKEN]):
            raise web.HTTPForbidden(text="wrong token")
        raise _logged_in(request.query.get("next", "/"), request.app[TOKEN])
    return await respond(request, "login.html", {"next": _local(request.query.get("next", "/")), "error": ""})


async def login(request: web.Request) -> web.StreamResponse:
    await read_body(request, 10.0)
    form = await request.post()
    given, target = str(form.get("token", "")).strip(), str(form.get("next", "/"))
    if not auth.token_matches(given, request.app[TOKEN]):
        return await respond(
            request, "login.html", {"next": _local(target), "error": "That is not the token."}, status=403
        )
    raise _logged_in(target, request.app[TOKEN])


async def logout(request: web.Request) -> web.StreamResponse:
    await read_body(request, 10.0)
    form = await request.post()
    given = str(form.get("csrf", "")) or request.headers.get(auth.CSRF_HEADER, "")
    if not auth.token_matches(given, auth.csrf_token(request.app[TOKEN])):
        raise web.HTTPForbidden(text="missing or wrong CSRF token")
    response = web.HTTPSeeOther("/")
    response.del_cookie(auth.COOKIE, path="/")
    raise response
