"""One graph across programs, pipelines and tables: what feeds what on this host.

What lives here: :mod:`~.model` (the nodes and edges, built from the loaded config, the pipeline specs and
what the worker read of their SQL), :mod:`~.contracts` (what a step touches when its work is Python, not
SQL), :mod:`~.render` (the graph as JSON, Graphviz DOT and Mermaid), and what the graph answers:
:mod:`~.causes` (why a pipeline, step, table or run is not as wanted, and what it affects) and
:mod:`~.impact` (what a new config's SQL changes, rebuilds and would break). The ``graph`` command
(:mod:`foss_supervisor.commands.graph`) gathers the inputs and the live states; the CLI and the HTTP API
answer through it.

Pure data and stdlib only: no DuckDB (the SQL is read in the pipeline worker, see
:mod:`foss_supervisor.pipeline.worker.lineage`), no I/O. May import: the config, the base; the pipeline specs only
as types.
"""

from __future__ import annotations

__all__: list[str] = []
