"""Small JSON files in ``state_dir`` that outlive the daemon: operator intent and running children.

Written atomically (temporary file, then rename), so a daemon killed mid-write leaves the old
version, never half a file. Every write is checked: a failure (full disk, read-only folder) is
logged at most once per :data:`FAILURE_LOG_INTERVAL_S` per file, kept in :attr:`StateStore.problems`
for ``status``, and the children record is written again until it succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from foss_supervisor.procinfo import ProcessIdentity

__all__ = ["Leftover", "StateStore", "atomic_write", "read_json"]

log = structlog.get_logger("foss_supervisor.statestore")

FAILURE_LOG_INTERVAL_S = 60.0  # at most one log line per file and minute while writes keep failing
RETRY_DELAY_S = 1.0  # a failed children record is written again after this long


def atomic_write(path: Path, text: str, mode: int = 0o600) -> None:
    """Replace ``path`` with ``text`` in one rename; raises OSError (the old file stays) on failure."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def read_json(path: Path) -> Any:
    """The parsed file, or None when it is missing or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
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
    ``<instance>/<program>/<n>``) finds the processes that left that session.
    """

    def __init__(self, state_dir: Path) -> None:
        self.intent_file = state_dir / "intent.json"
        self.children_file = state_dir / "children.json"
        self._children: dict[str, ProcessIdentity] = {}
        self._tags: dict[str, str] = {}
        self._write_pending = False
        self._failures: dict[Path, str] = {}  # file -> why its last write failed
        self._last_logged: dict[Path, float] = {}

    @property
    def problems(self) -> list[str]:
        """One line per state file whose last write failed (empty when all are current)."""
        return [f"cannot write {path}: {why}" for path, why in sorted(self._failures.items())]

    def _write(self, path: Path, text: str) -> bool:
        """Write ``path``; on failure log it (rate-limited), remember it, and return False."""
        try:
            atomic_write(path, text)
        except OSError as exc:
            why = exc.strerror or str(exc)
            now = time.monotonic()
            if self._failures.get(path) != why or now - self._last_logged.get(path, -1e9) >= FAILURE_LOG_INTERVAL_S:
                self._last_logged[path] = now
                log.error("state_write_failed", file=str(path), error=why, errno=exc.errno)
            self._failures[path] = why
            return False
        if self._failures.pop(path, None) is not None:
            log.info("state_write_recovered", file=str(path))
        return True

    # operator intent -------------------------------------------------------------------

    def stopped_by_hand(self) -> set[str]:
        data = read_json(self.intent_file)
        stopped = data.get("stopped", []) if isinstance(data, dict) else []
        return {s for s in stopped if isinstance(s, str)}

    def remember_stopped(self, name: str, stopped: bool) -> bool:
        """Record the operator's wish; False (logged, in :attr:`problems`) when it could not be written."""
        names = self.stopped_by_hand()
        if (name in names) == stopped:
            return True
        names = names | {name} if stopped else names - {name}
        return self._write(self.intent_file, json.dumps({"stopped": sorted(names)}, indent=1) + "\n")

    # children of this daemon -----------------------------------------------------------

    def child_started(self, name: str, identity: ProcessIdentity, tag: str = "") -> None:
        """Record a running child and its spawn tag (which its escaped descendants carry too)."""
        self._children[name] = identity
        self._tags[name] = tag
        self._children_changed()

    def child_gone(self, name: str) -> None:
        self._tags.pop(name, None)
        if self._children.pop(name, None) is not None:
            self._children_changed()

    def _children_changed(self, delay_s: float = 0.0) -> None:
        """Write at the end of this loop iteration: 50 programs spawned together cost one write, not 50."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write_children()
            return
        if not self._write_pending:
            self._write_pending = True
            if delay_s:
                loop.call_later(delay_s, self._write_children)
            else:
                loop.call_soon(self._write_children)

    def _write_children(self) -> None:
        self._write_pending = False
        data = {name: {**ident.as_dict(), "tag": self._tags.get(name, "")} for name, ident in self._children.items()}
        if not self._write(self.children_file, json.dumps(data) + "\n"):
            self._children_changed(RETRY_DELAY_S)  # keep trying: a stale record is how a program runs twice

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
            log.error("state_write_failed", file=str(self.children_file), error=exc.strerror or str(exc))
