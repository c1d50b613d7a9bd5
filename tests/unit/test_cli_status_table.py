"""``status``'s table: a star marks every row not in its wanted state, programs and services alike, and the
footnote explains it whenever a star is shown; the exit code counts the programs only (supervisorctl's 3)."""

from __future__ import annotations

from typing import Any

import pytest

from foss_supervisor.cli.terminal import EXIT_NOT_AS_WANTED, EXIT_OK, print_status

FOOTNOTE = "* not in its wanted state"


def row(name: str, state: str, wanted: str = "running") -> dict[str, Any]:
    return {"name": name, "state": state, "wanted": wanted, "health": "-", "pid": 42, "uptime_s": 5.0, "reason": ""}


def reply(programs: list[dict[str, Any]], services: list[dict[str, Any]]) -> dict[str, Any]:
    daemon = {"version": "0.1.0", "pid": 1, "phase": "ready", "uptime_s": 9.0, "dashboard_url": "http://x/"}
    return {"daemon": daemon, "programs": programs, "services": services}


@pytest.mark.parametrize(
    ("programs", "services", "code", "starred"),
    [
        ([row("a", "RUNNING")], [row("@pipeline-worker", "RUNNING")], EXIT_OK, False),
        ([row("a", "RUNNING")], [row("@pipeline-worker", "STARTING")], EXIT_OK, True),
        ([row("a", "BACKOFF")], [row("@dashboard", "RUNNING")], EXIT_NOT_AS_WANTED, True),
        ([row("a", "STOPPED", wanted="stopped")], [], EXIT_OK, False),
    ],
)
def test_a_star_is_always_explained_and_only_programs_set_the_exit_code(
    programs: list[dict[str, Any]], services: list[dict[str, Any]], code: int, starred: bool, capsys: Any
) -> None:
    assert print_status(reply(programs, services), as_json=False) == code
    out = capsys.readouterr().out
    assert ("*" in out.replace(FOOTNOTE, "")) is starred
    assert (FOOTNOTE in out) is starred
