"""Small JSON files in ``state_dir`` that outlive the daemon: operator intent and running children.

Written atomically (temporary file, then rename), so a daemon killed mid-write leaves the old
version, never half a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any

from foss_supervisor.procinfo import ProcessIdentity

__all__ = ["StateStore", "atomic_write", "read_json"]


def atomic_write(path: Path, text: str, mode: int = 0o600) -> None:
    """Replace ``path`` with ``text`` in one rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    """The parsed file, or None when it is missing or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class StateStore:
    """``intent.json``: programs the operator stopped by hand; ``children.json``: live children."""

    def __init__(self, state_dir: Path) -> None:
        self.intent_file = state_dir / "intent.json"
        self.children_file = state_dir / "children.json"
        self._children: dict[str, ProcessIdentity] = {}
        self._write_pending = False

    # operator intent -------------------------------------------------------------------

    def stopped_by_hand(self) -> set[str]:
        data = read_json(self.intent_file)
        stopped = data.get("stopped", []) if isinstance(data, dict) else []
        return {s for s in stopped if isinstance(s, str)}

    def remember_stopped(self, name: str, stopped: bool) -> None:
        names = self.stopped_by_hand()
        if (name in names) == stopped:
            return
        names = names | {name} if stopped else names - {name}
        atomic_write(self.intent_file, json.dumps({"stopped": sorted(names)}, indent=1) + "\n")

    # children of this daemon -----------------------------------------------------------

    def child_started(self, name: str, identity: ProcessIdentity) -> None:
        self._children[name] = identity
        self._children_changed()

    def child_gone(self, name: str) -> None:
        if self._children.pop(name, None) is not None:
            self._children_changed()

    def _children_changed(self) -> None:
        """Write at the end of this loop iteration: 50 programs spawned together cost one write, not 50."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write_children()
            return
        if not self._write_pending:
            self._write_pending = True
            loop.call_soon(self._write_children)

    def _write_children(self) -> None:
        self._write_pending = False
        data = {name: ident.as_dict() for name, ident in self._children.items()}
        atomic_write(self.children_file, json.dumps(data) + "\n")

    def leftovers(self) -> dict[str, ProcessIdentity]:
        """Children a previous daemon recorded and did not see exit (it may have been killed)."""
        data = read_json(self.children_file)
        out: dict[str, ProcessIdentity] = {}
        if isinstance(data, dict):
            for name, rec in data.items():
                with contextlib.suppress(KeyError, TypeError, ValueError):
                    out[str(name)] = ProcessIdentity(int(rec["pid"]), float(rec["create_time"]))
        return out

    def forget_leftovers(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.children_file.unlink()
