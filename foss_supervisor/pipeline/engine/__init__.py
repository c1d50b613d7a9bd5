"""The daemon side of the pipeline package (the engine): it loads pipelines, schedules and records runs, keeps
the books of snapshots and published sets, and supervises the DuckDB worker it talks to over pipes. It never
imports DuckDB (the worker process owns it: :mod:`foss_supervisor.pipeline.worker.server`). Every module, by what it
is for:

- spec and loading: ``spec`` (YAML -> ``PipelineSpec``), ``specparts`` (the loader's collected mistakes, a
  step's source), ``tablekeys`` (a step's ``keys``), ``partition`` (the partition key from file names; which
  partitions to backfill), ``configcheck`` (the pipelines checked as part of loading a config),
  ``reloadcheck`` (a reload's SQL check);
- the façade, scheduling and runs: ``service`` (the façade the commands see), ``scheduling`` (how runs
  start), ``triggers`` (timer, cron, landing watch), ``schedule`` (overdue), ``backfill`` (re-runs of
  partitions), ``runner`` (runs, history, events), ``execution`` (a run's steps in dependency order),
  ``runstate`` (a run's bookkeeping, its step requests), ``retry`` (which steps a retry runs), ``recovery``
  (the committed steps of a run a killed daemon abandoned), ``fingerprint`` (skip runs with nothing new),
  ``history`` (run records, JSON lines), ``flowrun`` (which run the pages show), ``regression`` (a step
  slower than its median), ``holding`` (held files, the runner's part);
- snapshots and rollback: ``runsnapshots`` (keep, diff, roll back: the runner's part), ``snapshots``
  (layout, wholeness, retention), ``snapshotsame`` (did a run change any layer table);
- publish: ``runpublish`` (a run's publish, the runner's part), ``publish`` (the Parquet published set,
  manifest and switch), ``publishdelta`` (the Delta Lake published set), ``publishcheck`` (may the current
  set stand for a run that changed nothing);
- worker supervision and client: ``workerservice`` (the worker supervised as ``@pipeline-worker``:
  restarts, recycles), ``workeredge`` (its spawn and clean stop), ``workerargs`` (its command line),
  ``limits`` (its memory and time limits), ``workerclient`` (the one client of the worker's protocol).

This ``__init__`` imports nothing. May import: the core, the config, the base; of its own package, the shared
modules at its top and, of the worker room, only the few modules the daemon reads for names, SQL text and
file helpers (never DuckDB; tests/unit/test_architecture.py lists them); never ``duckdb``.
"""

from __future__ import annotations
