"""How many examples a property test draws: all of them in the test command, a quarter in the quick first step.

The README's test command runs every property at full strength. The first step of ``.ci/run`` runs
``tests/unit`` with ``--quick-properties`` (the ``quick`` hypothesis profile, registered in tests/conftest.py):
each property then draws a quarter of its examples, so that a broken change fails within a minute; the
same properties draw all of theirs a few minutes later in the same run.
"""

from __future__ import annotations

__all__ = ["FULL_EXAMPLES", "QUICK_EXAMPLES", "examples"]

FULL_EXAMPLES = 100  # hypothesis's own default: a property that names no count draws this many
QUICK_EXAMPLES = 25  # the quick profile's count, a quarter of it


def examples(full: int) -> int:
    """The examples a property that draws ``full`` at full strength draws in this run: ``full``, or under the
    quick profile the same quarter of it (never fewer than 10, nor more than ``full``). Read when the test
    module is imported, after tests/conftest.py loaded the run's profile."""
    from hypothesis import settings

    share = settings.default.max_examples
    if share >= FULL_EXAMPLES:
        return full
    return max(min(full, 10), full * share // FULL_EXAMPLES)
