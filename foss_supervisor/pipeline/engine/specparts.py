"""Parts of the pipeline loader (spec.py, at its size limit): how it collects mistakes, and a step's source.

Why collect: an author fixing a pipeline YAML one error per try needs as many tries as mistakes. Each
declaration that does not depend on another (a top-level key, the folders, the setup, each field of each
step, each check, each ``depends_on`` name) is loaded through :meth:`Problems.attempt`; its error is kept and
loading goes on, and :meth:`Problems.raise_any` raises them all at once as one
:meth:`PipelineConfigError.collected <foss_supervisor.errors.ConfigError.collected>` (each at its
``file:line: key``, in file order). What needs the steps whole (the order, the schemas, ``publish``) is
checked once nothing before it was wrong: one root cause, one problem.

Stdlib only, like spec.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from foss_supervisor.config.gates import Gate
from foss_supervisor.config.schema import STEP
from foss_supervisor.pipeline.dedupe import compile_deduplicate
from foss_supervisor.pipeline.errors import PipelineConfigError, Problems
from foss_supervisor.pipeline.quality import compile_quality
from foss_supervisor.pipeline.rules import gated
from foss_supervisor.pipeline.thresholds import Threshold
from foss_supervisor.pipeline.worker.callables import resolve_callable

__all__ = ["Problems", "StepSource", "read_sql", "step_links", "step_source", "unknown_keys"]

#: a step's (sql, sql_path, callable, the thresholds its quality rules declare)
StepSource = tuple[str | None, Path | None, str | None, tuple[Threshold, ...]]


def unknown_keys(raw: Mapping[str, Any], allowed: set[str], file: str, prefix: str) -> None:
    """Raise a PipelineConfigError for each key of ``raw`` not in ``allowed`` (all of them at once)."""
    found = Problems()
    for k in raw:
        if k not in allowed:
            found.add(file, f"{prefix}{k}", f"unknown key (allowed: {', '.join(sorted(allowed))})")
    found.raise_any()


def read_sql(p: Path, file: str, key: str) -> str:
    """The text of SQL file ``p`` that ``key`` names; PipelineConfigError when it cannot be read or is empty."""
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PipelineConfigError(file, key, f"cannot read SQL file {p}: {exc.strerror or exc}") from exc
    if not text.strip():
        raise PipelineConfigError(file, key, f"SQL file {p} is empty")
    return text


def _gate(key: str) -> Gate[Any]:
    gate = STEP[key]
    assert isinstance(gate, Gate)
    return gate


def step_source(raw: Mapping[str, Any], kind: str, base: Path, file: str, key: str) -> StepSource:
    """What step ``raw`` (at ``key``, of ``kind``: a StepKind value) runs: a quality or deduplicate block's
    compiled SQL (and its rules' thresholds), an SQL file's text and path, or a Python callable resolved
    against ``base``. PipelineConfigError at the key at fault."""
    if kind in ("quality", "deduplicate"):
        for other in ("sql", "callable"):
            if other in raw:
                raise PipelineConfigError(file, f"{key}.{other}", f"a {kind} step declares params, not sql or callable")
        if not isinstance(raw.get("params"), dict):
            raise PipelineConfigError(file, f"{key}.params", f"a {kind} step declares its tables and columns in params")
        if kind == "quality":
            sql, rule_thresholds = compile_quality(raw["params"], file=file, key=f"{key}.params")
            return sql, None, None, rule_thresholds
        return compile_deduplicate(raw["params"], file=file, key=f"{key}.params"), None, None, ()
    if kind == "sql":
        if "callable" in raw:
            raise PipelineConfigError(file, f"{key}.callable", "only python steps take a callable")
        if raw.get("sql") is None:
            raise PipelineConfigError(file, f"{key}.sql", "is required: the step's SQL file")
        sql_path = (base / gated(raw, "sql", _gate("sql"), "", file, f"{key}.sql")).resolve()
        return read_sql(sql_path, file, f"{key}.sql"), sql_path, None, ()
    if "sql" in raw:
        raise PipelineConfigError(file, f"{key}.sql", "only sql steps take a sql file")
    if raw.get("callable") is None:
        raise PipelineConfigError(
            file, f"{key}.callable", "is required: 'package.module:function' or 'file.py:function'"
        )
    func = gated(raw, "callable", _gate("callable"), "", file, f"{key}.callable")
    return None, None, resolve_callable(func, base, file, f"{key}.callable"), ()


def step_links(steps: list[Any], file: str) -> None:
    """Raise a PipelineConfigError for each duplicate step name and each ``depends_on`` naming no step or its own
    step, read from the raw ``steps`` so that a step with another mistake (a bad ``layer``) has these told too.
    A ``name`` or ``depends_on`` that is not text is its step's own mistake (told by the step); while a step's
    name is unknown, a dependency on no known name is not told (it may be that step)."""
    found = Problems()
    names = [s.get("name") if isinstance(s, dict) else None for s in steps]
    every_named = all(isinstance(n, str) for n in names)
    for i, (raw, name) in enumerate(zip(steps, names, strict=True)):
        if isinstance(name, str) and name in names[:i]:
            found.add(file, f"steps[{i}].name", f"duplicate step name {name!r}")
        deps = raw.get("depends_on") if isinstance(raw, dict) else None
        for dep in deps if isinstance(deps, list) else ():
            if not isinstance(dep, str):
                continue
            if dep == name:
                found.add(file, f"steps[{i}].depends_on", "a step cannot depend on itself")
            elif dep not in names and every_named:
                found.add(file, f"steps[{i}].depends_on", f"unknown step {dep!r}")
    found.raise_any()
