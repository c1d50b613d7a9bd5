"""Redaction of secrets in anything a reply shows (PM2 once served environments with secrets)."""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["REDACTED", "looks_secret", "redact_env"]

REDACTED = "***"
_SECRET = re.compile(r"(pass|secret|token|key|auth|credential|cookie|session|private|dsn|cert)", re.I)


def looks_secret(name: str) -> bool:
    """True for names like DB_PASSWORD, API_KEY, GITHUB_TOKEN, AWS_SECRET_ACCESS_KEY."""
    return bool(_SECRET.search(name))


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``env`` with the values of secret-looking names replaced."""
    return {k: (REDACTED if looks_secret(k) else v) for k, v in env.items()}
