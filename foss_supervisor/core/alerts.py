"""Alerts as incidents: one per stable key while its condition holds, told once, again after a quiet period,
and once more when it clears. A pure state machine (:class:`AlertBook`), persisted as small JSON.

Each evaluation hands :meth:`AlertBook.observe` the conditions that hold now, ``{key: Condition}`` (keys are
stable names such as ``objective:freshness:table:gold.daily_revenue`` or ``program:api:fatal``):

- a key that holds and has no open incident opens one (a new ``id``) and is told (``alert_firing``), unless
  it is silenced: then it opens untold, and is told once the silence ends if it still holds;
- an open incident still holding is told again (``alert_firing``, ``repeat: true``) once ``renotify_after_s``
  went by since it was last told, unless it was acknowledged or is silenced;
- an open incident whose key no longer holds closes; it is told ``alert_resolved`` exactly when it was told
  firing at least once (a silenced incident that cleared before anyone heard of it stays quiet).

So a key has at most one open incident, a resolved notice always follows a firing one of the same incident,
and a flapping condition re-opens a new incident (with a new id) each time it comes back. ``ack`` stops the
repeats of one incident; ``silence`` quiets a key (open or not yet) until a time. Bounded: at most
:data:`MAX_OPEN` open incidents (more conditions are refused, counted in ``dropped``), :data:`MAX_CLOSED`
closed ones kept for the list, :data:`MAX_SILENCES` silences.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["MAX_CLOSED", "MAX_OPEN", "MAX_SILENCES", "AlertBook", "Condition", "Incident", "Notice"]

MAX_OPEN = 1000
MAX_CLOSED = 200
MAX_SILENCES = 1000


@dataclass(frozen=True, slots=True)
class Condition:
    """Why a key holds now: ``rule`` (objective, fatal, backoff, pipeline_failed, quality), ``subject`` (the
    graph node id it is about: ``program:api``, ``table:gold.daily_revenue``) and a one-line ``summary``."""

    rule: str
    subject: str
    summary: str


@dataclass(slots=True)
class Incident:
    """One incident; times are Unix seconds on the supervisor's clock."""

    id: int
    key: str
    rule: str
    subject: str
    summary: str
    opened_at: float
    told_at: float | None = None  # when it was last told firing (None: never)
    notices: int = 0  # firing notices sent
    acked: bool = False
    closed_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"state": "resolved" if self.closed_at is not None else "firing"}


@dataclass(frozen=True, slots=True)
class Notice:
    """What to tell: ``kind`` is ``alert_firing`` or ``alert_resolved`` (the hook kinds), ``repeat`` for a
    re-notification, ``incident`` the incident's :meth:`Incident.to_dict` at that moment."""

    kind: str
    repeat: bool
    incident: dict[str, Any]


