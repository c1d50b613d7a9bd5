"""Hooks: which events they hear, how they are configured, and what their log lines keep of a webhook's URL
(real deliveries from a real daemon: tests/e2e/test_hooks_daemon.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from foss_supervisor.alerting.hooks import event_payload
from foss_supervisor.base.pipelinestates import RunStatus
from foss_supervisor.base.processstates import Health
from foss_supervisor.base.processstates import ProcessState as S
from foss_supervisor.config import EVENT_KINDS, parse_config
from foss_supervisor.core.events import AlertNotice, HealthChanged, StateChanged
from foss_supervisor.errors import ConfigError
from foss_supervisor.pipeline.events import RunFinished


def _alert(notice: str) -> AlertNotice:
    return AlertNotice(
        notice=notice, id=3, key="program:api:fatal", rule="fatal", subject="program:api", summary="x", opened_at=1.0
    )


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        (StateChanged(name="a", old=S.BACKOFF, new=S.FATAL, reason="gave up"), "program_fatal"),
        (StateChanged(name="a", old=S.RUNNING, new=S.BACKOFF, exit_code=1), "program_exited"),
        (StateChanged(name="a", old=S.RUNNING, new=S.EXITED, exit_code=0), "program_exited"),
        (StateChanged(name="a", old=S.RUNNING, new=S.STOPPING), None),
        (StateChanged(name="a", old=S.STARTING, new=S.RUNNING), None),
        (HealthChanged(name="a", old=Health.HEALTHY, new=Health.UNHEALTHY, detail="GET -> 500"), "program_unhealthy"),
        (HealthChanged(name="a", old=Health.UNKNOWN, new=Health.HEALTHY), None),
        (
            RunFinished(at=1.0, run_id="r1", pipeline="orders", status=RunStatus.FAILED, duration_s=2.0, error="x"),
            "pipeline_failed",
        ),
        (
            RunFinished(
                at=1.0, run_id="r1", pipeline="orders", status=RunStatus.SUCCEEDED_WITH_WARNINGS, duration_s=2.0
            ),
            "pipeline_succeeded",
        ),
        (_alert("alert_firing"), "alert_firing"),
        (_alert("alert_resolved"), "alert_resolved"),
    ],
)
def test_each_event_kind(event: object, kind: str | None) -> None:
    payload = event_payload(event)
    assert (payload or {}).get("kind") == kind
    if payload is not None:
        json.dumps(payload)  # plain data only


def test_hooks_config_and_its_refusals() -> None:
    env = {"TOKEN": "s3cret"}
    cfg = parse_config(
        "hooks:\n"
        "  pager: {on: [program_fatal], url: 'https://x/h', headers: {Authorization: 'Bearer ${TOKEN}'}, retries: 1}\n"
        "  all-of-it: {on: all, command: [notify, --x], select: [web], timeout: 2s}\n",
        Path("/etc/fs/c.yaml"),
        env,
    )
    pager, every = cfg.hooks
    assert pager.events == {"program_fatal"} and pager.headers == {"Authorization": "Bearer s3cret"}
    assert pager.retries == 1 and pager.timeout_s == 10.0
    assert every.events == frozenset(EVENT_KINDS) and every.command == ("notify", "--x") and every.select == ("web",)
    with pytest.raises(ConfigError) as info:
        parse_config(
            "hooks:\n  a: {on: [nope], url: 'http://x'}\n  b: {on: all}\n  c: {on: all, url: 'ftp://x'}\n",
            Path("/etc/fs/c.yaml"),
            {},
        )
    found = {(e.key, e.line) for e in info.value.errors}
    assert found == {("hooks.a.on", 2), ("hooks.b", 3), ("hooks.c.url", 4)}


def test_a_webhook_url_is_logged_without_its_credentials() -> None:
    from foss_supervisor.alerting.senders import shown_url

    assert shown_url("https://user:pw@hooks.example:8443/x?token=s3cret") == "https://hooks.example:8443/x"
