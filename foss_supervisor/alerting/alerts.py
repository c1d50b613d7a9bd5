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
from dataclasses import dataclass, field
from typing import Any

from foss_supervisor.base.jsonable import dataclass_to_json
from foss_supervisor.base.jsontext import parse_json

__all__ = ["MAX_CLOSED", "MAX_OPEN", "MAX_SILENCES", "AlertBook", "Condition", "Incident", "Notice", "alert_key"]

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
        return dataclass_to_json(self) | {"state": "resolved" if self.closed_at is not None else "firing"}


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
    unreadable: int = 0  # incidents and silences of the saved book that were not read back (from_data)
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
        """Quiet ``key`` until ``until`` (Unix seconds); a later call replaces it. ValueError past MAX_SILENCES or
        for a key that is not :func:`alert_key`'s."""
        alert_key(key)
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
        """``{"open": [incident...], "closed": [newest first], "silences": [{"key", "until"}], "dropped",
        "unreadable"}`` (``unreadable``: entries of the saved book not read back at start); an
        incident also says ``silenced``."""
        return {
            "open": [i.to_dict() | {"silenced": self._silenced(i.key, now)} for i in self.open.values()],
            "closed": [i.to_dict() | {"silenced": False} for i in reversed(self.closed)],
            "silences": [{"key": k, "until": u} for k, u in sorted(self.silences.items()) if u > now],
            "dropped": self.dropped,
            "unreadable": self.unreadable,
        }

    def dumps(self, **more: Any) -> str:
        """The book as JSON (what :meth:`loads` reads); ``more`` are kept beside it (a caller's own keys)."""
        return json.dumps(
            {
                **more,
                "version": 1,
                "next_id": self.next_id,
                "open": [dataclass_to_json(i) for i in self.open.values()],
                "closed": [dataclass_to_json(i) for i in self.closed],
                "silences": self.silences,
            }
        )

    @classmethod
    def loads(cls, text: str) -> AlertBook:
        """A book from :meth:`dumps`' JSON; ValueError (or KeyError, TypeError) for anything else."""
        return cls.from_data(parse_json(text))

    @classmethod
    def from_data(cls, data: Any) -> AlertBook:
        """A book from :meth:`dumps`' JSON, parsed. Each incident and silence is read on its own: one that is
        not as :meth:`dumps` writes it (a key that is not :func:`alert_key`'s, a time that is not finite, a
        wrong type) is left out and counted in ``unreadable``, the rest kept. ValueError when ``data`` is not
        a book of version 1 at all."""
        if not isinstance(data, dict) or data.get("version") != 1:
            raise ValueError("not an alert book of version 1")
        book = cls()
        for raw in _list(data.get("open"))[:MAX_OPEN]:
            if (incident := _read(_incident, raw, book)) is not None and incident.key not in book.open:
                book.open[incident.key] = incident
        book.closed.extend(i for raw in _list(data.get("closed"))[-MAX_CLOSED:] if (i := _read(_incident, raw, book)))
        silences = data.get("silences")
        for key, until in list(silences.items() if isinstance(silences, dict) else [])[:MAX_SILENCES]:
            if (silence := _read(_silence, (key, until), book)) is not None:
                book.silences[silence[0]] = silence[1]
        if not isinstance(silences, dict) and silences is not None:
            book.unreadable += 1
        next_id = _read(lambda raw: int(_finite(raw)), data.get("next_id"), book) or 1
        book.next_id = max([next_id, *(i.id + 1 for i in [*book.open.values(), *book.closed])])
        return book


def alert_key(key: Any) -> str:
    """``key`` as an alert's key: 1 to 512 printable characters, not all spaces (no control, format or
    separator character but the space, no lone surrogate), what the rules make and an operator types.
    ValueError otherwise."""
    if not isinstance(key, str) or not 1 <= len(key) <= 512 or not key.isprintable() or not key.strip():
        raise ValueError(f"an alert key is 1 to 512 printable characters, got {key!r:.80}")
    return key


def _list(raw: Any) -> list[Any]:
    return raw if isinstance(raw, list) else []


def _finite(raw: Any) -> float:
    value = float(raw)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    return value


def _read(read: Any, raw: Any, book: AlertBook) -> Any:
    """``read(raw)``, or None (counted in ``book.unreadable``) when it is not what the book saved."""
    try:
        return read(raw)
    except (ValueError, KeyError, TypeError, OverflowError):
        book.unreadable += 1
        return None


def _silence(pair: tuple[Any, Any]) -> tuple[str, float]:
    return alert_key(pair[0]), _finite(pair[1])


def _text(raw: Any, limit: int) -> str:
    """Saved text as shown again: cut to ``limit``, what UTF-8 cannot hold replaced."""
    return str(raw)[:limit].encode("utf-8", "replace").decode("utf-8")


def _incident(raw: Any) -> Incident:
    if not isinstance(raw, dict):
        raise ValueError("an incident must be a mapping")
    told, closed = raw.get("told_at"), raw.get("closed_at")
    return Incident(
        id=int(_finite(raw["id"])),
        key=alert_key(raw["key"]),
        rule=_text(raw["rule"], 64),
        subject=_text(raw["subject"], 512),
        summary=_text(raw["summary"], 1024),
        opened_at=_finite(raw["opened_at"]),
        told_at=None if told is None else _finite(told),
        notices=int(_finite(raw.get("notices", 0))),
        acked=bool(raw.get("acked", False)),
        closed_at=None if closed is None else _finite(closed),
    )
