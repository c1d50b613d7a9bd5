"""The ``graph`` command: one graph across programs, pipelines, steps, landing folders and tables.

The nodes and edges are :mod:`foss_supervisor.graph.model`'s; this module gathers what they are built from:
the running config (programs with ``depends_on``, ``feeds:`` and ``needs:``; pipelines with ``after:``), the
loaded pipeline specs, what the pipeline worker read of their SQL (``PipelineService.lineage``, kept until
the SQL changes), and the live states (``status`` snapshots, each pipeline's run in progress or last run).
"""

from __future__ import annotations

from typing import Any

from foss_supervisor.commands.alerts import objective_states
from foss_supervisor.commands.registry import CommandContext, Limit, command
from foss_supervisor.errors import CommandError
from foss_supervisor.graph.model import Graph, build_graph, with_objectives
from foss_supervisor.graph.render import FORMATS, render

__all__ = ["graph", "whole_graph"]


async def whole_graph(ctx: CommandContext) -> tuple[Graph, str]:
    """The host's whole graph with live states and objectives, and why the SQL edges are missing ("" when
    they are not): what ``graph`` and ``why`` build on."""
    service = ctx.pipelines
    lineage: dict[str, Any] = {"scripts": {}, "error": ""}
    specs: dict[str, Any] = {}
    pipelines_live: dict[str, Any] = {}
    if service is not None:
        lineage = await service.lineage()
        specs = dict(service.specs)
        pipelines_live = {p["name"]: p for p in service.overview()}
    programs_live = {p.name: p.snapshot() for p in ctx.supervisor.processes.values()}
    whole = build_graph(ctx.config, specs, lineage["scripts"], programs_live, pipelines_live)
    return with_objectives(whole, objective_states(ctx)), str(lineage["error"])


@command("graph", pipeline=(str, "", Limit(size=64)), format=(str, "json", Limit(size=16)))
async def graph(ctx: CommandContext, pipeline: str, format: str) -> dict[str, Any]:
    """The graph of programs, pipelines, steps, landing folders and tables (docs/graph.md).

    ``{"nodes": [{"id", "kind", "name", "layer", "state", "pipeline", "url", "detail"}, ...], "edges":
    [{"source", "target", "kind"}, ...], "lineage_error": "", "format", "text"}``. Node ids are
    ``program:NAME``, ``pipeline:NAME``, ``step:PIPELINE/STEP``, ``table:SCHEMA.TABLE``, ``folder:PATH``; edge
    kinds are depends_on, after, inputs, reads, writes, derives, feeds, needs. ``pipeline``: only that
    pipeline, its steps and what is one edge away (plus the programs feeding or needing it). ``format``:
    json (``text`` is ""), dot (Graphviz) or mermaid (``text`` holds it). ``lineage_error`` says why the
    edges read from SQL are missing when the pipeline worker could not read it. A node with an objective
    carries it in ``detail.objective`` (``{"id", "kind", "state", "detail"}``); a table takes its state.
    Column lineage (read from the SQL by the worker, docs/graph.md): a table's ``detail.columns`` (``[{"name",
    "type", "from": ["schema.table.column"], "unknown"}]``) and ``detail.columns_unknown``, a step's
    ``detail.reads_columns`` (``{"schema.table": ["column", ...]}``, ``"*"`` for columns not known by name).
    Raises CommandError for an unknown pipeline or format.
    """
    if format not in FORMATS:
        raise CommandError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    whole, lineage_error = await whole_graph(ctx)
    specs = ctx.pipelines.specs if ctx.pipelines is not None else {}
    shown: Graph = whole
    if pipeline:
        try:
            shown = whole.around_pipeline(pipeline)
        except KeyError:
            known = ", ".join(sorted(specs)) or "none"
            raise CommandError(f"no pipeline {pipeline!r}; known: {known}") from None
    return shown.to_dict() | {
        "lineage_error": lineage_error,
        "format": format,
        "text": "" if format == "json" else render(shown, format),
    }
