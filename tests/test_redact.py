"""Secrets in command lines are never shown: each way a secret is passed, as argv and inside sh -c."""

from __future__ import annotations

import pytest

from foss_supervisor.redact import redact_argv, redact_text


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["app", "--password=hunter2"], ["app", "--password=***"]),
        (["app", "--api-token", "abc123", "--port", "80"], ["app", "--api-token", "***", "--port", "80"]),
        (["env", "DB_PASSWORD=hunter2", "app"], ["env", "DB_PASSWORD=***", "app"]),
        (["psql", "postgres://app:hunter2@db:5432/x"], ["psql", "postgres://app:***@db:5432/x"]),
        (["sh", "-c", "exec app --secret-key hunter2 --port 80"], ["sh", "-c", "exec app --secret-key *** --port 80"]),
        (["sh", "-c", "AWS_SECRET_ACCESS_KEY='a b' app"], ["sh", "-c", "AWS_SECRET_ACCESS_KEY=*** app"]),
        (["app", "--keyboard-layout=us", "--port", "80"], ["app", "--keyboard-layout=***", "--port", "80"]),
        (["app", "--verbose", "file.txt"], ["app", "--verbose", "file.txt"]),
    ],
)
def test_secrets_in_command_lines_are_replaced(argv: list[str], shown: list[str]) -> None:
    assert redact_argv(argv) == shown


def test_plain_words_and_urls_without_passwords_are_kept() -> None:
    text = "curl https://example.org/path?q=1 --retry 3 fruit=banana"
    assert redact_text(text) == text
