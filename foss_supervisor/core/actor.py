"""Who asked: the actor of the commands a task runs, for audit records and the reasons states give.

A transport sets :data:`ACTOR` for the task that serves one connection (the control server, from the
peer's ``SO_PEERCRED``); everything that runs in that task reads it, down to a program's controller when a
command asks it to stop (``stop requested by uid 1000 via web``). Work the daemon does on its own runs
with the default, :class:`Actor` ``daemon``. Stdlib only.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["ACTOR", "Actor"]


@dataclass(frozen=True, slots=True)
class Actor:
    """``via`` a transport (``control``: the CLI or a tool on the control socket; ``web``: the dashboard) or
    the ``daemon`` itself, with the peer's ``uid`` and ``pid`` when known."""

    via: str = "daemon"
    uid: int | None = None
    pid: int | None = None

    def phrase(self) -> str:
        """`` by uid 1000 via web`` to append to a reason; empty for the daemon itself."""
        if self.via == "daemon":
            return ""
        return f" by uid {self.uid} via {self.via}" if self.uid is not None else f" via {self.via}"


#: the actor of the commands run in this context (a control connection sets it for its task)
ACTOR: ContextVar[Actor] = ContextVar("actor", default=Actor())  # noqa: B039 (Actor is frozen)
