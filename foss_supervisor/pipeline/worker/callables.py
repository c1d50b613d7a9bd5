"""Python a pipeline names: a shipped step (``package.module:function``) or the pipeline's own code in its
folder (``orders/steps.py:report``, a file relative to the pipeline's YAML, like its SQL).

A pipeline keeps its YAML, SQL and Python in one folder (``configs/pipelines/orders/``): its own steps and
its demo data generator are files there, not modules of the engine, and they ship with it (package data
of ``foss_supervisor.configs``). :func:`resolve_callable` checks a reference when the pipeline is loaded
(the module can be imported, the file exists) and gives the one form the engine keeps: a module name, or
the file's absolute path. :func:`load_callable` imports it, in the worker (steps) or the daemon (demo
data); a file is loaded once per process under a name of its own, and no bytecode is written beside it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from foss_supervisor.base.resources import data_dir
from foss_supervisor.pipeline.errors import PipelineConfigError

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["RENAMED", "load_callable", "resolve_callable"]

_SHIPPED_ORDERS = data_dir("configs") / "pipelines" / "orders"

#: shipped callables that moved (issue 17: generic steps got generic names, orders' own code went beside
#: its YAML; then the worker's modules moved into pipeline/worker/); a pipeline file that names the old one
#: keeps loading, and the engine only sees the new one
RENAMED: dict[str, str] = {
    "foss_supervisor.pipeline.ingest:ingest": "foss_supervisor.pipeline.worker.ingest:ingest",
    "foss_supervisor.pipeline.ledger:discover": "foss_supervisor.pipeline.worker.ledger:discover",
    "foss_supervisor.pipeline.report:report": "foss_supervisor.pipeline.worker.report:report",
    "foss_supervisor.pipeline.orders_steps:ingest": "foss_supervisor.pipeline.worker.ingest:ingest",
    "foss_supervisor.pipeline.orders_steps:discover": "foss_supervisor.pipeline.worker.ledger:discover",
    "foss_supervisor.pipeline.orders_steps:report": f"{_SHIPPED_ORDERS / 'steps.py'}:report",
}


def resolve_callable(ref: str, base: Path, file: str, key: str) -> str:
    """The reference ``ref`` (already through its gate) as the engine keeps it: ``module:function``, or
    ``/absolute/path.py:function`` for a file relative to ``base`` (the pipeline's folder).

    Raises PipelineConfigError (naming ``file`` and ``key``) when the module cannot be imported or the file
    is not there.
    """
    ref = RENAMED.get(ref, ref)
    module, _, name = ref.rpartition(":")
    if module.endswith(".py"):
        path = (base / module).resolve()
        if not path.is_file():
            raise PipelineConfigError(file, key, f"no such Python file: {path}")
        return f"{path}:{name}"
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise PipelineConfigError(file, key, f"module {module!r} cannot be imported")
    return ref


def load_callable(ref: str) -> Any:
    """The object a resolved reference names. Raises ImportError, AttributeError, or OSError (a file)."""
    module, _, name = ref.rpartition(":")
    loaded = _file_module(Path(module)) if module.endswith(".py") else importlib.import_module(module)
    return getattr(loaded, name)


class _NoBytecode(importlib.machinery.SourceFileLoader):
    """Loads a pipeline's file without writing ``__pycache__`` into the pipeline's folder."""

    def set_data(self, path: str, data: Buffer, *, _mode: int = 0o666) -> None:
        return None


def _file_module(path: Path) -> ModuleType:
    """The module of one file, loaded once per process (its name is derived from its path)."""
    key = "foss_pipeline_" + hashlib.sha256(str(path).encode()).hexdigest()[:16]
    if (loaded := sys.modules.get(key)) is not None:
        return loaded
    loader = _NoBytecode(key, str(path))
    spec = importlib.util.spec_from_file_location(key, path, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    try:
        loader.exec_module(module)
    except BaseException:
        del sys.modules[key]
        raise
    return module
