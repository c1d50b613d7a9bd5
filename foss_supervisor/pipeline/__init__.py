"""The medallion pipeline: YAML-declared steps run in one supervised DuckDB worker process.

The daemon side never imports DuckDB: it talks to the worker over pipes. Rooms:

* daemon side: ``spec`` (YAML -> PipelineSpec), ``service`` (commands, pause), ``triggers`` (timer, cron,
  landing watch), ``schedule`` (overdue), ``runner`` (runs), ``runstate`` (a run's bookkeeping and worker
  requests), ``workerhost`` (the worker process), ``retry`` (which steps a retry of a failed run runs),
  ``fingerprint`` (skip runs with nothing new), ``history``, ``events``, ``states``, ``errors``;
* worker side (DuckDB): ``worker``, ``sandbox`` (what a step may touch), ``query`` (read-only queries),
  ``ledger`` (file ledger, discover), ``orders_steps`` (ingest, orders report), ``report`` (generic report);
* the CLI's ``pipeline validate``: ``validate``.

Entry points for the core:

* ``load_pipeline(path, folders=FolderOverrides(...))`` / ``load_pipelines(dir)`` -> ``PipelineSpec``
* ``PipelineRunner(specs, state_dir=..., on_event=callback)``: ``await start()``, ``await run(name)``,
  ``await replay(name)``, ``await retry(run_id, step=None)``, ``await cancel(name)``, ``await reset(name)``,
  ``await export(table, fmt)``, ``runs(name)``, ``get_run(id)``, ``active_run(name)``,
  ``await query(sql, max_rows=, timeout_s=)``, ``await aclose()``
* ``demo_data.generate(landing)`` and ``demo_data.write_reference(dir)``
"""

from __future__ import annotations

from foss_supervisor.pipeline.errors import (
    PipelineBusyError,
    PipelineConfigError,
    PipelineError,
    QueryError,
    QueryFailedError,
    QueryMemoryError,
    QueryRefusedError,
    QueryTimeoutError,
    UnknownPipelineError,
    WorkerCrashedError,
    WorkerError,
)
from foss_supervisor.pipeline.events import (
    PipelineEvent,
    RunFinished,
    RunStarted,
    StepLog,
    StepStateChanged,
    WorkerExited,
    WorkerStarted,
    event_to_dict,
)
from foss_supervisor.pipeline.history import RunRecord, StepRecord
from foss_supervisor.pipeline.runner import PipelineRunner, QueryResult
from foss_supervisor.pipeline.spec import (
    FolderOverrides,
    Folders,
    PipelineSpec,
    StepSpec,
    default_pipelines_dir,
    load_pipeline,
    load_pipelines,
)
from foss_supervisor.pipeline.states import RunMode, RunStatus, StepState

__all__ = [
    "FolderOverrides",
    "Folders",
    "PipelineBusyError",
    "PipelineConfigError",
    "PipelineError",
    "PipelineEvent",
    "PipelineRunner",
    "PipelineSpec",
    "QueryError",
    "QueryFailedError",
    "QueryMemoryError",
    "QueryRefusedError",
    "QueryResult",
    "QueryTimeoutError",
    "RunFinished",
    "RunMode",
    "RunRecord",
    "RunStarted",
    "RunStatus",
    "StepLog",
    "StepRecord",
    "StepSpec",
    "StepState",
    "StepStateChanged",
    "UnknownPipelineError",
    "WorkerCrashedError",
    "WorkerError",
    "WorkerExited",
    "WorkerStarted",
    "default_pipelines_dir",
    "event_to_dict",
    "load_pipeline",
    "load_pipelines",
]
