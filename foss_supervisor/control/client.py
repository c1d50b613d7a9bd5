"""A blocking control client (stdlib only, so ``foss-supervisor status`` starts fast)."""

from __future__ import annotations

import itertools
import json
import socket
from pathlib import Path
from typing import Any

from foss_supervisor.control.protocol import VERSION, encode
from foss_supervisor.errors import (
    CommandError,
    ConfigRefused,
    ConfirmationRequired,
    NoAnswer,
    NotRunning,
    ProtocolError,
)

__all__ = ["ControlClient", "call"]

_ids = itertools.count(1)
# error replies raised as these types by name; any other is a CommandError
_REPLY_ERRORS: dict[object, type[CommandError] | type[ProtocolError]] = {
    "ProtocolError": ProtocolError,
    "ConfigRefused": ConfigRefused,
    "ConfirmationRequired": ConfirmationRequired,
}


class ControlClient:
    """One connection to the daemon; use as a context manager."""

    def __init__(self, path: Path, timeout_s: float = 5.0) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._buffer = b""

    def __enter__(self) -> ControlClient:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout_s)
        try:
            sock.connect(str(self.path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            raise NotRunning(f"no daemon answers on {self.path} ({exc.strerror})") from None
        except TimeoutError:
            sock.close()
            raise NoAnswer(f"no connection to the daemon on {self.path} within {self.timeout_s:g}s") from None
        except OSError:
            sock.close()
            raise
        self._sock = sock
        return self

    def __exit__(self, *exc: object) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def call(self, cmd: str, **args: Any) -> Any:
        """Send one request and return its result.

        Raises CommandError/ProtocolError for an error reply, NoAnswer when the daemon does not answer
        within ``timeout_s`` (busy, stopped or hung), NotRunning when it hangs up.
        """
        assert self._sock is not None, "use ControlClient as a context manager"
        req_id = next(_ids)
        try:
            self._sock.sendall(encode({"v": VERSION, "id": req_id, "cmd": cmd, "args": args}))
            while b"\n" not in self._buffer:
                chunk = self._sock.recv(65536)
                if not chunk:
                    raise NotRunning("the daemon closed the connection")
                self._buffer += chunk
        except TimeoutError:
            raise NoAnswer(f"the daemon did not answer {cmd!r} on {self.path} within {self.timeout_s:g}s "
                           "(busy, stopped or hung)") from None  # fmt: skip
        line, self._buffer = self._buffer.split(b"\n", 1)
        reply = json.loads(line)
        if reply.get("ok"):
            return reply.get("result")
        error = reply.get("error") or {}
        exc_type = _REPLY_ERRORS.get(error.get("type"), CommandError)
        raise exc_type(error.get("message", "unknown error"))


def call(path: Path, cmd: str, timeout_s: float = 5.0, **args: Any) -> Any:
    """Open a connection, make one call, close."""
    with ControlClient(path, timeout_s) as client:
        return client.call(cmd, **args)
