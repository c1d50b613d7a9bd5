"""Small JSON files in ``state_dir`` that outlive the daemon: operator intent and running children.

Written atomically (temporary file, then rename), so a daemon killed mid-write leaves the old
version, never half a file. Every write is checked: a failure (full disk, read-only folder) is
counted in :class:`~foss_supervisor.base.writefailures.WriteFailures` (logged at most once a minute per
file, shown in ``status``) and the file's latest content is written again every
:data:`RETRY_DELAY_S` until it succeeds. What the daemon knows stays in memory meanwhile, so a
failed write never loses an operator's wish.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foss_supervisor.base.atomicfile import atomic_write
from foss_supervisor.base.jsontext import parse_json
from foss_supervisor.base.procinfo import ProcessIdentity
from foss_supervisor.base.writefailures import WriteFailures

__all__ = ["LAST_CONFIG", "Leftover", "StateStore", "last_config", "read_json", "record_config"]

RETRY_DELAY_S = 1.0  # a state file that failed to be written is written again after this long
GONE_WRITE_DELAY_S = 0.5  # a child's exit alone is recorded after this long (or with the next spawn)


#: the config file the last daemon of a state dir ran (an absolute path, one line): what ``restart`` and ``logs``
#: use when the daemon is down and no ``--config`` is given
LAST_CONFIG = "last-config"


def record_config(state_dir: Path, source: Path) -> None:
    """Write ``source`` (made absolute) as the last config of ``state_dir``; raises OSError on failure."""
    atomic_write(state_dir / LAST_CONFIG, f"{source.resolve()}\n", durable=False)


def last_config(state_dir: Path) -> Path | None:
    """The config file the last daemon of ``state_dir`` ran, if recorded and still a file; else None."""
    try:
        text = (state_dir / LAST_CONFIG).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    path = Path(text)
    return path if text and path.is_absolute() and path.is_file() else None


def read_json(path: Path) -> Any:
    """The parsed file, or None when it is missing or not JSON."""
    try:
        return parse_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Leftover:
    """A child a previous daemon recorded: its identity, and the prefix of its processes' spawn tags."""

    identity: ProcessIdentity
    spawn_tag: str | None  # "<instance>/<program>/": every process it started carries a tag under it


def _tag_prefix(tag: object) -> str | None:
    """``<instance>/<program>/`` of a spawn tag ``<instance>/<program>/<n>``: what every spawn and probe
    of that program by that daemon carries; None for a record without a usable tag."""
    if not isinstance(tag, str) or tag.count("/") < 2:
        return None
    return tag.rsplit("/", 1)[0] + "/"


