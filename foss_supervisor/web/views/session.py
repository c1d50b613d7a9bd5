"""``/login`` and ``/logout``: a token for an HttpOnly cookie, and back.

``GET /login?token=...`` is the URL ``foss-supervisor start`` prints (as Jupyter's); ``GET /login``
alone shows a form that POSTs the token; any page asked for without a token shows the same form (401)
and comes back to that page. The owner's token and the viewer's both log in (the cookie holds the one
given, so its role). ``POST /logout`` (the session's CSRF token required) drops the cookie.

Where to go after logging in (``next``) passes one gate, :func:`local_path`: a path on this site, or ``/``.
"""

from __future__ import annotations

import re
import urllib.parse

from aiohttp import web

from foss_supervisor.web import auth
from foss_supervisor.web.keys import TOKEN
from foss_supervisor.web.limits import read_body
from foss_supervisor.web.responder import respond

__all__ = ["MAX_NEXT_CHARS", "local_path", "login", "login_form", "login_page", "login_required", "logout"]

MAX_NEXT_CHARS = 4096
_TAB_NEWLINE = str.maketrans("", "", "\t\n\r")  # the WHATWG URL parser drops them anywhere
_C0_SPACE = "".join(map(chr, range(0x21)))  # ... and strips C0 controls and spaces at both ends
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\s]")
_PATH_SAFE = "/?#[]@!$&'()*+,;=:%-._~"  # kept as they are; anything else (non-ASCII...) percent-encoded


def local_path(target: str) -> str:
    """``target`` if it is a path on this site, as a browser would read it, else ``/``.

    Read as a browser reads a ``Location``: tabs and newlines dropped, C0 controls and spaces stripped at
    the ends, backslashes taken as slashes. What is left must be one ``/`` followed by a character that is
    neither ``/`` nor ``\\`` (so no ``//host``, ``/\\host``, ``https:``, ``javascript:``), hold no control
    or space character, and be at most :data:`MAX_NEXT_CHARS` long. The answer is the path as read, with
    non-ASCII characters percent-encoded, so the redirect says exactly what was checked.
    """
    seen = target.translate(_TAB_NEWLINE).strip(_C0_SPACE).replace("\\", "/")
    if (
        len(seen) > MAX_NEXT_CHARS
        or not seen.startswith("/")
        or seen.startswith("//")
        or _CONTROL.search(seen) is not None
    ):
        return "/"
    return urllib.parse.quote(seen, safe=_PATH_SAFE)


def _logged_in(target: str, given: str) -> web.HTTPSeeOther:
    response = web.HTTPSeeOther(local_path(target))
    response.set_cookie(auth.COOKIE, given, httponly=True, samesite="Strict", path="/")
    return response


async def login_page(
    request: web.Request, target: str, *, error: str = "", status: int = 200, html: bool = False
) -> web.Response:
    """The login form, coming back to ``target`` (through :func:`local_path`) once logged in; ``html``: as a
    page whatever the request's ``?format=`` (it belongs to the route the request was for)."""
    data = {"next": local_path(target), "error": error}
    return await respond(request, "login.html", data, status=status, html=html)


async def login_required(request: web.Request) -> web.Response:
    """The login form as a page, 401, coming back to the page the request asked for: what the gate
    (:func:`foss_supervisor.web.access.admit`) answers a browser without a token."""
    return await login_page(request, request.path_qs, status=401, html=True)


async def login_form(request: web.Request) -> web.StreamResponse:
    """With ``?token=`` log in at once (a 303 to ``next``; 403 for a wrong token); without it, the form."""
    target = request.query.get("next", "/")
    if "token" in request.query:
        given = request.query["token"].strip()
        if auth.token_role(given, request.app[TOKEN]) is None:
            raise web.HTTPForbidden(text="wrong token\n")
        raise _logged_in(target, given)
    return await login_page(request, target)


async def _form(request: web.Request) -> dict[str, str]:
    """The fields of a form POST (URL-encoded, as browsers send forms; an empty body is no field).

    415 for another content type, 408 when the body does not arrive within 10 s.
    """
    body = await read_body(request, 10.0)
    if body and request.content_type != "application/x-www-form-urlencoded":
        raise web.HTTPUnsupportedMediaType(text="send the form as application/x-www-form-urlencoded\n")
    fields = urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=20)
    return dict(fields)


async def login(request: web.Request) -> web.StreamResponse:
    """Log in with the form's ``token`` (a 303 to ``next``); a wrong one gets the form again (403)."""
    form = await _form(request)
    given, target = form.get("token", "").strip(), form.get("next", "/")
    if auth.token_role(given, request.app[TOKEN]) is None:
        return await login_page(request, target, error="That is not the token.", status=403)
    raise _logged_in(target, given)


async def logout(request: web.Request) -> web.StreamResponse:
    """Drop the login cookie (form field ``csrf`` or the ``X-CSRF-Token`` header: the session's)."""
    form = await _form(request)
    given = form.get("csrf", "") or request.headers.get(auth.CSRF_HEADER, "")
    session = request.cookies.get(auth.COOKIE, "")
    if auth.token_role(session, request.app[TOKEN]) is None or not auth.token_matches(given, auth.csrf_token(session)):
        raise web.HTTPForbidden(text="missing or wrong CSRF token\n")
    response = web.HTTPSeeOther("/")
    response.del_cookie(auth.COOKIE, path="/")
    raise response
