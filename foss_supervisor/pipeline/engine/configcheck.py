"""The pipelines a config declares, checked as part of loading it (the loader takes it as ``check_pipelines``).

Each pipeline's own YAML and SQL are part of the config: refused at load, they exit 2 with their file:line
(not later at daemon start, with exit 1). The engine is imported only when a config declares pipelines, so
a config without them never loads it (the config package itself never imports this one).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from foss_supervisor.config.model import PipelineConfig

__all__ = ["check_pipeline_files"]


def check_pipeline_files(pipelines: Sequence[PipelineConfig], data_dir: Path) -> None:
    """Load every pipeline's spec and check that no two share what one must own. Raises ConfigError (a
    PipelineConfigError) naming the pipeline file, line and key."""
    from foss_supervisor.pipeline.engine.spec import check_isolation, load_for_daemon

    check_isolation(
        [
            load_for_daemon(pc.file, name=pc.name, landing=pc.landing, reference=pc.reference, data_dir=data_dir)
            for pc in pipelines
        ]
    )
