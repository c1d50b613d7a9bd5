"""When a scheduled pipeline is overdue (its timer or cron time went by, plus a grace, with no run), and the
service's view of it: paused pipelines are not overdue, and neither is one whose run just ended."""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import pytest

from foss_supervisor.config import parse_config
from foss_supervisor.core.events import EventBus
from foss_supervisor.pipeline.engine.schedule import GRACE_S, next_due, overdue_reason
from foss_supervisor.pipeline.engine.service import PipelineService

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def test_a_timer_is_overdue_one_grace_after_its_interval() -> None:
    assert next_due(300, None, T0) == T0 + 300
    assert overdue_reason(300, None, T0, T0 - 10, T0 + 300 + GRACE_S) is None
    reason = overdue_reason(300, None, T0, T0 - 10, T0 + 300 + GRACE_S + 5)
    assert reason is not None and reason.startswith(f"overdue by {GRACE_S + 5:.0f} s (every 300 s; last run ")


def test_the_reference_is_the_daemon_start_when_it_is_later() -> None:
    # the last run is a day old, but the daemon started a minute ago: not overdue for the time it was down
    assert overdue_reason(300, None, T0 - 86_400, T0 - 60, T0) is None
    reason = overdue_reason(300, None, None, T0, T0 + 300 + GRACE_S + 1)
    assert reason is not None and "no run since the daemon started" in reason


def test_cron_is_overdue_after_the_time_it_names() -> None:
    start = datetime.datetime(2026, 1, 1, 10, 0, 30).astimezone().timestamp()
    due = next_due(0, "*/15 * * * *", start)
    assert due is not None and datetime.datetime.fromtimestamp(due).minute == 15
    assert overdue_reason(0, "*/15 * * * *", start, start, due + GRACE_S - 1) is None
    reason = overdue_reason(0, "*/15 * * * *", start, start, due + GRACE_S + 30)
    assert reason is not None and "cron '*/15 * * * *'" in reason


def test_timer_and_cron_together_take_the_earlier_time() -> None:
    assert next_due(60, "0 * * * *", T0) == T0 + 60


def test_no_timed_schedule_is_never_overdue() -> None:
    assert next_due(0, None, T0) is None
    assert overdue_reason(0, None, None, T0, T0 + 10 * 86_400) is None


@pytest.fixture
def service(tmp_path: Path) -> PipelineService:
    text = (
        f"state_dir: {tmp_path / 'state'}\n"
        "pipelines:\n"
        "  orders: {every: 1s}\n"
        f"  trips: {{on_new_files: true, landing: {tmp_path / 'trips'}}}\n"
    )
    config = parse_config(text, tmp_path / "config.yaml", {})
    return PipelineService(config, EventBus())


def test_the_service_names_overdue_pipelines_but_not_paused_ones(service: PipelineService) -> None:
    later = time.time() + 1 + GRACE_S + 5
    overdue = service.overdue(later)
    assert list(overdue) == ["orders"]  # trips runs on new files only: nothing to be late for
    assert "every 1 s" in overdue["orders"]
    assert service.overdue(time.time()) == {}
    service.set_paused("orders", True)
    assert service.overdue(later) == {}
    service.set_paused("orders", False)
    assert list(service.overdue(later)) == ["orders"]
