"""The control protocol: newline-delimited JSON over a Unix stream socket (stdlib only).

Request::

    {"v": 1, "id": 7, "cmd": "status", "args": {}}

Reply (same ``id``)::

    {"v": 1, "id": 7, "ok": true, "result": {...}}
    {"v": 1, "id": 7, "ok": false, "error": {"type": "ProtocolError", "message": "..."}}

One connection may carry many requests, answered in order. A line longer than ``MAX_LINE_BYTES``
is refused and the connection closed (the stream cannot be resynchronised); a request nested deeper
than ``MAX_DEPTH`` arrays and objects is refused (no command takes more than two levels).

Subscribing turns a connection into the daemon's event stream until the client closes it::

    {"v": 1, "id": 1, "cmd": "subscribe", "args": {"boot": "9f2c01ab", "since": 41}}   (both optional)
    {"v": 1, "id": 1, "ok": true, "result": {"boot": "9f2c01ab", "seq": 41, "resync": false}}
    {"v": 1, "event": {"type": "StateChanged", "seq": 42, "at": 1733300000.5, "name": "api", ...}}
    {"v": 1, "keepalive": true, "seq": 42}          (after 15 s without an event)
    {"v": 1, "resync": true, "seq": 2042}            (events were missed: read the state afresh)

``boot`` names one daemon run and ``seq`` numbers its events from 1: a reader that gives the last pair it
saw gets exactly what followed; ``resync`` true in the reply means that was not possible (another run,
or too old), and the stream starts from now. Without arguments the stream starts from now.
"""

from __future__ import annotations

import json

from foss_supervisor.base.jsonable import json_line
from foss_supervisor.errors import ProtocolError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (the CLI's client imports this module)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "MAX_DEPTH",
    "MAX_LINE_BYTES",
    "SUBSCRIBE",
    "VERSION",
    "decode_request",
    "encode",
    "error_reply",
    "ok_reply",
]

VERSION = 1
MAX_LINE_BYTES = 1024 * 1024
MAX_DEPTH = 16
SUBSCRIBE = "subscribe"  # not a command of the registry: it turns the connection into an event stream


#: a message as one line (base/jsonable.py: the encoder of both line protocols)
encode = json_line


def decode_request(line: bytes) -> tuple[Any, str, dict[str, Any]]:
    """Return (id, cmd, args) from one request line, or raise ProtocolError saying what is wrong."""
    if len(line) > MAX_LINE_BYTES:
        raise ProtocolError(f"request longer than {MAX_LINE_BYTES} bytes")
    try:
        msg = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"request is not valid JSON: {exc}") from None
    except RecursionError:  # deeper than the interpreter allows
        raise ProtocolError(f"request nested deeper than {MAX_DEPTH} levels") from None
    if _too_deep(msg):
        raise ProtocolError(f"request nested deeper than {MAX_DEPTH} levels")
    if not isinstance(msg, dict):
        raise ProtocolError("request must be a JSON object")
    if msg.get("v") != VERSION:
        raise ProtocolError(f"unsupported protocol version {msg.get('v')!r}; this daemon speaks {VERSION}")
    cmd = msg.get("cmd")
    if not isinstance(cmd, str) or not cmd:
        raise ProtocolError("request needs a string 'cmd'")
    args = msg.get("args", {})
    if not isinstance(args, dict):
        raise ProtocolError("'args' must be a JSON object")
    return msg.get("id"), cmd, args


def _too_deep(value: Any) -> bool:
    """Whether ``value`` nests more than MAX_DEPTH arrays/objects (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def ok_reply(req_id: Any, result: Any) -> dict[str, Any]:
    return {"v": VERSION, "id": req_id, "ok": True, "result": result}


def error_reply(req_id: Any, exc: BaseException) -> dict[str, Any]:
    return {"v": VERSION, "id": req_id, "ok": False, "error": {"type": type(exc).__name__, "message": str(exc)}}
