"""Whether a program is as wanted: the one rule ``status`` (its ``*`` and exit code 3), ``why`` and the
health verdict's readers share. Stdlib only and the state words, light: the CLI's quick ``status`` path imports it."""

from __future__ import annotations

from foss_supervisor.base.processstates import ProcessState

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (the quick status path)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

__all__ = ["SETTLED_STOPPED", "as_wanted"]

#: the states a program wanted stopped may settle in (a job that ran to its end is EXITED)
SETTLED_STOPPED = (ProcessState.STOPPED, ProcessState.EXITED)


def as_wanted(p: Mapping[str, Any]) -> bool:
    """Whether a program (a ``status`` reply's entry: ``state`` and ``wanted``) is in the state it should be in:
    RUNNING when wanted running, STOPPED or EXITED when wanted stopped."""
    return bool(p["state"] == ProcessState.RUNNING if p["wanted"] == "running" else p["state"] in SETTLED_STOPPED)
