"""A reload checks the SQL of the pipelines it adds or redefines as ``pipeline validate`` does, and refuses
one with an error: the running pipelines stay (issue 18: a reload had accepted a ``kind: quality`` block
naming a column its source lacks, which ``pipeline validate`` refused, and the pipeline then failed at its
next run). The check runs in the DuckDB worker (workervalidate.py), never in the daemon; when the worker
cannot answer in time the reload goes on without it, logged (the pipeline is checked again by its run).
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog

from foss_supervisor.config import Config
from foss_supervisor.pipeline.errors import PipelineError
from foss_supervisor.pipeline.workerclient import WorkerClient

__all__ = ["VALIDATE_TIMEOUT_S", "sql_problems"]

log = structlog.get_logger("foss_supervisor.pipelines")

#: how long a reload waits for the worker's check of the changed pipelines
VALIDATE_TIMEOUT_S = 30.0


async def sql_problems(client: WorkerClient, config: Config, names: Iterable[str]) -> list[str]:
    """Each problem ``pipeline validate`` finds in ``config``'s pipelines ``names``, as ``"NAME: WHERE: WHY"``
    (WHERE: the SQL file and line, or the YAML file, line and block of a generated step); ``[]`` when there
    are none, or when the worker could not tell (logged as ``pipelines_reload_unchecked``)."""
    items = [
        {
            "file": str(pc.file),
            "name": pc.name,
            "landing": str(pc.landing),
            "reference": None if pc.reference is None else str(pc.reference),
            "data_dir": str(config.data_path),
        }
        for pc in (config.pipelines[n] for n in sorted(set(names)))
    ]
    if not items:
        return []
    try:
        found = await client.read_sql("validate", {"pipelines": items}, timeout_s=VALIDATE_TIMEOUT_S)
    except PipelineError as exc:
        log.warning("pipelines_reload_unchecked", pipelines=[i["name"] for i in items], error=str(exc))
        return []
    problems: list[str] = []
    for name, verdict in sorted(found["pipelines"].items()):
        if verdict["error"]:
            problems.append(f"{name}: {verdict['error']}")
        problems += [
            f"{name}: step {r['step']}: {r['where']}: {r['message']}"
            for r in verdict["reports"]
            if r["status"] == "error"
        ]
    return problems
