"""The worker protocol: newline-delimited JSON over the worker's stdin (requests) and stdout (replies).

Why pipes and not a unix socket: the worker has exactly one client, the runner that spawned it, so a
pipe needs no path, no permissions, no stale socket file after a crash, and no authentication; when the
runner dies the worker reads EOF and exits, so it can never outlive its owner holding the database lock.
Several requests may be in flight at once (a step and many queries); replies carry the request id.

Request:  {"id": 7, "op": "run_step" | "query" | "cancel" | "ping" | "shutdown", ...}
Reply:    {"id": 7, "ok": true, "result": {...}}  or  {"id": 7, "ok": false, "error": {"kind": ..., "message": ...}}
Unsolicited: {"event": "ready", ...} once at start; {"event": "log", "id": 7, "level": ..., "message": ...}
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
import uuid
from typing import Any

__all__ = ["ERROR_KINDS", "QUERY_THREADS", "decode", "encode", "to_jsonable"]

QUERY_THREADS = 8  # the worker's threads for queries and exports (DuckDB shares its own threads among them)

#: error kinds a reply may carry; "transient" and worker death are the ones worth retrying
ERROR_KINDS = frozenset(
    {
        "bad_request",
        "busy",
        "sql_error",
        "step_error",
        "check_failed",
        "transient",
        "cancelled",
        "query_refused",
        "query_timeout",
        "query_failed",
        "memory_limit",
        "access_denied",
        "no_input",
    }
)


MAX_SAFE_INTEGER = 2**53 - 1  # beyond it a JSON number loses digits in JavaScript (and many other parsers)


def to_jsonable(value: Any, exact: bool = False) -> Any:
    """Map a DuckDB result value to JSON: DECIMAL -> float, times -> ISO 8601, BLOB -> base64.

    With ``exact`` (query results, shown to people and read by any JSON parser), a DECIMAL is its exact
    text with its scale (``"952.70"``) and an integer beyond 2**53 - 1 (BIGINT, HUGEINT) is its digits as
    a string: a float would silently change them.
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return str(value) if exact and abs(value) > MAX_SAFE_INTEGER else value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, decimal.Decimal):
        return str(value) if exact and value.is_finite() else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [to_jsonable(v, exact) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, exact) for k, v in value.items()}
    return str(value)


def encode(message: dict[str, Any]) -> bytes:
    """One message as one line (JSON escapes newlines inside strings, so a line is a message)."""
    return json.dumps(message, separators=(",", ":"), default=to_jsonable).encode("utf-8") + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """Parse one line; raise ValueError unless it is a JSON object."""
    msg = json.loads(line)
    if not isinstance(msg, dict):
        raise ValueError("protocol message must be a JSON object")
    return msg
