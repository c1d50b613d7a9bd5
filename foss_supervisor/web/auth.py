"""Who may do what over HTTP: the API token, the login cookie and the CSRF token derived from it.

The token lives in ``state_dir/api-token`` (mode 0600). A script sends it as ``Authorization: Bearer``;
a browser logs in once through ``/login?token=...`` (the URL ``start`` prints, as Jupyter does) or the
login form, which sets an HttpOnly, SameSite=Strict cookie. A cookie-authenticated write must also carry
``X-CSRF-Token``: an HMAC of the token that only our own pages hold (in a ``<meta>`` tag), which a
cross-site form cannot send and a cross-site script cannot read.

On a loopback bind reads are open and writes need the token; on any other bind every request but
``/health``, ``/login`` and static assets needs it (:func:`is_authorized_reader`).
"""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

from foss_supervisor.tokens import load_or_create_token

__all__ = [
    "COOKIE",
    "CSRF_HEADER",
    "csrf_token",
    "is_authorized",
    "is_authorized_reader",
    "is_logged_in",
    "load_or_create_token",
    "token_matches",
]

COOKIE = "foss_token"
CSRF_HEADER = "X-CSRF-Token"


def token_matches(given: str, token: str) -> bool:
    """Constant-time comparison, so timing does not leak the token."""
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


def csrf_token(token: str) -> str:
    """The anti-CSRF value for pages of a logged-in browser (hex HMAC-SHA256 of the token)."""
    return hmac.new(token.encode(), b"foss-supervisor csrf", hashlib.sha256).hexdigest()


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.startswith("Bearer ") else ""


def is_logged_in(request: web.Request, token: str) -> bool:
    """The browser holds the login cookie."""
    return token_matches(request.cookies.get(COOKIE, ""), token)


def is_authorized(request: web.Request, token: str) -> bool:
    """May change state: the Bearer token, or the login cookie plus the CSRF header."""
    if bearer := _bearer(request):
        return token_matches(bearer, token)
    return is_logged_in(request, token) and token_matches(request.headers.get(CSRF_HEADER, ""), csrf_token(token))


def is_authorized_reader(request: web.Request, token: str) -> bool:
    """May read on an exposed bind: the Bearer token or the login cookie (GETs carry no CSRF header)."""
    if bearer := _bearer(request):
        return token_matches(bearer, token)
    return is_logged_in(request, token)
