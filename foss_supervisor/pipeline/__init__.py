"""The medallion pipeline: YAML-declared steps run in one supervised DuckDB worker process.

The daemon side never imports DuckDB: it talks to the worker over pipes. Rooms:

* daemon side: ``spec`` (YAML -> PipelineSpec), ``service`` (the façade the commands see), ``scheduling``
  (how runs start), ``triggers`` (timer, cron, landing watch), ``schedule`` (overdue), ``runner`` (runs),
  ``execution`` (a run's steps), ``runstate`` (a run's bookkeeping, its step requests), ``workerclient``
  (the one client of the worker's protocol: steps, queries, exports), ``workerservice`` and ``workeredge``
  (the worker supervised as ``@pipeline-worker``: its restarts and recycles, its spawn and clean stop),
  ``retry`` (which steps a retry of a failed run runs), ``fingerprint`` (skip runs with nothing new),
  ``history``, ``events``, ``states``, ``errors``;
* worker side (DuckDB): ``worker``, ``sandbox`` (what a step may touch), ``query`` (read-only queries),
  ``ledger`` (file ledger, discover), ``ingest`` (the generic ingest), ``report`` (the generic report),
  ``callables`` (the Python a pipeline names: a shipped step, or a file in its own folder);
* the CLI's ``pipeline validate``: ``validate``.

This package's ``__init__`` imports nothing, so a module of it (``configcheck``, ``events``, ``states``)
can be imported alone without loading the engine. May import: the core, the config, the base; never the
commands, the transports, the daemon or the CLI.

Entry points (import them from their modules):

* ``load_pipeline(path, folders=FolderOverrides(...))`` / ``load_pipelines(dir)`` -> ``PipelineSpec``
* ``PipelineRunner(specs, state_dir=..., on_event=callback)``: ``await start()``, ``await run(name)``,
  ``await replay(name)``, ``await retry(run_id, step=None)``, ``await cancel(name)``, ``await reset(name)``,
  ``runs(name)``, ``get_run(id)``, ``active_run(name)``, ``await aclose()``; ``runner.client``:
  ``await query(sql, max_rows=, timeout_s=)``, ``await export(table, fmt)``; ``runner.worker``: ``pid``,
  ``status()``, ``await set_limits(limits)``
* a pipeline's own code lives beside its YAML (``configs/pipelines/orders/``: SQL, ``steps.py``,
  ``demo_data.py``), loaded by ``callables.load_callable``
"""

from __future__ import annotations
