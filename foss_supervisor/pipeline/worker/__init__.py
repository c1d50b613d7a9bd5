"""The worker side of the pipeline package: the DuckDB process ``@pipeline-worker`` (``python -m
foss_supervisor.pipeline.worker.server``) and the short-lived check child (``python -m
foss_supervisor.pipeline.worker.validatechild``). It owns the warehouse and runs steps, queries, snapshots and
publishes there; the daemon only talks to it over pipes (:mod:`foss_supervisor.pipeline.engine.workerclient`).
Every module, by what it is for:

- the process: ``server`` (owns the warehouse, serves steps and queries), ``warehouse`` (DuckDB locked down),
  ``sandbox`` (what a step may touch), ``callables`` (the Python a pipeline names), ``context`` (what a Python
  step receives);
- steps: ``steps`` (a step attempt besides its transaction, the commit gate), ``sqlrun`` (a SQL text's
  statements, errors in the author's terms), ``lineage`` (tables a statement reads and writes), ``columns``
  and ``columnsql`` (column-level lineage, with sqlglot), ``report`` (the shipped run report);
- ingest, ledger and holds: ``ledger`` (the file ledger, ``discover``), ``ingest`` (the generic ingest),
  ``hold`` (held files, set aside in the ledger), ``filescan`` (a landing file's hash and whether DuckDB's
  line reader takes it as is: shared by the three);
- snapshots: ``snapshots`` (write a snapshot), ``segments`` (a table's files, linked or copied),
  ``snapshotfiles`` (the gate on a snapshot's files), ``snapshothashes`` (row hashes) and ``snapshotstats``
  (column statistics) kept beside them, ``diff`` (the diff of two states), ``restore`` (a rollback's
  restore);
- publish: ``publish`` (Parquet), ``delta`` (Delta Lake), ``publishtypes`` (the type gate of every published
  column);
- queries and export: ``query`` (read-only queries), ``resultsize`` (a result bounded in SQL), ``export`` (a
  table or result to a file), ``supervision`` (the event journal as tables);
- validate: ``validate`` (``pipeline validate``: SQL bound against the pipeline's schemas), ``validatechild``
  (the same check of a reload, in a short-lived child).

The daemon imports a few of these for their names, SQL text and file helpers, never for DuckDB: ``callables``
(a pipeline's Python resolved at load), ``hold`` (the hold rule, callable names, SQL text), ``ledger`` (the
landing files, SQL text), ``report`` (a rollback's report files), ``snapshotstats`` (file names) and
``supervision`` (the journal's ingest folder); none of them, nor what they import, loads DuckDB.

This ``__init__`` imports nothing. May import: the core, the config, the base; of its own package, the shared
modules at its top and the engine's declarations and layouts it works by (``spec``, ``partition``, ``limits``,
``workerargs``, ``publish``, ``snapshots``); DuckDB, sqlglot and deltalake are its alone.
"""

from __future__ import annotations
