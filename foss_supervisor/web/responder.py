"""The one responder: a view returns plain data, this answers it as HTML (a template) or as its JSON twin.

JSON when the URL says ``?format=json`` or the client asks for ``application/json`` and not HTML;
views that probes read (``/health``) answer JSON unless the client asks for HTML. Any other ``?format=``
is a 400 (views with formats of their own, such as a log's ``text``, answer those before responding).
"""

from __future__ import annotations

import re
from typing import Any

import jinja2
from aiohttp import web

from foss_supervisor import __version__
from foss_supervisor.base.jsonable import jsonable
from foss_supervisor.base.resources import data_dir
from foss_supervisor.web import access, auth
from foss_supervisor.web.core import LISTED_EVENTS
from foss_supervisor.web.icons import STATE_ICONS, STATE_WORDS
from foss_supervisor.web.keys import EXPOSED, JINJA, TOKEN
from foss_supervisor.web.sse import SINCE

__all__ = ["FORMATS", "kpi_number", "make_jinja", "number_cell", "respond", "wants_json"]


FORMATS = ("json", "html")  # ?format= of a page with a JSON twin


def wants_json(request: web.Request, default_json: bool = False) -> bool:
    """Whether to answer JSON (see the module docstring); HTTPBadRequest for another ``?format=``."""
    fmt = request.query.get("format")
    if fmt is not None:
        if fmt not in FORMATS:
            raise web.HTTPBadRequest(text=f"format must be one of {', '.join(FORMATS)}\n")
        return fmt == "json"
    accept = request.headers.get("Accept", "")
    if "text/html" in accept:
        return False
    return default_json or "application/json" in accept


def make_jinja() -> jinja2.Environment:
    """Templates from ``ui_templates/`` with autoescape on and undefined names as errors."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(data_dir("ui_templates")), autoescape=True, undefined=jinja2.StrictUndefined
    )
    env.globals["state_icons"] = STATE_ICONS
    env.globals["listed_events"] = LISTED_EVENTS  # the page script listens for these (none typed in it)
    env.globals["state_words"] = STATE_WORDS
    env.filters["num"] = lambda v, digits=0: "\u2013" if v is None else f"{v:,.{digits}f}"
    env.filters["cell"] = number_cell
    env.filters["kpi"] = kpi_number
    return env


def kpi_number(value: float) -> str:
    """A key figure as a card shows it: grouped, 2 decimals for a float; from a million on, compact
    (``3.21 M``, ``3.40 B``) so that it fits a card at any width. The exact value goes in the title."""
    if abs(value) >= 1_000_000:
        for size, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
            if abs(value) >= size:
                return f"{value / size:,.2f} {unit}"
    return f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"


_NUMERIC_TEXT = re.compile(r"^(-?)(\d+)(\.\d+)?$")


def number_cell(value: Any) -> str:
    """A warehouse number as a table shows it: digits grouped, exact. Integers whole; a float with at most
    6 decimals; an exact number sent as text (a DECIMAL, an integer beyond 2**53) keeps every digit and
    its scale (``"12345678901234567.89"`` -> ``12,345,678,901,234,567.89``)."""
    if isinstance(value, str):
        m = _NUMERIC_TEXT.match(value)
        return f"{m[1]}{int(m[2]):,}{m[3] or ''}" if m else value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    text = f"{value:,.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


async def respond(
    request: web.Request,
    template: str,
    data: dict[str, Any],
    *,
    status: int = 200,
    default_json: bool = False,
    html: bool = False,
) -> web.Response:
    """``data`` as JSON, or rendered into ``template`` with the session (logged in, CSRF token) added;
    ``html``: the page whatever the request asks (the login page answering another route's request)."""
    if not html and wants_json(request, default_json):
        return web.json_response(data, status=status, dumps=_dumps)
    session = request.cookies.get(auth.COOKIE, "")
    role = auth.token_role(session, request.app[TOKEN])
    page = (
        request.app[JINJA]
        .get_template(template)
        .render(
            version=__version__,
            path=request.path,
            logged_in=role is auth.Role.OWNER,
            viewer=role is auth.Role.VIEWER,
            exposed=request.app[EXPOSED],
            csrf=auth.csrf_token(session) if role is not None else "",
            # a page opens the event stream only when the visitor may read it (no 401 on the login page)
            events_since=request.get(SINCE, "") if access.may_read(request, "events") else "",
            **data,
        )
    )
    return web.Response(text=page, content_type="text/html", status=status)


def _dumps(obj: Any) -> str:
    import json

    return json.dumps(obj, default=jsonable)
