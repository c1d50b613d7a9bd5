"""The medallion pipeline: YAML-declared steps run in one supervised DuckDB worker process.

The daemon side (this package minus worker/query/orders_steps) never imports DuckDB: it talks to the
worker over pipes. Entry points for the core:

* ``load_pipeline(path, folders=FolderOverrides(...))`` / ``load_pipelines(dir)`` -> ``PipelineSpec``
* ``PipelineRunner(specs, state_dir=..., on_event=callback)``: ``await start()``, ``await run(name)``,
  ``await replay(name)``, ``await cancel(name)``, ``runs(name)``, ``get_run(id)``, ``active_run(name)``,
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
