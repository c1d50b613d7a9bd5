"""Redaction of secrets in anything a reply shows (PM2 once served environments with secrets)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

__all__ = ["REDACTED", "looks_secret", "redact_argv", "redact_env", "redact_text"]

REDACTED = "***"
_SECRET = re.compile(r"(pass|secret|token|key|auth|credential|cookie|session|private|dsn|cert)", re.I)


def looks_secret(name: str) -> bool:
    """True for names like DB_PASSWORD, API_KEY, GITHUB_TOKEN, AWS_SECRET_ACCESS_KEY."""
    return bool(_SECRET.search(name))


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``env`` with the values of secret-looking names replaced."""
    return {k: (REDACTED if looks_secret(k) else v) for k, v in env.items()}


_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+(?=@)", re.I)
# inside one string (a shell command): NAME=value and --name value / --name=value with a secret-looking name
_INLINE = re.compile(r"(?P<name>(?<![\w-])-{0,2}[A-Za-z_][\w.-]*)(?P<sep>=|\s+)(?P<value>'[^']*'|\"[^\"]*\"|[^\s'\"]+)")


def redact_text(text: str) -> str:
    """``text`` with URL passwords and the values of secret-looking ``NAME=value``/``--name value`` replaced."""
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, text)

    def one(m: re.Match[str]) -> str:
        name = m.group("name")
        if not looks_secret(name.lstrip("-")) or (m.group("sep") != "=" and not name.startswith("-")):
            return m.group(0)
        return f"{name}{m.group('sep')}{REDACTED}"

    return _INLINE.sub(one, text)


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A command line with secrets replaced: ``--password=x``, ``--api-token x``, ``DB_PASSWORD=x`` and
    ``postgres://u:x@h`` show ``***`` where the value was, also inside a ``sh -c`` string."""
    out: list[str] = []
    for arg in argv:
        name, eq, _ = arg.partition("=")
        if eq and not any(c.isspace() for c in arg) and looks_secret(name.lstrip("-")):
            out.append(f"{name}={REDACTED}")
        elif out and out[-1].startswith("-") and "=" not in out[-1] and looks_secret(out[-1].lstrip("-")):
            out.append(REDACTED)
        else:
            out.append(redact_text(arg))
    return out
