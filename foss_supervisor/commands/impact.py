"""Impact before a change: what a new config's pipelines would rebuild, refused when it breaks what reads it.

One path for every change that reaches the pipelines (``reload``, its ``--dry-run``, SIGHUP, a save or a
Check of the config editor): :func:`pipelines_preview` plans them, assesses them and checks their SQL;
:func:`pipeline_impact` asks the pipelines' façade for the new pipelines and what
the worker reads of their SQL, builds the new graph and assesses it (:func:`foss_supervisor.graph.impact.assess`);
:func:`refuse_breaking` refuses a change that drops or retypes a column that a step reads or a table's
``contract:`` declares, naming the file, the step, the column and each consumer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import structlog

from foss_supervisor.errors import ConfigRefused
from foss_supervisor.graph.impact import assess, changes, contract_gaps, refusal
from foss_supervisor.graph.model import build_graph

if TYPE_CHECKING:
    from foss_supervisor.config import Config
    from foss_supervisor.pipeline.engine.service import PipelineService

__all__ = ["pipeline_impact", "pipelines_preview", "refuse_breaking"]

log = structlog.get_logger("foss_supervisor.config")


async def pipeline_impact(
    service: PipelineService | None, new: Config, running_contracts: Mapping[str, Mapping[str, str]]
) -> dict[str, Any] | None:
    """``{"pipelines": {NAME: {"changed_steps", "removed_steps", "setup_changed", "downstream_tables"}},
    "breaking": [...], "contracts": [...], "error": ""}`` (graph/impact.py: ``assess``, ``contract_gaps``) of
    applying ``new``'s pipelines and contracts over the running ones (``running_contracts``: the running
    config's); None without pipelines. ``contracts`` lists the columns of a contract the new SQL does not keep
    (a warning: a declaration is not a change of data). When the worker cannot read the SQL, nothing is
    assessed and ``error`` says why (the change is not refused for it). Raises CommandError for pipelines
    that do not load."""
    if service is None or not new.pipelines:
        return None
    new_specs = await service.proposed(new)
    changed = changes(service.specs, new_specs)
    if not changed and new.contracts == running_contracts:
        return {"pipelines": {}, "breaking": [], "contracts": [], "error": ""}  # the worker need not read anything
    if changed:  # both read now, so the types DuckDB binds (DESCRIBE) come from the same warehouse
        running = await service.lineage(dict(service.specs))
        proposed = await service.lineage(new_specs)
    else:  # only contracts changed: the running SQL is the new one
        running = proposed = await service.lineage()
    if why := proposed["error"] or running["error"]:
        return {"pipelines": {}, "breaking": [], "contracts": [], "error": f"the impact is not known: {why}"}
    graph = build_graph(new, new_specs, proposed["scripts"], {}, {})
    found = assess(service.specs, new_specs, running["scripts"], proposed["scripts"], graph, new.contracts)
    return found | {"contracts": contract_gaps(proposed["scripts"], new.contracts), "error": ""}


def refuse_breaking(impact: dict[str, Any] | None) -> None:
    """Raise ConfigRefused (the running config stays) when ``impact`` holds a breaking column change."""
    if impact and impact["breaking"]:
        why = refusal(impact["breaking"])
        log.error("reload_refused", error=why)
        raise ConfigRefused(why)


async def pipelines_preview(
    service: PipelineService | None, new: Config, running_contracts: Mapping[str, Mapping[str, str]]
) -> tuple[dict[str, list[str]] | None, dict[str, Any] | None]:
    """What applying ``new``'s pipelines would do, refused as the reload would refuse it: ``(plan, impact)``,
    the plan ``{"added", "removed", "changed", "unchanged"}`` (PipelineService.reload) and the impact
    (:func:`pipeline_impact`); ``(None, None)`` without pipelines. Raises ConfigRefused for a breaking column
    change and CommandError for pipelines that do not load or whose SQL check finds an error or cannot finish
    (PipelineService.check_sql). Nothing changes: a reload and the config editor's Check both call it."""
    if service is None or not new.pipelines:
        return None, None
    plan = await service.reload(new, dry_run=True)
    impact = await pipeline_impact(service, new, running_contracts)
    refuse_breaking(impact)
    await service.check_sql(new, plan)  # then what `pipeline validate` refuses (reloadcheck.py)
    return plan, impact
