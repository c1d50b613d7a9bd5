"""The request guard every request passes: Host allow-list, Origin check, a token to read, headers.

- ``Host`` must be a loopback name, an IP literal, this machine's name or the configured host: a
  DNS-rebinding page (``attacker.example`` resolving to 127.0.0.1) is answered 421 and reads nothing.
- A state-changing method (anything but GET, HEAD, OPTIONS) from a browser must come from our own
  origin (``Origin``, else ``Sec-Fetch-Site``); a cross-site one is answered 403 before any handler runs.
- On any bind, loopback included, every request but the login page, static files, ``/health``'s summary
  and the parts ``dashboard.public`` opens needs a token (:func:`foss_supervisor.web.access.admit`).
- Every response carries a strict Content-Security-Policy (scripts and styles from our origin only, no
  inline script) and the usual hardening headers.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from foss_supervisor.web import access

__all__ = ["CSP", "REPORT_CSP", "allowed_hosts", "guard", "is_loopback", "set_security_headers"]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# run reports are self-contained pages with inline styles and no script at all
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; frame-ancestors 'none'"

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost; a wildcard (0.0.0.0, ::) or any other address is not."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(configured: str) -> frozenset[str]:
    """Host names (lower case, no port) a request may name besides IP literals."""
    names = {*LOOPBACK_NAMES, socket.gethostname().lower(), socket.getfqdn().lower()}
    if configured and configured not in ("0.0.0.0", "::", ""):  # noqa: S104 (a wildcard is no name)
        names.add(configured.lower().strip("[]"))
    return frozenset(names)


def _host_name(request: web.Request) -> str:
    host = request.headers.get("Host", "")
    if host.startswith("["):
        return host[1 : host.find("]")].lower() if "]" in host else host.lower()
    return host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()


def _host_allowed(name: str, names: frozenset[str]) -> bool:
    if not name or name in names:
        return True
    try:
        ipaddress.ip_address(name)  # an IP literal cannot be rebound: the page's origin is that address
        return True
    except ValueError:
        return False


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin != "null" and origin.lower() == f"{request.scheme}://{request.headers.get('Host', '')}".lower()
    return request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none")


def guard(names: frozenset[str], login_page: access.LoginPage) -> Middleware:
    """The middleware, for the allowed host ``names`` (see :func:`allowed_hosts`); ``login_page`` answers a
    browser that must log in first (see :func:`foss_supervisor.web.access.admit`)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not _host_allowed(_host_name(request), names):
            raise web.HTTPMisdirectedRequest(text="unknown Host: open the dashboard by the address it listens on\n")
        if request.method not in SAFE_METHODS and not _same_origin(request):
            raise web.HTTPForbidden(text="cross-origin request refused\n")
        refused = await access.admit(request, login_page)
        return refused if refused is not None else await handler(request)

    return middleware


async def set_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every response, errors and static files included, gets the headers."""
    h = response.headers
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Content-Type-Options", "nosniff")
    # the login URL carries the token: never sent to another site (and "no-referrer" would make form posts
    # carry "Origin: null", which the Origin check refuses)
    h.setdefault("Referrer-Policy", "same-origin")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    h.setdefault("Cross-Origin-Resource-Policy", "same-origin")
    if response.content_type == "text/html":
        h.setdefault("Cache-Control", "no-store")
