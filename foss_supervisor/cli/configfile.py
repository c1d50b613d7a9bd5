"""The pipeline files' check the CLI hands the config loader, shared by the front (dispatch.py: ``--config``)
and ``restart`` (restart.py: the config the daemon ran), which the front imports: kept here, below both,
so neither imports the other to reach it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from foss_supervisor.config import PipelineConfig

__all__ = ["check_pipeline_files"]


def check_pipeline_files(pipelines: Sequence[PipelineConfig], data_dir: Path) -> None:
    """The pipeline files' check, imported only when the config declares pipelines (then the loader calls it):
    ``start --foreground`` runs the daemon in this process, which must not import the pipeline package.
    Raises what :func:`foss_supervisor.pipeline.engine.configcheck.check_pipeline_files` raises (ConfigError)."""
    from foss_supervisor.pipeline.engine.configcheck import check_pipeline_files as check

    check(pipelines, data_dir)
