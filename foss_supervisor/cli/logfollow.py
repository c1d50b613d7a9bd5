"""Following a log through the daemon: ``logs -f`` and ``top`` read new lines with ``log_read``, so what
they print passed the daemon's redaction like every other reply (they never read the files themselves
while the daemon runs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["DaemonFollower"]

Call = Callable[..., Any]  # control.client.call bound to a socket: call(command, **args) -> reply
_CHUNK_BYTES = 1024 * 1024  # log_read's largest read


class DaemonFollower:
    """New complete lines of one log (a program, ``daemon``, ``pipeline``) from where it ends now.

    ``call(command, **args)`` asks the daemon. A rotated log is read again from its start (``log_read``
    says so and reads from 0). Raises what ``call`` raises (NotRunning when the daemon went away).
    """

    def __init__(self, call: Call, name: str) -> None:
        self._call = call
        self._name = name
        self._offset: int = call("log_read", source=name, offset=-1, max_bytes=1)["size"]

    @property
    def name(self) -> str:
        return self._name

    def lines(self) -> list[str]:
        reply = self._call("log_read", source=self._name, offset=self._offset, max_bytes=_CHUNK_BYTES)
        self._offset = reply["next_offset"]
        lines: list[str] = reply["lines"]
        return lines

    def close(self) -> None:
        """Nothing is held between reads."""
