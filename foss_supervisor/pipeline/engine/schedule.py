"""When a scheduled pipeline is overdue: a time its timer (``every:``) or ``cron:`` names went by, plus
a grace, with no run since.

A run (or a skipped run: "nothing changed" is the schedule working) that started or finished after
the reference time satisfies the schedule. The reference is the later of the last run's start and end
and the daemon's start, so a daemon that was down is not "overdue" for the time it was not running.
Pipelines with no timed schedule (only ``on_new_files`` or ``after:``), paused ones and ones running
now are never overdue.
"""

from __future__ import annotations

import datetime

__all__ = ["GRACE_S", "next_due", "overdue_reason"]

GRACE_S = 60.0  # a busy host, a slow previous run, a clock step: a minute before a late run is news


def next_due(every_s: float, cron: str | None, since: float) -> float | None:
    """The first time (epoch s) after ``since`` that the schedule names, or None without a timed schedule.

    With both a timer and a cron expression, the earlier of the two.
    """
    due: list[float] = []
    if every_s > 0:
        due.append(since + every_s)
    if cron:
        from croniter import croniter  # only configs with a cron schedule pay for the import

        start = datetime.datetime.fromtimestamp(since).astimezone()
        due.append(float(croniter(cron, start).get_next(float)))
    return min(due) if due else None


def overdue_reason(
    every_s: float,
    cron: str | None,
    last_run: float | None,
    daemon_started: float,
    now: float,
) -> str | None:
    """Why a pipeline (not paused, not running) is overdue at ``now``, or None when it is not.

    ``last_run`` is the later of its last run's start and end (epoch s), None when it never ran.
    """
    since = max(last_run or 0.0, daemon_started)
    due = next_due(every_s, cron, since)
    if due is None or now <= due + GRACE_S:
        return None
    late = now - due
    schedule = f"every {every_s:g} s" if every_s > 0 and not cron else (f"cron {cron!r}" if cron else "")
    if every_s > 0 and cron:
        schedule = f"every {every_s:g} s and cron {cron!r}"
    last = (
        "no run since the daemon started"
        if last_run is None or last_run < daemon_started
        else (f"last run {datetime.datetime.fromtimestamp(last_run).astimezone():%Y-%m-%d %H:%M:%S %Z}")
    )
    return f"overdue by {late:.0f} s ({schedule}; {last})"
