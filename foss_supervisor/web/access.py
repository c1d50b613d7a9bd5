"""Who may read what: every request but the login page, the icon and static files needs a token, on any bind.

Each route of :data:`foss_supervisor.web.routes.ROUTES` names its *part* (a name of
``config_model.DASHBOARD_PARTS``, or :data:`OPEN` or :data:`TOKEN_ONLY`); ``create_app`` hands the app
their map (:func:`route_parts`, ``keys.PARTS``). :func:`admit` is the one gate:

- the owner's or the viewer's token (Bearer header, or the login cookie) reads every part;
- an anonymous client reads the parts ``dashboard.public`` names, :data:`OPEN` routes, and ``/health``
  as a summary (:func:`health_summary`: the verdict and counts, nothing that names a program);
- anything else is answered 401: the login page for a browser (the form logs in and comes back to
  the page asked for; the caller hands it in, from ``views/session.py``), a plain-text reason and
  ``WWW-Authenticate: Bearer`` for a script. An unknown path is 401 too (a method a known path does not
  take, its 405).

What a token may *change* is decided per command by its registry entry (``mutating``): see
:func:`foss_supervisor.web.auth.is_authorized`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from foss_supervisor.web import auth
from foss_supervisor.web.keys import PARTS, PUBLIC, TOKEN

if TYPE_CHECKING:
    from foss_supervisor.web.routes import Route

__all__ = [
    "HEALTH",
    "OPEN",
    "ROLE",
    "TOKEN_ONLY",
    "admit",
    "full_health",
    "health_summary",
    "may_read",
    "part_of",
    "role",
    "route_parts",
]

OPEN = "open"  # the login page and the icon: no token, whatever the config says
TOKEN_ONLY = "token"  # noqa: S105 (a part name) logout and the command endpoint: a token, whatever dashboard.public says
HEALTH = "health"  # anonymous clients get the summary; the full report with a token or when public
ROLE = "foss_role"  # request key: the auth.Role of the request, or None
UNAUTHORIZED = (
    "log in: open the URL `foss-supervisor start` printed, or send a token as Authorization: Bearer "
    "(state_dir/api-token, or the read-only state_dir/viewer-token)\n"
)


#: what :func:`admit` answers a browser that must log in first: the login page, 401, coming back to the
#: page asked for (``views.session.login_required``; handed in, as the views import this module)
LoginPage = Callable[[web.Request], Awaitable[web.StreamResponse]]


def route_parts(routes: Iterable[Route]) -> dict[tuple[str, str], str]:
    """{(method, path): part} of the route table (``keys.PARTS``), HEAD included for every GET route."""
    routes = tuple(routes)
    parts = {(r.method, r.path): r.part for r in routes}
    # HEAD is GET without the body (aiohttp serves it for every GET route): the same part, the same gate
    parts.update({("HEAD", r.path): r.part for r in routes if r.method == "GET"})
    return parts


def part_of(request: web.Request) -> str | None:
    """The part the request's route belongs to; None for a path no route serves (a 404 to come).

    A method no route of the path takes is :data:`OPEN` (its 405 names the methods of the route table,
    which is no secret: any value of a path parameter gets the same answer).
    """
    info = request.match_info
    if isinstance(info.http_exception, web.HTTPMethodNotAllowed):
        return OPEN
    resource = info.route.resource
    if resource is None:
        return None
    if resource.canonical.startswith("/static"):
        return OPEN
    return request.app[PARTS].get((info.route.method, resource.canonical))


def role(request: web.Request) -> auth.Role | None:
    """The role :func:`admit` found for the request (None: anonymous)."""
    found: auth.Role | None = request.get(ROLE)
    return found


def may_read(request: web.Request, part: str) -> bool:
    """May the request read ``part`` (a token, or the part is public)?"""
    return role(request) is not None or part in request.app[PUBLIC]


def full_health(request: web.Request) -> bool:
    """May the request see the whole health report (problems and warnings name programs)?"""
    return may_read(request, HEALTH)


def health_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The health report as an anonymous client sees it: the verdict, the phase and counts only
    (``{"ok", "status", "phase", "problem_count", "warning_count", "programs": {state: count}}``)."""
    return {
        "ok": report["ok"],
        "status": report["status"],
        "phase": report["phase"],
        "problem_count": len(report.get("problems", ())),
        "warning_count": len(report.get("warnings", ())),
        "programs": dict(report.get("programs", {})),
    }


def _wants_page(request: web.Request) -> bool:
    """A browser navigating (GET, accepts HTML, no ``?format=json``): it gets the login page."""
    accept = request.headers.get("Accept", "")
    return request.method in ("GET", "HEAD") and "text/html" in accept and request.query.get("format") != "json"


async def admit(request: web.Request, login_page: LoginPage) -> web.StreamResponse | None:
    """Note the request's role (:data:`ROLE`); None when it may go on, else the 401 answer to send
    (``login_page(request)`` for a browser navigating)."""
    found = auth.role_of(request, request.app[TOKEN])
    request[ROLE] = found
    part = part_of(request)
    if found is not None or part in (OPEN, HEALTH) or (part is not None and part in request.app[PUBLIC]):
        return None
    if _wants_page(request):
        return await login_page(request)
    return web.Response(
        status=401,
        text=UNAUTHORIZED,
        headers={"WWW-Authenticate": 'Bearer realm="foss-supervisor"'},
    )
