"""The one blocking bounded poll (base/poll.py): the first truthy value, or None once the time is up."""

from __future__ import annotations

from foss_supervisor.base.poll import poll_until


def test_the_first_truthy_value_comes_back_and_no_check_follows_it() -> None:
    answers = iter([0, "", None, "found", "never asked"])
    assert poll_until(lambda: next(answers), 10.0) == "found"
    assert next(answers) == "never asked"


def test_a_condition_that_never_holds_gives_none_after_more_than_one_check() -> None:
    calls: list[int] = []
    assert poll_until(lambda: calls.append(1), 0.05) is None
    assert len(calls) >= 2  # checked at once and again on the deadline
