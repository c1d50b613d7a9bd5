"""Old home of :mod:`foss_supervisor.pipeline.service`, kept so existing imports keep working."""

from __future__ import annotations

from foss_supervisor.pipeline.service import PipelineService, load_specs

__all__ = ["PipelineService", "load_specs"]
