"""Hooks that tell people rather than programs: an ntfy-style push and email, both from one message text.

:func:`message` turns a hook payload (:func:`foss_supervisor.alerting.hooks.event_payload`'s, already redacted)
into a title, a body and a priority a person reads on a phone or in a mailbox:

=================  ==========================================================  ========
kind               title                                                       priority
=================  ==========================================================  ========
alert_firing       ``FIRING program:api:fatal`` (``again`` on a repeat)        high
alert_resolved     ``RESOLVED program:api:fatal``                              default
program_fatal      ``program api FATAL``                                       high
pipeline_failed    ``pipeline orders failed``                                  high
others             ``<kind> <program or pipeline>``                            default
=================  ==========================================================  ========

The body is the summary line (an alert's, a program's reason, a pipeline's error), then every field of the
payload as ``key: value`` lines, so nothing the JSON hooks say is lost.

:func:`send_json` POSTs the payload as JSON to a hook's ``url`` (what programs read). :func:`send_ntfy`
POSTs the body as text to the hook's ``ntfy`` URL with ntfy's ``Title``, ``Priority`` and ``Tags`` headers
(plus the hook's own ``headers``, e.g. ``Authorization``); any server that takes a text body works.
:func:`send_email` writes one message per event through the SMTP server of the hook's ``email``
(aiosmtplib: STARTTLS, implicit TLS, AUTH; cancelled by the hook's timeout). Each returns "" when the
receiver took it, else what went wrong (the hook dispatcher retries and reports it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from foss_supervisor.config import HookConfig

if TYPE_CHECKING:
    from email.message import EmailMessage

__all__ = [
    "MAX_BODY_CHARS",
    "MAX_TITLE_CHARS",
    "email_message",
    "message",
    "send_email",
    "send_json",
    "send_ntfy",
    "shown_url",
]

MAX_TITLE_CHARS = 200  # a title (an email subject, an ntfy title header) is one short line
MAX_BODY_CHARS = 16_384  # a body: the payload is bounded already; this bounds what a person is sent
_HIGH = ("alert_firing", "program_fatal", "pipeline_failed")
_TAGS = {"alert_firing": "rotating_light", "alert_resolved": "white_check_mark", "program_fatal": "skull"}


def _line(text: object, limit: int) -> str:
    """One line: control characters (a header injection, a terminal escape) as spaces, cut to ``limit``."""
    flat = "".join(c if c.isprintable() else " " for c in str(text)).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def message(payload: Mapping[str, Any]) -> tuple[str, str, str]:
    """(title, body, priority) for ``payload``; priority is ``high`` or ``default`` (ntfy's words)."""
    kind = str(payload.get("kind", "event"))
    if kind in ("alert_firing", "alert_resolved"):
        word = "FIRING" if kind == "alert_firing" else "RESOLVED"
        again = " (again)" if kind == "alert_firing" and payload.get("repeat") else ""
        title, summary = f"{word} {payload.get('key', '')}{again}", payload.get("summary", "")
    elif "program" in payload:
        state = payload.get("state") or payload.get("health") or kind
        title = f"program {payload['program']} {state}"
        summary = payload.get("reason") or payload.get("detail") or ""
    elif "pipeline" in payload:
        step = f" step {payload['step']}" if payload.get("step") else ""
        title = f"pipeline {payload['pipeline']}{step} {payload.get('status') or kind}"
        summary = payload.get("error") or ""
    else:
        title, summary = kind, ""
    fields = "\n".join(f"{k}: {json.dumps(v) if not isinstance(v, str) else v}" for k, v in sorted(payload.items()))
    body = f"{summary}\n\n{fields}" if summary else fields
    if len(body) > MAX_BODY_CHARS:
        body = body[: MAX_BODY_CHARS - 1] + "…"
    return _line(title, MAX_TITLE_CHARS), body, "high" if kind in _HIGH else "default"


def shown_url(url: str) -> str:
    """A URL fit for a log line: no user:password, no query string (webhook URLs often carry a token)."""
    parts = urlsplit(url)
    host = f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname or ""
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


async def _post(url: str, body: bytes, headers: Mapping[str, str]) -> str:
    """POST ``body``; "" for a 2xx answer, else what went wrong (no redirect is followed)."""
    import aiohttp  # the daemon has it (the dashboard); the CLI never gets here

    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=body, headers=dict(headers), allow_redirects=False) as resp,
        ):
            return "" if 200 <= resp.status < 300 else f"POST {shown_url(url)} -> {resp.status}"
    except aiohttp.ClientError as exc:
        return f"POST {shown_url(url)} failed: {type(exc).__name__}"


async def send_json(hook: HookConfig, payload: Mapping[str, Any]) -> str:
    """POST ``payload`` as JSON to ``hook.url`` with the hook's headers; "" when the server answered 2xx."""
    headers = {"Content-Type": "application/json"} | dict(hook.headers)
    return await _post(hook.url, json.dumps(payload).encode(), headers)


async def send_ntfy(hook: HookConfig, payload: Mapping[str, Any]) -> str:
    """POST ``payload``'s message to ``hook.ntfy`` as text; "" when the server answered 2xx."""
    title, body, priority = message(payload)
    headers = {"Title": title, "Priority": priority, "Content-Type": "text/plain; charset=utf-8"}
    if (tag := _TAGS.get(str(payload.get("kind")))) is not None:
        headers["Tags"] = tag
    return await _post(hook.ntfy, body.encode(), headers | dict(hook.headers))


def email_message(hook: HookConfig, payload: Mapping[str, Any], host: str) -> EmailMessage:
    """The message an email hook sends for ``payload``: From (``hook.email.sender`` or foss-supervisor@``host``),
    To, Subject ``[host] title``, Date, Message-ID, X-Priority for the high ones, the body as text."""
    # the email package (13 modules) only for a config that mails: not in every daemon's start
    from email.message import EmailMessage
    from email.utils import formatdate, make_msgid

    mail = hook.email
    assert mail is not None
    title, body, priority = message(payload)
    msg = EmailMessage()
    msg["From"] = mail.sender or f"foss-supervisor@{host}"
    msg["To"] = ", ".join(mail.to)
    # "=?" would start an RFC 2047 encoded word, which the email package decodes, CR LF and all, into the header
    msg["Subject"] = f"[{_line(host, 64)}] {title}".replace("=?", "= ?")
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=host or None)
    if priority == "high":
        msg["X-Priority"] = "1"
    msg.set_content(body)
    return msg


async def send_email(hook: HookConfig, payload: Mapping[str, Any], host: str) -> str:
    """Mail ``payload``'s message (:func:`email_message`) to ``hook.email.to``; "" when the SMTP server
    accepted it for every recipient."""
    import aiosmtplib

    mail = hook.email
    assert mail is not None
    msg = email_message(hook, payload, host)
    tls = {"auto": (None, False), "starttls": (True, False), "implicit": (False, True), "none": (False, False)}
    start_tls, use_tls = tls[mail.tls]
    try:
        refused, _ = await aiosmtplib.send(
            msg,
            hostname=mail.host,
            port=mail.port,
            username=mail.username or None,
            password=mail.password or None,
            start_tls=start_tls,
            use_tls=use_tls,
            timeout=hook.timeout_s,
        )
    except aiosmtplib.SMTPException as exc:
        return f"SMTP {mail.host}:{mail.port}: {_line(exc, 300)}"
    if refused:
        return f"SMTP {mail.host}:{mail.port} refused {', '.join(sorted(refused))}"
    return ""
