"""The medallion pipeline: YAML-declared steps run in one supervised DuckDB worker process.

Three rooms, two of them subpackages (each one's ``__init__`` names every module it holds):

* ``engine``: the daemon side. It loads pipelines, schedules and records runs, keeps the books of snapshots
  and published sets, and supervises the worker, talking to it over pipes; it never imports DuckDB. Its
  ``service`` is the façade the commands see.
* ``worker``: the worker side, the DuckDB process (``worker.server``) and its short-lived check child
  (``worker.validatechild``): steps, ingest and the ledger, snapshots, publishes, queries and exports.
* the shared modules, at this package's top: what both sides (and the rest of the house: the web, the daemon)
  name, so their paths stay short and stable.

  - declarations compiled to SQL at load and run by the worker: ``rules`` (what a pipeline owns, reads and
    publishes; its ``gated`` checks every declaration's fields), ``quality`` (``kind: quality``),
    ``thresholds`` (when checked rows warn or fail), ``dedupe`` (``kind: deduplicate``), ``origins`` (a line
    of generated SQL traced to its YAML), ``checks`` (row-accounting checks, parsed without eval);
  - the vocabulary: ``protocol`` (the worker protocol: JSON lines over pipes), ``events`` (the runner's
    events), ``errors`` (the package's error tree); the step and run states are every room's words and live in
    :mod:`foss_supervisor.base.pipelinestates`.

The rules between the rooms (tests/unit/test_architecture.py holds them): a shared module imports only shared
modules; the engine imports of the worker room only the few modules it reads for names, SQL text and file
helpers (``callables``, ``hold``, ``ledger``, ``report``, ``snapshotstats``, ``supervision``), and nothing it
imports, at any depth, imports DuckDB, sqlglot or deltalake; the worker imports of the engine only the
declarations and layouts it works by (``spec``, ``partition``, ``limits``, ``workerargs``, ``publish``,
``snapshots``); outside this package nothing imports the worker room (the worker runs as its own process).

This package's ``__init__`` files import nothing, so a module of it (``engine.configcheck``, ``events``)
can be imported alone without loading the engine. May import: the core, the config, the base;
never the commands, the transports, the daemon or the CLI.

Entry points (import them from their modules):

* ``engine.spec``: ``load_pipeline(path, folders=FolderOverrides(...))`` / ``load_pipelines(dir)`` ->
  ``PipelineSpec``
* ``engine.runner``: ``PipelineRunner(specs, state_dir=..., on_event=callback)``: ``await start()``, ``await
  run(name)``, ``await replay(name)``, ``await retry(run_id, step=None)``, ``await cancel(name)``, ``await
  reset(name)``, ``runs(name)``, ``get_run(id)``, ``active_run(name)``, ``await aclose()``;
  ``runner.client``: ``await query(sql, max_rows=, timeout_s=)``, ``await export(table, fmt)``;
  ``runner.worker``: ``pid``, ``status()``, ``await set_limits(limits)``
* a pipeline's own code lives beside its YAML (``configs/pipelines/orders/``: SQL, ``steps.py``,
  ``demo_data.py``), loaded by ``worker.callables.load_callable``
"""

from __future__ import annotations
