"""Hooks for people: the message text of every event kind, an ntfy-style push to a real HTTP server and email
through a real SMTP server (aiosmtpd, with AUTH), both through the hook dispatcher as the daemon runs it."""

from __future__ import annotations

import asyncio
import email
import email.policy
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from helpers import examples, free_port
from hypothesis import given, settings
from hypothesis import strategies as st

from foss_supervisor.alerting.hooks import HookDispatcher
from foss_supervisor.alerting.senders import MAX_BODY_CHARS, MAX_TITLE_CHARS, email_message, message
from foss_supervisor.base.redact import Redactor
from foss_supervisor.config import EVENT_KINDS, parse_config
from foss_supervisor.core.events import HookDelivered

FIRING = {
    "kind": "alert_firing",
    "id": 3,
    "key": "program:api:fatal",
    "rule": "fatal",
    "subject": "program:api",
    "summary": "program api is FATAL",
    "opened_at": 1.0,
    "repeat": False,
    "notices": 1,
    "acked": False,
    "at": 2.0,
    "host": "h1",
}


def _dispatcher(yaml_hooks: str, tmp_path: Path, told: list[HookDelivered] | None = None) -> HookDispatcher:
    cfg = parse_config(f"state_dir: {tmp_path}\nprograms: {{}}\nhooks:\n{yaml_hooks}", tmp_path / "c.yaml", {})
    report = (lambda event: None) if told is None else told.append
    return HookDispatcher(lambda: cfg.hooks, lambda: ([], {}, {}), Redactor(), report=report)


#: any text, with the encoded-word opener RFC 2047 gives (``=?utf-8?q?=0D=0ABcc:_x?=``) among its pieces
_ANY_TEXT = st.lists(
    st.text(max_size=300) | st.sampled_from(["=?utf-8?q?=0D=0ABcc:_x@y?=", "\r\nBcc: x@y", "=?", "?="]), max_size=10
).map("".join)


@settings(max_examples=examples(300), deadline=None)
@given(
    kind=st.sampled_from(sorted(EVENT_KINDS)),
    fields=st.dictionaries(
        st.sampled_from(["key", "summary", "program", "pipeline", "state", "reason", "error", "step", "status"]),
        _ANY_TEXT,
    ),
)
def test_every_message_is_one_bounded_title_line_and_a_bounded_body(kind: str, fields: dict[str, str]) -> None:
    """Whatever a payload holds (newlines, escapes, megabytes), the title is one printable line of at most
    MAX_TITLE_CHARS that an email header takes (no header injection), the body is bounded, the priority known."""
    title, body, priority = message({"kind": kind, **fields})
    assert len(title) <= MAX_TITLE_CHARS and title.isprintable()
    assert len(body) <= MAX_BODY_CHARS
    assert priority in ("high", "default")
    hook = parse_config(
        "programs: {}\nhooks:\n  m: {on: all, email: {to: [ops@example.com]}}\n", Path("/c.yaml"), {}
    ).hooks[0]
    raw = email.message_from_bytes(bytes(email_message(hook, {"kind": kind, **fields}, "h1")))
    assert sorted(raw.keys()) == sorted(
        [
            "From",
            "To",
            "Subject",
            "Date",
            "Message-ID",
            "Content-Type",
            "Content-Transfer-Encoding",
            "MIME-Version",
            *(["X-Priority"] if priority == "high" else []),
        ]
    )  # no header injected
    assert raw["To"] == "ops@example.com"


def test_the_titles_a_person_reads() -> None:
    assert message(FIRING)[0] == "FIRING program:api:fatal"
    assert message(FIRING | {"repeat": True})[0] == "FIRING program:api:fatal (again)"
    assert message(FIRING | {"kind": "alert_resolved"})[:3:2] == ("RESOLVED program:api:fatal", "default")
    fatal = {"kind": "program_fatal", "program": "api", "state": "FATAL", "reason": "exited 1 three times"}
    assert message(fatal)[0] == "program api FATAL" and message(fatal)[1].startswith("exited 1 three times\n")
    failed = {"kind": "pipeline_failed", "pipeline": "orders", "status": "failed", "error": "step clean failed"}
    assert message(failed)[0] == "pipeline orders failed" and message(failed)[2] == "high"


