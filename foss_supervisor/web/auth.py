"""Who may change things over HTTP: reads are open on localhost, every mutating request needs the token.

The token lives in ``state_dir/api-token`` (mode 0600). A script sends it as ``Authorization: Bearer``;
a browser gets it once through ``/login?token=...`` (the URL ``start`` prints, as Jupyter does), which
sets an HttpOnly, SameSite=Strict cookie. Cookie-authenticated writes must also carry the
``X-Foss-Request`` header, which a cross-site form cannot send: no state changes through GET links
or forged forms (supervisord's web UI had both).
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from aiohttp import web

__all__ = ["COOKIE", "HEADER", "is_authorized", "load_or_create_token", "token_matches"]

COOKIE = "foss_token"
HEADER = "X-Foss-Request"


def load_or_create_token(path: Path) -> str:
    """Read the token, or create one readable by this user only."""
    try:
        token = path.read_text(encoding="ascii").strip()
        if token:
            return token
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(token + "\n")
    return token


def token_matches(given: str, token: str) -> bool:
    """Constant-time comparison, so timing does not leak the token."""
    return bool(given) and hmac.compare_digest(given, token)


def is_authorized(request: web.Request, token: str) -> bool:
    """Bearer token, or the login cookie plus the anti-CSRF header."""
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return token_matches(auth[7:].strip(), token)
    return token_matches(request.cookies.get(COOKIE, ""), token) and request.headers.get(HEADER) == "1"
