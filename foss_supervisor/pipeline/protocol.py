"""The worker protocol: newline-delimited JSON over the worker's stdin (requests) and stdout (replies).

Why pipes and not a unix socket: the worker has exactly one client, the runner that spawned it, so a
pipe needs no path, no permissions, no stale socket file after a crash, and no authentication; when the
runner dies the worker reads EOF and exits, so it can never outlive its owner holding the database lock.
Several requests may be in flight at once (a step and many queries); replies carry the request id.

Request:  {"id": 7, "op": "run_step" | "query" | "export" | "lineage" | "cancel" | "ping" | "shutdown", ...}
Reply:    {"id": 7, "ok": true, "result": {...}}  or  {"id": 7, "ok": false, "error": {"kind": ..., "message": ...}}
Unsolicited: {"event": "ready", ...} once at start; {"event": "log", "id": 7, "level": ..., "message": ...}
"""

from __future__ import annotations

import json
from typing import Any

from foss_supervisor.base.jsonable import json_line

__all__ = ["ERROR_KINDS", "QUERY_THREADS", "decode", "encode"]

QUERY_THREADS = 8  # the worker's threads for queries and exports (DuckDB shares its own threads among them)

#: error kinds a reply may carry; "transient" and worker death are the ones worth retrying
ERROR_KINDS = frozenset(
    {
        "bad_request",
        "busy",
        "sql_error",
        "step_error",
        "check_failed",
        "quality_failed",
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


#: a message as one line; values json cannot write pass jsonable (DECIMAL -> float, times -> ISO 8601, BLOB ->
#: base64): base/jsonable.py's json_line, the encoder of both line protocols
encode = json_line


def decode(line: bytes) -> dict[str, Any]:
    """Parse one line; raise ValueError unless it is a JSON object."""
    msg = json.loads(line)
    if not isinstance(msg, dict):
        raise ValueError("protocol message must be a JSON object")
    return msg
