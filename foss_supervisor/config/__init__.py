"""The configuration: YAML in, frozen dataclasses out, every value through its typed gate.

What lives here: :mod:`~.model` (the dataclasses, units in their names), :mod:`~.schema` (every key with
its gate), :mod:`~.gates` (one gate per kind of value), :mod:`~.reader` (located reading), :mod:`~.yamlload`
(bounded YAML, core tags only), :mod:`~.interpolate` and :mod:`~.shellwords` (variables, escapes, commands),
:mod:`~.programs` (the programs, groups and hooks sections), :mod:`~.loader` (the file as a whole), and
the config file's saves: :mod:`~.change` (the gate against destructive saves) and :mod:`~.history` (kept
generations).

May import: :mod:`foss_supervisor.base` and :mod:`foss_supervisor.errors` only; it is below everything but the base.
The pipelines a config declares are checked by a function its caller passes (``check_pipelines``), so the
loader never imports the pipeline package. Importers use this package's names (below).
"""

from __future__ import annotations

from foss_supervisor.base.resources import default_config_path, default_state_dir
from foss_supervisor.config.loader import load_config, parse_config
from foss_supervisor.config.model import (
    DEPENDENCY_CONDITIONS,
    EVENT_KINDS,
    RLIM_INFINITY,
    RLIMIT_NAMES,
    Config,
    DependencyCondition,
    HealthConfig,
    HookConfig,
    LogConfig,
    PipelineConfig,
    ProgramConfig,
)
from foss_supervisor.config.reader import MAX_PROGRAMS

__all__ = [
    "DEPENDENCY_CONDITIONS",
    "EVENT_KINDS",
    "MAX_PROGRAMS",
    "RLIMIT_NAMES",
    "RLIM_INFINITY",
    "Config",
    "DependencyCondition",
    "HealthConfig",
    "HookConfig",
    "LogConfig",
    "PipelineConfig",
    "ProgramConfig",
    "default_config_path",
    "default_state_dir",
    "load_config",
    "parse_config",
]
