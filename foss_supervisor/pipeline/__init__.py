"""The medallion pipeline: YAML-declared steps run in one supervised DuckDB worker process.

The daemon side never imports DuckDB: it talks to the worker over pipes. Rooms (every module, by what it is for):

* daemon side: the subpackage ``engine`` (spec and loading, the façade, scheduling and runs, snapshots and
  publish bookkeeping, the worker's supervision and client; its ``__init__`` names every module)

* worker side (DuckDB; the daemon imports a few of these, e.g. ``ledger`` and ``hold``, for their names and SQL
  text only, never DuckDB)

  - the process: ``worker`` (owns the warehouse, serves steps and queries), ``warehouse`` (DuckDB locked
    down), ``sandbox`` (what a step may touch), ``callables`` (the Python a pipeline names), ``context``
    (what a Python step receives);
  - steps: ``workersteps`` (a step attempt besides its transaction, the commit gate), ``sqlrun`` (a SQL
    text's statements, errors in the author's terms), ``lineage`` (tables a statement reads and writes),
    ``columns`` and ``columnsql`` (column-level lineage, with sqlglot), ``report`` (the shipped run report);
  - ingest, ledger and holds: ``ledger`` (the file ledger, ``discover``), ``ingest`` (the generic ingest),
    ``hold`` (held files, set aside in the ledger), ``filescan`` (a landing file's hash and whether DuckDB's
    line reader takes it as is: shared by the three);
  - snapshots: ``workersnapshots`` (write a snapshot), ``workersegments`` (a table's files, linked or
    copied), ``workersnapshotfiles`` (the gate on a snapshot's files), ``snapshothashes`` (row hashes) and
    ``snapshotstats`` (column statistics) kept beside them, ``workerdiff`` (the diff of two states),
    ``workerrestore`` (a rollback's restore);
  - publish: ``workerpublish`` (Parquet), ``workerdelta`` (Delta Lake), ``publishtypes`` (the type gate of
    every published column);
  - queries and export: ``query`` (read-only queries), ``resultsize`` (a result bounded in SQL),
    ``workerexport`` (a table or result to a file), ``supervision`` (the event journal as tables);
  - validate: ``validate`` (``pipeline validate``: SQL bound against the pipeline's schemas),
    ``workervalidate`` (the same check of a reload, in a short-lived child);

* shared by both sides

  - declarations compiled to SQL at load and run by the worker: ``rules`` (what a pipeline owns, reads and
    publishes; its ``gated`` checks every declaration's fields), ``quality`` (``kind: quality``),
    ``thresholds`` (when checked rows warn or fail), ``dedupe`` (``kind: deduplicate``), ``origins`` (a line
    of generated SQL traced to its YAML), ``checks`` (row-accounting checks, parsed without eval);
  - the vocabulary: ``protocol`` (the worker protocol: JSON lines over pipes), ``states`` (step and run
    states), ``events`` (the runner's events), ``errors`` (the package's error tree).

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