def test_an_ntfy_hook_posts_a_titled_text_message(tmp_path: Path) -> None:
    async def scenario() -> list[tuple[dict[str, str], str]]:
        got: list[tuple[dict[str, str], str]] = []

        async def topic(request: web.Request) -> web.Response:
            got.append((dict(request.headers), await request.text()))
            return web.Response(text="{}")

        app = web.Application()
        app.router.add_post("/alerts-topic", topic)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            hooks = _dispatcher(
                f"  phone: {{on: [alert_firing], ntfy: 'http://127.0.0.1:{port}/alerts-topic',"
                " headers: {Authorization: 'Bearer tk-123'}, retries: 0}\n",
                tmp_path,
            )
            assert await hooks.deliver(hooks._hooks()[0], dict(FIRING)) is True
        finally:
            await runner.cleanup()
        return got

    [(headers, body)] = asyncio.run(scenario())
    assert headers["Title"] == "FIRING program:api:fatal" and headers["Priority"] == "high"
    assert headers["Tags"] == "rotating_light" and headers["Authorization"] == "Bearer tk-123"
    assert body.startswith("program api is FATAL\n\n") and "key: program:api:fatal" in body


class _Inbox:
    """An SMTP server's handler that keeps every message and refuses one recipient."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_RCPT(self, server: Any, session: Session, envelope: Envelope, address: str, options: Any) -> str:
        if address.startswith("nobody@"):
            return "550 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.messages.append((str(envelope.mail_from), list(envelope.rcpt_tos), bytes(envelope.content or b"")))
        return "250 Message accepted"


def _login(server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"alerts", b"s3cret-pw")
    return AuthResult(success=ok, handled=False)  # handled=False: the server answers 235 or 535 itself


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # loopback, a test's own server
def test_an_email_hook_writes_through_a_real_smtp_server_with_auth(tmp_path: Path) -> None:
    inbox, port, told = _Inbox(), free_port(), list[HookDelivered]()
    server = Controller(  # AUTH without TLS: on loopback in a test only (aiosmtpd warns, rightly, elsewhere)
        inbox, hostname="127.0.0.1", port=port, authenticator=_login, auth_require_tls=False, auth_required=True
    )
    server.start()
    try:
        hooks = _dispatcher(
            "  mail: {on: [alert_firing], retries: 0, email: {to: [ops@example.com, oncall@example.com],"
            f" from: foss@host.example, smtp: '127.0.0.1:{port}', tls: none, username: alerts,"
            " password: s3cret-pw}}\n"
            "  wrong: {on: [alert_firing], retries: 0, email: {to: [nobody@example.com],"
            f" smtp: '127.0.0.1:{port}', tls: none, username: alerts, password: s3cret-pw}}}}\n"
            "  badpw: {on: [alert_firing], retries: 0, email: {to: [ops@example.com],"
            f" smtp: '127.0.0.1:{port}', tls: none, username: alerts, password: guess}}}}\n",
            tmp_path,
            told,
        )

        async def deliver_each() -> list[bool]:
            return [await hooks.deliver(h, dict(FIRING)) for h in hooks._hooks()]

        assert asyncio.run(deliver_each()) == [True, False, False]
    finally:
        server.stop()
    [(sender, recipients, raw)] = inbox.messages
    assert sender == "foss@host.example" and recipients == ["ops@example.com", "oncall@example.com"]
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert mail["Subject"] == f"[{hooks.host}] FIRING program:api:fatal"
    assert mail["To"] == "ops@example.com, oncall@example.com" and mail["X-Priority"] == "1"
    assert "program api is FATAL" in mail.get_content()
    errors = {t.hook: t.error for t in told}
    assert errors["mail"] == "" and "550" in errors["wrong"] and "nobody@example.com" in errors["wrong"]
    assert "535" in errors["badpw"]  # the server's refusal of the password, said as the server said it


def test_an_email_password_is_a_secret_the_daemon_redacts(tmp_path: Path) -> None:
    """Written as ``${SMTP_PASSWORD}`` (interpolated from the daemon's environment), the password reaches the
    hook and is redacted wherever the daemon's data leaves it, in a reply or in any text."""
    cfg = parse_config(
        f"state_dir: {tmp_path}\nprograms: {{}}\nhooks:\n  mail: {{on: all, email: {{to: [a@b.example],"
        ' username: alerts, password: "${SMTP_PASSWORD}"}}\n',
        tmp_path / "c.yaml",
        {"SMTP_PASSWORD": "pw-7f3a9c1e"},
    )
    assert cfg.hooks[0].email is not None and cfg.hooks[0].email.password == "pw-7f3a9c1e"
    redactor = Redactor()
    redactor.learn(cfg)
    assert "pw-7f3a9c1e" not in repr(redactor.data(cfg.hooks[0]))
    assert redactor.text("login failed for pw-7f3a9c1e") == "login failed for ***"
