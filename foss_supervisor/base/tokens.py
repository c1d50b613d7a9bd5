"""The token files: the owner's API token and the viewer token derived from it (both 0600).

The daemon creates them before anything reads them (``start`` prints the login URL; the dashboard
process reads them); stdlib only, so the daemon never imports the web layer for it. Roles and what each
may do are the web layer's (:mod:`foss_supervisor.web.auth`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

__all__ = ["VIEWER_TOKEN_FILE", "load_or_create_token", "viewer_token", "write_viewer_token"]

VIEWER_TOKEN_FILE = "viewer-token"  # noqa: S105 (a file name)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read (0600 also when it existed with a wider mode)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(text)


def load_or_create_token(path: Path) -> str:
    """Read the owner's token, or create one readable by this user only. OSError when it cannot."""
    try:
        token = path.read_text(encoding="ascii").strip()
        if token:
            return token
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    _write_private(path, token + "\n")
    return token


def viewer_token(token: str) -> str:
    """The read-only token derived from the owner's ``token`` (URL-safe base64 of an HMAC-SHA256, 43 chars)."""
    digest = hmac.new(token.encode(), b"foss-supervisor viewer", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def write_viewer_token(state_dir: Path, token: str) -> Path:
    """Write ``state_dir/viewer-token`` (0600) for the owner's ``token``; returns its path.

    Written at every daemon start, so it always matches the api-token in force.
    """
    path = state_dir / VIEWER_TOKEN_FILE
    _write_private(path, viewer_token(token) + "\n")
    return path
