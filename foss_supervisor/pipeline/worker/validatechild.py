"""The SQL check of a reload (and of ``pipeline validate``), in a short-lived child of its own: pipelines
checked as validate.py checks them, so the daemon never loads DuckDB nor imports a pipeline's Python. A
reload asks it for the pipelines it adds or redefines, and refuses one with an error (engine/reloadcheck.py).

Why a fresh process per check, not the long-lived worker: a Python step's file is imported once per process
(callables.py), so the worker would judge a changed file by the copy it imported first (a new function "not
an attribute", a removed one still there); and a module may do anything at import (``os._exit``, raise
SystemExit, block), which must end only this child, never the worker a running step is in.

Run: ``python -m foss_supervisor.pipeline.worker.validatechild [--os-memory-limit BYTES]``, the request on stdin
(at most :data:`MAX_REQUEST_BYTES`): ``{"pipelines": [{"file", "name", "landing", "reference", "data_dir"},
...]}`` (paths as text, ``reference`` may be null; ``{"file", "name", "standalone": true}`` checks a YAML
file with its own folders, as ``pipeline validate FILE`` does). Output on stdout, one JSON object a line:
``{"checking": NAME}`` before each pipeline, then the reply ``{"ok": true, "result": {"pipelines": {NAME:
{"reports": [{"step", "status", "where", "message", "metrics"}, ...], "error": ""}}}}`` (``error`` set, and no
reports, when the pipeline does not load or its check fails), or ``{"ok": false, "error": WHY}`` for a
malformed request. What user code prints goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from foss_supervisor.pipeline.engine.limits import apply_os_memory_limit
from foss_supervisor.pipeline.engine.spec import load_for_daemon, load_pipeline
from foss_supervisor.pipeline.errors import PipelineConfigError
from foss_supervisor.pipeline.worker.validate import validate_spec

__all__ = ["MAX_REQUEST_BYTES", "main", "validate_pipelines"]

#: the largest request read from stdin (the config loader bounds the config, hence the pipelines, already)
MAX_REQUEST_BYTES = 16 * 2**20
_KEYS = ("file", "name", "landing", "reference", "data_dir")


def _path(item: dict[str, Any], key: str, *, optional: bool = False) -> Path | None:
    value = item.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > 4096 or "\0" in value:
        raise ValueError(f"validate: {key} must be a path")
    return Path(value)


def _item(item: Any) -> dict[str, Any]:
    """One pipeline of the request, its name and paths checked; ValueError when malformed."""
    if not isinstance(item, dict):
        raise ValueError("validate: each pipeline must be an object")
    name = item.get("name")
    if not isinstance(name, str) or not name or len(name) > 200:
        raise ValueError("validate: each pipeline needs a name")
    if item.get("standalone") is True:  # a YAML file alone, its folders its own (``pipeline validate FILE``)
        return {"name": name, "file": _path(item, "file"), "standalone": True}
    return {
        "name": name,
        "file": _path(item, "file"),
        "landing": _path(item, "landing"),
        "reference": _path(item, "reference", optional=True),
        "data_dir": _path(item, "data_dir"),
    }


def _check(item: dict[str, Any]) -> dict[str, Any]:
    """One pipeline's verdict: any failure of its load or its check is its ``error``, never the request's."""
    try:
        if item.get("standalone"):
            spec = load_pipeline(item["file"])
        else:
            spec = load_for_daemon(
                item["file"],
                name=item["name"],
                landing=item["landing"],
                reference=item["reference"],
                data_dir=item["data_dir"],
            )
    except (PipelineConfigError, OSError) as exc:
        return {"reports": [], "error": str(exc)}
    try:
        reports = [
            {"step": r.step, "status": r.status, "where": r.where, "message": r.message, "metrics": list(r.metrics)}
            for r in validate_spec(spec)
        ]
    except Exception as exc:  # a bug of the check, or a declaration it did not foresee: this pipeline's error
        return {"reports": [], "error": f"its check failed: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"}
    return {"reports": reports, "error": ""}


def validate_pipelines(message: Any, started: Callable[[str], None] = lambda name: None) -> dict[str, Any]:
    """Each requested pipeline loaded with the daemon's folders and validated (see the module docstring);
    ``started(NAME)`` is called before each. Raises ValueError for a malformed request, checked whole before
    any pipeline is."""
    items = message.get("pipelines") if isinstance(message, dict) else None
    if not isinstance(items, list):
        raise ValueError("validate: pipelines must be a list of objects")
    checked = [_item(i) for i in items]
    out: dict[str, Any] = {}
    for item in checked:
        started(item["name"])
        out[item["name"]] = _check(item)
    return {"pipelines": out}


def main(argv: list[str] | None = None) -> int:
    """Read one request from stdin, answer it on stdout (see the module docstring), then end at once (a thread
    a user module started does not keep the check alive)."""
    parser = argparse.ArgumentParser(prog="foss_supervisor.pipeline.worker.validatechild")
    parser.add_argument("--os-memory-limit", type=int, default=0, help="RLIMIT_DATA in bytes (0: none)")
    args = parser.parse_args(argv)
    if args.os_memory_limit > 0:
        apply_os_memory_limit(args.os_memory_limit)
    out = os.fdopen(os.dup(1), "wb", buffering=0)  # the reply's channel: what user code prints goes to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj).encode() + b"\n")

    raw = sys.stdin.buffer.read(MAX_REQUEST_BYTES + 1)
    try:
        if len(raw) > MAX_REQUEST_BYTES:
            raise ValueError(f"validate: the request is larger than {MAX_REQUEST_BYTES} bytes")
        try:
            message = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"validate: the request is not JSON: {exc}") from None
        reply = {"ok": True, "result": validate_pipelines(message, lambda name: send({"checking": name}))}
    except ValueError as exc:
        reply = {"ok": False, "error": str(exc)}
    send(reply)
    out.close()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
