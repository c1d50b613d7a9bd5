"""Who may do what over HTTP: the owner's API token, the viewer token, the login cookie and the CSRF token.

Two roles (docs/security.md has the table per route):

- **owner**: the token in ``state_dir/api-token`` (mode 0600). Reads everything and runs every command.
- **viewer**: the token in ``state_dir/viewer-token`` (mode 0600), derived from the owner's (an HMAC, so
  it cannot be turned back into it; a new api-token makes a new viewer token). Reads everything, runs
  no command whose registry entry is ``mutating``: for people who watch, and for Prometheus
  (``bearer_token_file``).

A script sends a token as ``Authorization: Bearer``; a browser logs in once through ``/login?token=...``
(the URL ``start`` prints, as Jupyter does) or the login form, which sets an HttpOnly, SameSite=Strict
cookie holding the token it was given. A cookie-authenticated write must also carry ``X-CSRF-Token``: an
HMAC of the token that only our own pages hold (in a ``<meta>`` tag), which a cross-site form cannot
send and a cross-site script cannot read. Without a token a request is anonymous (``None``).
"""

from __future__ import annotations

import enum
import hashlib
import hmac

from aiohttp import web

from foss_supervisor.base.tokens import VIEWER_TOKEN_FILE, load_or_create_token, viewer_token, write_viewer_token

__all__ = [
    "COOKIE",
    "CSRF_HEADER",
    "VIEWER_TOKEN_FILE",
    "Role",
    "credential",
    "csrf_token",
    "is_authorized",
    "is_logged_in",
    "load_or_create_token",
    "role_of",
    "session_role",
    "token_matches",
    "token_role",
    "viewer_token",
    "write_viewer_token",
]

COOKIE = "foss_token"
CSRF_HEADER = "X-CSRF-Token"


class Role(enum.StrEnum):
    """What a request may do: ``owner`` reads and changes, ``viewer`` reads."""

    OWNER = "owner"
    VIEWER = "viewer"


def token_matches(given: str, token: str) -> bool:
    """Constant-time comparison, so timing does not leak the token. ``given`` is whatever a client sent (a
    header, a cookie, a query value: aiohttp keeps undecodable bytes as surrogates): any text is compared,
    none raises."""
    return bool(given) and hmac.compare_digest(given.encode("utf-8", "surrogatepass"), token.encode())


def token_role(given: str, token: str) -> Role | None:
    """The role ``given`` proves for the owner's ``token``: OWNER, VIEWER or None."""
    if token_matches(given, token):
        return Role.OWNER
    if token_matches(given, viewer_token(token)):
        return Role.VIEWER
    return None


def csrf_token(token: str) -> str:
    """The anti-CSRF value for pages of a browser logged in with ``token`` (hex HMAC-SHA256 of it)."""
    return hmac.new(token.encode(), b"foss-supervisor csrf", hashlib.sha256).hexdigest()


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else ""


def session_role(request: web.Request, token: str) -> Role | None:
    """The role the browser's login cookie proves (None: no cookie, or not a token of ours)."""
    return token_role(request.cookies.get(COOKIE, ""), token)


def is_logged_in(request: web.Request, token: str) -> bool:
    """The browser holds the owner's login cookie (its pages show the controls)."""
    return session_role(request, token) is Role.OWNER


def credential(request: web.Request) -> str:
    """The token the request offers: its Bearer token when it sends an Authorization header (a wrong or
    malformed one is "", the cookie then does not count), else its login cookie ("" when none)."""
    if request.headers.get("Authorization"):
        return _bearer(request)
    return request.cookies.get(COOKIE, "")


def role_of(request: web.Request, token: str) -> Role | None:
    """Who is asking: the role of :func:`credential` (the Bearer token when the request sends one, else the
    login cookie); the one test of every page, API call and page header (responder.respond)."""
    return token_role(credential(request), token)


def is_authorized(request: web.Request, token: str) -> bool:
    """May change state: the owner's Bearer token, or the owner's login cookie plus the CSRF header."""
    if request.headers.get("Authorization"):
        return token_role(_bearer(request), token) is Role.OWNER
    return is_logged_in(request, token) and token_matches(request.headers.get(CSRF_HEADER, ""), csrf_token(token))
