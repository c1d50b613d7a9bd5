"""The one responder: a view returns plain data, this answers it as HTML (a template) or as its JSON twin.

JSON when the URL says ``?format=json`` or the client asks for ``application/json`` and not HTML;
views that probes read (``/health``) answer JSON unless the client asks for HTML. Any other ``?format=``
is a 400 (views with formats of their own, such as a log's ``text``, answer those before responding).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from foss_supervisor import __version__
from foss_supervisor.base.jsonable import jsonable
from foss_supervisor.web import access, auth
from foss_supervisor.web.keys import EXPOSED, JINJA, TOKEN
from foss_supervisor.web.sse import SINCE
from foss_supervisor.web.templates import kpi_number, number_cell

__all__ = ["FORMATS", "kpi_number", "number_cell", "respond", "wants_json"]


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
    # the role the request proves by any accepted means (a Bearer header or the login cookie), as admit found it
    offered = auth.credential(request)
    role = auth.token_role(offered, request.app[TOKEN])
    page = (
        request.app[JINJA]
        .get(template)
        .render(
            version=__version__,
            path=request.path,
            logged_in=role is auth.Role.OWNER,
            viewer=role is auth.Role.VIEWER,
            exposed=request.app[EXPOSED],
            csrf=auth.csrf_token(offered) if role is not None else "",
            # Log out ends a login cookie; a request that sent its token in a header has none to end
            cookie_session=auth.session_role(request, request.app[TOKEN]) is not None,
            # a page opens the event stream only when the visitor may read it (no 401 on the login page)
            events_since=request.get(SINCE, "") if access.may_read(request, "events") else "",
            **data,
        )
    )
    # text UTF-8 cannot hold (a lone surrogate in something a client once sent) is shown as "?", never a 500
    body = page.encode("utf-8", "replace")
    return web.Response(body=body, content_type="text/html", charset="utf-8", status=status)


def _dumps(obj: Any) -> str:
    import json

    return json.dumps(obj, default=jsonable)
