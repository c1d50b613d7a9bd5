"""The worker's ``validate`` request: pipelines checked as ``pipeline validate`` checks them (validate.py), in
the worker, so the daemon never loads DuckDB. A reload asks it for the pipelines it adds or redefines, and
refuses one with an error (reloadcheck.py).

Request (protocol.py): ``{"op": "validate", "pipelines": [{"file", "name", "landing", "reference",
"data_dir"}, ...]}`` (at most :data:`MAX_PIPELINES`; paths as text, ``reference`` may be null); reply
``{"pipelines": {NAME: {"reports": [{"step", "status", "where", "message"}, ...], "error": ""}}}`` with
``error`` set (and no reports) when the pipeline does not load. Raises ValueError for a malformed request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from foss_supervisor.pipeline.errors import PipelineConfigError
from foss_supervisor.pipeline.spec import load_for_daemon
from foss_supervisor.pipeline.validate import validate_spec

__all__ = ["MAX_PIPELINES", "validate_pipelines"]

#: the most pipelines one request may ask about
MAX_PIPELINES = 256


def _path(item: dict[str, Any], key: str, *, optional: bool = False) -> Path | None:
    value = item.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > 4096 or "\0" in value:
        raise ValueError(f"validate: {key} must be a path")
    return Path(value)


def validate_pipelines(message: dict[str, Any]) -> dict[str, Any]:
    """Each requested pipeline loaded with the daemon's folders and validated (see the module docstring)."""
    items = message.get("pipelines")
    if not isinstance(items, list) or len(items) > MAX_PIPELINES or not all(isinstance(i, dict) for i in items):
        raise ValueError(f"validate: pipelines must be a list of at most {MAX_PIPELINES} objects")
    out: dict[str, Any] = {}
    for item in items:
        name = item.get("name")
        if not isinstance(name, str) or not name or len(name) > 200:
            raise ValueError("validate: each pipeline needs a name")
        try:
            spec = load_for_daemon(
                _path(item, "file") or Path(),
                name=name,
                landing=_path(item, "landing") or Path(),
                reference=_path(item, "reference", optional=True),
                data_dir=_path(item, "data_dir") or Path(),
            )
        except (PipelineConfigError, OSError) as exc:
            out[name] = {"reports": [], "error": str(exc)}
            continue
        reports = [
            {"step": r.step, "status": r.status, "where": r.where, "message": r.message} for r in validate_spec(spec)
        ]
        out[name] = {"reports": reports, "error": ""}
    return {"pipelines": out}
