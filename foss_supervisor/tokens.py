"""The API token file: created by the daemon (mode 0600) before anything reads it, read by the dashboard.

Stdlib only, so the daemon creates the token without importing the web layer.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["load_or_create_token"]


def load_or_create_token(path: Path) -> str:
    """Read the token, or create one readable by this user only (``O_EXCL``: two creators never race)."""
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