@dataclass
class AlertBook:
    """The open incidents, the last closed ones and the silences; see the module for the rules."""

    open: dict[str, Incident] = field(default_factory=dict)
    closed: deque[Incident] = field(default_factory=lambda: deque(maxlen=MAX_CLOSED))
    silences: dict[str, float] = field(default_factory=dict)  # key -> silenced until
    next_id: int = 1
    dropped: int = 0
    changes: int = 0  # grows with every change of what is kept (a caller saves when it moved)

    def _silenced(self, key: str, now: float) -> bool:
        return self.silences.get(key, float("-inf")) > now

    def observe(self, holding: Mapping[str, Condition], now: float, renotify_after_s: float) -> list[Notice]:
        """Reconcile with the conditions that hold at ``now``; returns the notices to send, in order."""
        notices: list[Notice] = []
        for key in [k for k in self.open if k not in holding]:
            incident = self.open.pop(key)
            incident.closed_at = now
            self.changes += 1
            self.closed.append(incident)
            if incident.notices:
                notices.append(Notice("alert_resolved", False, incident.to_dict()))
        for key, cond in sorted(holding.items()):
            if key not in self.open:
                if len(self.open) >= MAX_OPEN:
                    self.dropped += 1
                    continue
                self.open[key] = Incident(self.next_id, key, cond.rule, cond.subject, cond.summary, now)
                self.next_id += 1
                self.changes += 1
            incident = self.open[key]
            if self._silenced(key, now):
                continue
            due = incident.told_at is None or (not incident.acked and now - incident.told_at >= renotify_after_s)
            if due:
                repeat = incident.told_at is not None
                incident.told_at, incident.notices = now, incident.notices + 1
                incident.summary = cond.summary  # as of this notice (between notices it stays: no rewrite per tick)
                self.changes += 1
                notices.append(Notice("alert_firing", repeat, incident.to_dict()))
        for key in [k for k, until in self.silences.items() if until <= now]:
            del self.silences[key]
            self.changes += 1
        return notices

    def ack(self, incident_id: int) -> Incident:
        """Acknowledge an open incident (no more repeats; its resolved notice still comes). KeyError if none."""
        for incident in self.open.values():
            if incident.id == incident_id:
                incident.acked = True
                self.changes += 1
                return incident
        raise KeyError(incident_id)

    def silence(self, key: str, until: float) -> None:
        """Quiet ``key`` until ``until`` (Unix seconds); a later call replaces it. ValueError past MAX_SILENCES."""
        if key not in self.silences and len(self.silences) >= MAX_SILENCES:
            raise ValueError(f"at most {MAX_SILENCES} silences")
        self.silences[key] = until
        self.changes += 1

    def unsilence(self, key: str) -> None:
        """Lift ``key``'s silence now (an incident that still holds is told at the next evaluation). KeyError if
        ``key`` is not silenced."""
        del self.silences[key]
        self.changes += 1

    def listing(self, now: float) -> dict[str, Any]:
        """``{"open": [incident...], "closed": [newest first], "silences": [{"key", "until"}], "dropped"}``; an
        incident also says ``silenced``."""
        return {
            "open": [i.to_dict() | {"silenced": self._silenced(i.key, now)} for i in self.open.values()],
            "closed": [i.to_dict() | {"silenced": False} for i in reversed(self.closed)],
            "silences": [{"key": k, "until": u} for k, u in sorted(self.silences.items()) if u > now],
            "dropped": self.dropped,
        }

    def dumps(self, **more: Any) -> str:
        """The book as JSON (what :meth:`loads` reads); ``more`` are kept beside it (a caller's own keys)."""
        return json.dumps(
            {
                **more,
                "version": 1,
                "next_id": self.next_id,
                "open": [asdict(i) for i in self.open.values()],
                "closed": [asdict(i) for i in self.closed],
                "silences": self.silences,
            }
        )

    @classmethod
    def loads(cls, text: str) -> AlertBook:
        """A book from :meth:`dumps`' JSON; ValueError (or KeyError, TypeError) for anything else."""
        return cls.from_data(json.loads(text))

    @classmethod
    def from_data(cls, data: Any) -> AlertBook:
        """A book from :meth:`dumps`' JSON, parsed; ValueError (or KeyError, TypeError) for anything else."""
        if not isinstance(data, dict) or data.get("version") != 1:
            raise ValueError("not an alert book of version 1")
        book = cls(next_id=int(data["next_id"]))
        for raw in data["open"][:MAX_OPEN]:
            incident = _incident(raw)
            book.open[incident.key] = incident
        book.closed.extend(_incident(raw) for raw in data["closed"][-MAX_CLOSED:])
        silences = data["silences"]
        if not isinstance(silences, dict):
            raise ValueError("silences must be a mapping")
        book.silences = {str(k): float(v) for k, v in list(silences.items())[:MAX_SILENCES]}
        book.next_id = max([book.next_id, *(i.id + 1 for i in [*book.open.values(), *book.closed])])
        return book


def _incident(raw: Any) -> Incident:
    if not isinstance(raw, dict):
        raise ValueError("an incident must be a mapping")
    told, closed = raw.get("told_at"), raw.get("closed_at")
    return Incident(
        id=int(raw["id"]),
        key=str(raw["key"])[:512],
        rule=str(raw["rule"])[:64],
        subject=str(raw["subject"])[:512],
        summary=str(raw["summary"])[:1024],
        opened_at=float(raw["opened_at"]),
        told_at=None if told is None else float(told),
        notices=int(raw.get("notices", 0)),
        acked=bool(raw.get("acked", False)),
        closed_at=None if closed is None else float(closed),
    )
