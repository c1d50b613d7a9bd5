"""Whether a program is as wanted: the one rule ``status`` (its ``*`` and exit code 3), ``why`` and the
health verdict's readers share. Stdlib only, and light: the CLI's quick ``status`` path imports it."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (the quick status path)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

__all__ = ["SETTLED_STOPPED", "as_wanted"]

#: the states a program wanted stopped may settle in (a job that ran to its end is EXITED)
SETTLED_STOPPED = ("STOPPED", "EXITED")


def as_wanted(p: Mapping[str, Any]) -> bool:
    """Whether a program (a ``status`` reply's entry: ``state`` and ``wanted``) is in the state it should be in:
    RUNNING when wanted running, STOPPED or EXITED when wanted stopped."""
    return bool(p["state"] == "RUNNING" if p["wanted"] == "running" else p["state"] in SETTLED_STOPPED)
