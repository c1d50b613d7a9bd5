"""One transition table type for every state machine of the house: programs, steps, runs, the daemon's phase.

A table is data: each state maps to the states it may move to; a state missing from the table is final
(no edge leaves it). A transition site asks :meth:`TransitionTable.check`, which raises the one
:class:`~foss_supervisor.errors.IllegalTransitionError` for an edge the table lacks: a bookkeeping bug
turns into a loud failure instead of a wrong word on a page (supervisord's ``_assertInState``, h11's
``_state.py``). Stdlib only.

::

    PHASES = TransitionTable("daemon phase", {Phase.STARTING: {Phase.READY, Phase.STOPPING}, ...})
    PHASES.check(Phase.STARTING, Phase.READY)        # fine
    PHASES.check(Phase.STOPPING, Phase.READY)        # IllegalTransitionError("illegal daemon phase ...")
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping

from foss_supervisor.errors import IllegalTransitionError

__all__ = ["TransitionTable"]

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: `status`'s quick path reads the states
if TYPE_CHECKING:
    from typing import TypeVar

    StateT = TypeVar("StateT", bound=enum.StrEnum)
else:  # at run time the table is a Mapping of StrEnum members (the type variable is for the checker only)
    StateT = enum.StrEnum


class TransitionTable(Mapping[StateT, frozenset[StateT]]):
    """The legal edges of one state machine, read as a mapping ``state -> frozenset of next states``.

    ``machine`` names the machine in errors ("process", "step", "run", "daemon phase"). Every state of the
    enum is a key (a final state maps to the empty set), so ``table[state]`` never raises ``KeyError``.
    Raises ``ValueError`` when an edge names a state of another enum.
    """

    __slots__ = ("_edges", "machine", "states")

    def __init__(self, machine: str, edges: Mapping[StateT, Iterable[StateT]]) -> None:
        if not edges:
            raise ValueError(f"the {machine} table has no edge")
        states = type(next(iter(edges)))
        for old, targets in edges.items():
            wrong = [s for s in (old, *targets) if not isinstance(s, states)]
            if wrong:
                raise ValueError(f"the {machine} table mixes enums: {wrong!r} are not {states.__name__}")
        self.machine = machine
        self.states: type[StateT] = states
        self._edges: dict[StateT, frozenset[StateT]] = {s: frozenset(edges.get(s, ())) for s in states}

    def __getitem__(self, state: StateT) -> frozenset[StateT]:
        return self._edges[state]

    def __iter__(self) -> Iterator[StateT]:
        return iter(self._edges)

    def __len__(self) -> int:
        return len(self._edges)

    def __repr__(self) -> str:
        return f"TransitionTable({self.machine!r}, {len(self.edges())} edges)"

    def allows(self, old: StateT, new: StateT) -> bool:
        """True when ``old -> new`` is an edge of the table."""
        return new in self._edges.get(old, frozenset())

    def check(self, old: StateT, new: StateT) -> None:
        """Return when ``old -> new`` is an edge; raise :class:`IllegalTransitionError` (naming the machine and
        both states) when it is not."""
        if not self.allows(old, new):
            raise IllegalTransitionError(self.machine, str(old), str(new))

    def edges(self) -> frozenset[tuple[StateT, StateT]]:
        """Every edge as an ``(old, new)`` pair."""
        return frozenset((old, new) for old, targets in self._edges.items() for new in targets)

    def final(self) -> frozenset[StateT]:
        """The states no edge leaves."""
        return frozenset(s for s, targets in self._edges.items() if not targets)