class StateStore:
    """``intent.json``: programs the operator stopped by hand; ``children.json``: live children.

    Each child record is ``{"pid", "start_ticks", "boot_id", "create_time", "tag"}`` (see
    :meth:`ProcessIdentity.as_dict`); a program runs in its own session, so the PID also names the
    process group and session that leftover clean-up ends, and ``tag`` (its spawn tag,
    ``<instance>/<program>/<n>``) finds the processes that left that session. ``write_failures``
    collects the failed writes of this store (and, through the supervisor, of the program logs).
    """

    def __init__(self, state_dir: Path, write_failures: WriteFailures | None = None) -> None:
        self.intent_file = state_dir / "intent.json"
        self.children_file = state_dir / "children.json"
        self.write_failures = write_failures or WriteFailures()
        # each running child's entry of children.json, as JSON text ('"name": {...}'), made once when it is
        # recorded: a write joins them (at 1,000 programs, json.dumps of the whole record on every spawn took
        # ~2.3 ms of the loop, a third of a crash -> restart's own cost; the join takes 0.03 ms)
        self._entries: dict[str, str] = {}
        self._stopped: set[str] | None = None  # read from intent.json at first use, then kept here
        self._stopped_by: dict[str, str] = {}  # who stopped each, and when (intent.json's "by")
        self._write_handle: asyncio.Handle | None = None  # the scheduled children.json write, if any
        self._unwritten: dict[Path, str] = {}  # file -> latest content not yet on disk
        self._retry: asyncio.TimerHandle | None = None

    @property
    def problems(self) -> list[str]:
        """One line per file (state or log) whose last write failed (empty when all are current)."""
        return self.write_failures.problems

    def _write(self, path: Path, text: str) -> bool:
        """Write ``path``; on failure count it, keep ``text`` to write again later, and return False."""
        self._unwritten[path] = text
        try:
            atomic_write(path, text, durable=False)  # on the supervision loop; a power cut ends the children too
        except OSError as exc:
            self.write_failures.failed(path, "state", exc)
            self._retry_later()
            return False
        if self._unwritten.get(path) is text:
            del self._unwritten[path]
        self.write_failures.succeeded(path)
        return True

    def _retry_later(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (CLI clean-up): the caller saw False
        if self._retry is None:
            self._retry = loop.call_later(RETRY_DELAY_S, self._write_unwritten)

    def _write_unwritten(self) -> None:
        self._retry = None
        for path, text in list(self._unwritten.items()):
            self._write(path, text)

    # operator intent -------------------------------------------------------------------

    def stopped_by_hand(self) -> set[str]:
        if self._stopped is None:
            data = read_json(self.intent_file)
            stopped = data.get("stopped", []) if isinstance(data, dict) else []
            self._stopped = {s for s in stopped if isinstance(s, str)}
            by = data.get("by", {}) if isinstance(data, dict) else {}
            by = by if isinstance(by, dict) else {}
            self._stopped_by = {k: str(v)[:200] for k, v in by.items() if k in self._stopped}
        return set(self._stopped)

    def stopped_by(self, name: str) -> str:
        """Who stopped ``name`` by hand and when (``uid 1000 via web at 2026-12-05 06:05:38``), "" if unknown."""
        self.stopped_by_hand()
        return self._stopped_by.get(name, "")

    def remember_stopped(self, name: str, stopped: bool, by: str = "") -> bool:
        """Record the operator's wish (``by``: who and when, for ``why`` after a daemon restart); False (counted,
        in :attr:`problems`, retried) when it could not be written."""
        names = self.stopped_by_hand()
        if (name in names) == stopped and (not stopped or self._stopped_by.get(name, "") == by):
            return True
        self._stopped = names | {name} if stopped else names - {name}
        if stopped:
            self._stopped_by[name] = by
        else:
            self._stopped_by.pop(name, None)
        data = {"stopped": sorted(self._stopped), "by": dict(sorted(self._stopped_by.items()))}
        return self._write(self.intent_file, json.dumps(data, indent=1) + "\n")

    # children of this daemon -----------------------------------------------------------

    def child_started(self, name: str, identity: ProcessIdentity, tag: str = "") -> None:
        """Record a running child and its spawn tag (which its escaped descendants carry too)."""
        self._entries[name] = f"{json.dumps(name)}: {json.dumps({**identity.as_dict(), 'tag': tag})}"
        self._children_changed()

    def child_gone(self, name: str) -> None:
        if self._entries.pop(name, None) is not None:
            # no hurry: a record of a child that is gone names nothing alive (start times are checked), and
            # a crash is followed by a respawn whose record is written at once, carrying this too
            self._children_changed(GONE_WRITE_DELAY_S)

    def _children_changed(self, delay_s: float = 0.0) -> None:
        """Write at the end of this loop iteration (or after ``delay_s``); one write covers every change so far.

        50 programs spawned together cost one write, not 50; an urgent write replaces a delayed one.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write_children()
            return
        pending = self._write_handle
        if pending is not None and (delay_s or not isinstance(pending, asyncio.TimerHandle)):
            return  # a write is already due, no later than this one would be (or covering it)
        if pending is not None:
            pending.cancel()
        self._write_handle = (
            loop.call_later(delay_s, self._write_children) if delay_s else loop.call_soon(self._write_children)
        )

    def _write_children(self) -> None:
        self._write_handle = None
        text = "{" + ", ".join(self._entries.values()) + "}\n"
        self._write(self.children_file, text)  # retried: a stale record runs a program twice

    def leftovers(self) -> dict[str, Leftover]:
        """Children a previous daemon recorded and did not see exit (it may have been killed)."""
        data = read_json(self.children_file)
        out: dict[str, Leftover] = {}
        if isinstance(data, dict):
            for name, rec in data.items():
                if (ident := ProcessIdentity.from_dict(rec)) is not None:
                    out[str(name)] = Leftover(ident, _tag_prefix(rec.get("tag")))
        return out

    def forget_leftovers(self) -> None:
        try:
            self.children_file.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            self.write_failures.failed(self.children_file, "state", exc)
