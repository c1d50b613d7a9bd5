"""Pipelines declared in YAML, loaded into frozen dataclasses.

Why YAML plus SQL files: an operator adds a pipeline without writing Python, and the SQL stays readable
and diffable on its own. The loader checks everything it can before a run starts (unknown keys, missing
SQL files, unknown or cyclic dependencies, bad callables) and every error names the file, the line, the key
(steps by name: ``steps.aggregate.sql``) and the reason. SQL text is read at load time so editing a file
mid-run cannot change a running pipeline.

Isolation: a pipeline owns ``schemas`` (declared, or else the ones its SQL creates with CREATE SCHEMA plus
the schema of its ledger), keeps its file ledger in ``ledger`` (default ``meta`` when it owns that schema,
else ``<name>_meta``) and may read other pipelines' tables only when it lists them under ``inputs``. The
worker enforces it statement by statement (see worker/sandbox.py); two pipelines of one runner never share a schema.
This module stays free of DuckDB: the daemon loads specs without paying for it.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from foss_supervisor.base.pipelinestates import RunMode
from foss_supervisor.base.resources import data_dir
from foss_supervisor.config.gates import Gate
from foss_supervisor.config.schema import FOLDERS, PIPELINE_SCHEMA, STEP, Section
from foss_supervisor.config.yamlload import MAX_FILE_BYTES, load_yaml
from foss_supervisor.errors import ConfigError
from foss_supervisor.pipeline.checks import Check, evaluate_check, load_check, parse_check
from foss_supervisor.pipeline.engine.partition import PartitionSpec, load_partition
from foss_supervisor.pipeline.engine.specparts import Problems, read_sql, step_links, step_source, unknown_keys
from foss_supervisor.pipeline.engine.tablekeys import KEYS, TableKeys, check_table_keys, load_step_keys
from foss_supervisor.pipeline.errors import PipelineConfigError
from foss_supervisor.pipeline.origins import author_key, located, named_lines, place, yaml_at
from foss_supervisor.pipeline.rules import (
    DEFAULT_PATTERNS,
    check_isolation,
    check_shipped_params,
    dependency_order,
    gated,
    load_access,
    load_patterns,
    load_publish,
)
from foss_supervisor.pipeline.thresholds import DEFAULT_THRESHOLD, Threshold, located_thresholds, step_thresholds
from foss_supervisor.pipeline.worker.callables import resolve_callable

__all__ = [
    "DEFAULT_PATTERNS",
    "Check",
    "FolderOverrides",
    "Folders",
    "PipelineSpec",
    "StepKind",
    "StepSpec",
    "check_isolation",
    "default_pipelines_dir",
    "evaluate_check",
    "load_for_daemon",
    "load_pipeline",
    "load_pipelines",
    "parse_check",
]


T = TypeVar("T")
DEFAULT_TIMEOUT_S = 600.0
DEFAULT_RETRIES = 2


class StepKind(enum.StrEnum):
    """A step is a SQL script, a Python callable, or a declaration compiled to SQL: quality rules (quality.py)
    or deduplication (dedupe.py)."""

    SQL = "sql"
    PYTHON = "python"
    QUALITY = "quality"
    DEDUPLICATE = "deduplicate"


@dataclasses.dataclass(frozen=True, slots=True)
class Folders:
    """Where a pipeline reads and writes; all absolute after loading."""

    landing: Path
    reference: Path
    warehouse: Path
    reports: Path


@dataclasses.dataclass(frozen=True, slots=True)
class FolderOverrides:
    """Caller-supplied folders that win over the YAML (the daemon points them at its data dir)."""

    landing: Path | None = None
    reference: Path | None = None
    warehouse: Path | None = None
    reports: Path | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class StepSpec:
    """One step as declared: what to run, after what, for how long and how often to retry."""

    name: str
    kind: StepKind
    depends_on: tuple[str, ...]
    timeout_s: float
    retries: int
    modes: frozenset[RunMode]
    sql: str | None = None
    sql_path: Path | None = None
    callable: str | None = None
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False, compare=False)
    layer: str | None = None  # bronze, silver or gold, as the author declares it (shown by the dashboard)
    #: when the step's checked rows make the run warn or fail (thresholds.py); the default when none declared
    thresholds: tuple[Threshold, ...] = (DEFAULT_THRESHOLD,)
    keys: TableKeys = ()  # the key of each table it declares one for (tablekeys.py): what diff pairs rows by


@dataclasses.dataclass(frozen=True, slots=True)
class PipelineSpec:
    """A loaded pipeline; ``steps`` is already in a valid dependency order."""

    name: str
    description: str
    path: Path
    folders: Folders
    steps: tuple[StepSpec, ...]
    checks: tuple[Check, ...]
    setup_sql: str | None = None
    schemas: frozenset[str] = frozenset()
    inputs: frozenset[str] = frozenset()
    ledger: str = "meta"
    patterns: tuple[str, ...] = DEFAULT_PATTERNS
    publish: tuple[str, ...] = ()  # schemas or schema.table written as Parquet after each good run
    publish_partition_by: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (schema.table, Hive partition columns)
    publish_keep: int = 3  # published runs kept on disk (rules.DEFAULT_PUBLISH_KEEP)
    publish_format: str = "parquet"  # "parquet": a folder per run (publish.py); "delta": Delta tables (publishdelta.py)
    snapshot_keep: int = 5  # snapshots of successful runs kept for diff and rollback; 0: none (snapshots.py)
    demo_data: str | None = None  # its sample data generator, ``generate(landing, orders=, seed=, prefix=)``
    #: its partition key from landing file names, for backfills (partition.py); None: not partitioned
    partition: PartitionSpec | None = None
    setup_path: Path | None = None  # the file of setup_sql
    #: the YAML line of each dotted key, steps also by name (``steps.enrich.sql``): where errors point (origins.py)
    lines: Mapping[str, int] = dataclasses.field(default_factory=dict, hash=False, compare=False)

    def at(self, key: str) -> str:
        """``FILE:LINE`` in the YAML of dotted ``key`` (steps by name), or of the nearest key it is inside."""
        return yaml_at(str(self.path), key, self.lines)

    @property
    def layer_schemas(self) -> list[str]:
        """The schemas whose tables a run's snapshot keeps: every schema the pipeline owns but its ledger's."""
        return sorted(self.schemas - {self.ledger})

    def source(self, step: StepSpec | None) -> dict[str, str | None]:
        """origins.sql_failure's source of ``step``'s SQL (None: setup): file, owner at its ``sql:``/``name:`` line."""
        who, file = ("setup", self.setup_path) if step is None else (f"steps.{step.name}", step.sql_path)
        key = who if step is None else f"{who}.{'sql' if file is not None else 'name'}"
        return {"file": str(file) if file is not None else None, "owner": f"{who} ({self.at(key)})"}

    def step(self, name: str) -> StepSpec:
        """The step called ``name``; KeyError if there is none."""
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)


def default_pipelines_dir() -> Path:
    """The shipped ``configs/pipelines`` folder (inside the wheel, or in the checkout)."""
    return data_dir("configs") / "pipelines"


# --------------------------------------------------------------------------------------------- loading


_TOP_KEYS = set(PIPELINE_SCHEMA)
_STEP_KEYS = {*STEP, "params", "thresholds", KEYS}  # params: checked by the step's kind (quality.py, dedupe.py,
# rules.py); thresholds: by thresholds.py; keys: by tablekeys.py
LAYERS = ("bronze", "silver", "gold")
_FOLDER_KEYS = set(FOLDERS)


def _gate(section: Section, key: str) -> Gate[Any]:
    gate = section[key]
    assert isinstance(gate, Gate)
    return gate


def load_pipeline(path: str | Path, *, folders: FolderOverrides | None = None) -> PipelineSpec:
    """Load and validate one pipeline YAML; relative paths are relative to the YAML file.

    Raises PipelineConfigError (a ConfigError) naming file, line, key (steps by name) and reason.
    """
    path = Path(path).resolve()
    file = str(path)
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)  # bounded: load_yaml refuses anything larger
        text = data.decode("utf-8")
    except OSError as exc:
        raise PipelineConfigError(file, "", f"cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise PipelineConfigError(file, "", f"not UTF-8: {exc}") from exc
    try:
        raw, lines = load_yaml(text, file)
    except PipelineConfigError:
        raise
    except ConfigError as exc:
        raise PipelineConfigError(file, exc.key, exc.reason, exc.line) from None
    if not isinstance(raw, dict):
        raise PipelineConfigError(file, "", "top level must be a mapping", 1)
    try:
        spec = _load(raw, path, file, folders)
    except PipelineConfigError as exc:  # one or several (exc.errors), each given its line
        errors = [
            located(e, raw, lines) if isinstance(e, PipelineConfigError) and e.line is None else e for e in exc.errors
        ]
        raise PipelineConfigError.collected(errors) from None
    names = [s.get("name") for s in raw["steps"]]  # generated SQL's errors name the YAML (origins.py)
    named = named_lines(lines, names)
    steps = (
        dataclasses.replace(
            s,
            sql=place(s.sql, file, lines, names, raw) if s.sql_path is None and s.sql else s.sql,
            thresholds=located_thresholds(s.thresholds, lambda k: f"{yaml_at(file, k, named)}: {author_key(k, raw)}"),
        )
        for s in spec.steps
    )
    return dataclasses.replace(spec, steps=tuple(steps), lines=named)


def _load(raw: dict[str, Any], path: Path, file: str, folders: FolderOverrides | None) -> PipelineSpec:
    base, found = path.parent, Problems()  # independent mistakes: all told at once (specparts.py)
    found.attempt(unknown_keys, raw, _TOP_KEYS, file, "")
    if raw.get("name") is None:
        found.add(file, "name", "is required")
    name = found.attempt(gated, raw, "name", _gate(PIPELINE_SCHEMA, "name"), "", file)
    description = found.attempt(gated, raw, "description", _gate(PIPELINE_SCHEMA, "description"), "", file)
    resolved_folders = found.attempt(_load_folders, raw.get("folders", {}), base, file, folders or FolderOverrides())
    setup_sql, setup_path = None, None
    if "setup" in raw and raw["setup"] is None:
        found.add(file, "setup", "is required to be a path when given")
    elif "setup" in raw:
        setup_path = found.attempt(gated, raw, "setup", _gate(PIPELINE_SCHEMA, "setup"), "", file)
        setup_path = (base / setup_path).resolve() if setup_path else None
        setup_sql = found.attempt(read_sql, setup_path, file, "setup") if setup_path else None
    steps_raw = raw.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        found.add(file, "steps", "must be a non-empty list")
        steps_raw = []
    loaded = [found.attempt(_load_step, s, i, base, file) for i, s in enumerate(steps_raw)]
    names = None if None in loaded else {s.name for s in loaded if s is not None}  # a step in error: any name goes
    checks_raw = raw.get("checks", [])
    if not isinstance(checks_raw, list):
        found.add(file, "checks", "must be a list of strings")
        checks_raw = []
    checks = [found.attempt(load_check, c, i, names, file) for i, c in enumerate(checks_raw)]
    found.attempt(step_links, steps_raw, file)  # duplicate names, unknown depends_on: of steps in error too
    keep = found.attempt(gated, raw, "snapshot_keep", _gate(PIPELINE_SCHEMA, "snapshot_keep"), 5, file)
    demo = found.attempt(gated, raw, "demo_data", _gate(PIPELINE_SCHEMA, "demo_data"), "", file)
    demo_data = found.attempt(resolve_callable, demo, base, file, "demo_data") if demo else None
    partition = found.attempt(load_partition, raw.get("partition"), file)
    for value_only in ("publish", "publish_keep", "publish_format"):  # their values alone; the tables once known
        found.attempt(gated, raw, value_only, _gate(PIPELINE_SCHEMA, value_only), None, file)
    found.raise_any()
    assert name is not None and resolved_folders is not None and keep is not None  # else found had them
    steps = [s for s in loaded if s is not None]
    ordered = dependency_order(steps, file)
    sql_texts = [t for t in [setup_sql, *(s.sql for s in ordered)] if t]
    whole = Problems()  # what needs the steps whole: each told on its own, publish and keys once schemas are known
    access = whole.attempt(load_access, raw, name, sql_texts, ordered, file)
    patterns = whole.attempt(load_patterns, raw, ordered, file)
    published = whole.attempt(load_publish, raw, access[0], file) if access else None
    if access:
        whole.attempt(check_table_keys, steps, access[0], access[2], file)
    whole.raise_any()
    assert access is not None and patterns is not None and published is not None  # else whole had their errors
    schemas, inputs, ledger = access

    return PipelineSpec(
        name=name,
        description=description or "",
        path=path,
        folders=resolved_folders,
        steps=tuple(ordered),
        checks=tuple(c for c in checks if c is not None),
        setup_sql=setup_sql,
        setup_path=setup_path,
        schemas=schemas,
        inputs=inputs,
        ledger=ledger,
        patterns=patterns,
        **published,
        snapshot_keep=keep,
        demo_data=demo_data,
        partition=partition,
    )


def load_for_daemon(file: Path, *, name: str, landing: Path, reference: Path | None, data_dir: Path) -> PipelineSpec:
    """Load the pipeline the daemon config names ``name``, with the daemon's folders: its landing folder,
    the warehouse and reports under ``data_dir``. Raises PipelineConfigError (also when the YAML declares
    another name)."""
    spec = load_pipeline(
        file,
        folders=FolderOverrides(
            landing=landing, reference=reference, warehouse=data_dir / "warehouse.duckdb", reports=data_dir / "reports"
        ),
    )
    if spec.name != name:
        raise PipelineConfigError(str(file), "name", f"declares pipeline {spec.name!r}, configured as {name!r}", 1)
    return spec


def load_pipelines(directory: str | Path, *, folders: FolderOverrides | None = None) -> dict[str, PipelineSpec]:
    """Load every ``*.yaml``/``*.yml`` in a folder; two pipelines with one name is an error."""
    out: dict[str, PipelineSpec] = {}
    for p in sorted([*Path(directory).glob("*.yaml"), *Path(directory).glob("*.yml")]):
        spec = load_pipeline(p, folders=folders)
        if spec.name in out:
            other = out[spec.name].path
            raise PipelineConfigError(str(p), "name", f"pipeline {spec.name!r} is also declared in {other}")
        out[spec.name] = spec
    return out


def _load_folders(raw: Any, base: Path, file: str, over: FolderOverrides) -> Folders:
    if not isinstance(raw, dict):
        raise PipelineConfigError(file, "folders", "must be a mapping")
    unknown_keys(raw, _FOLDER_KEYS, file, "folders.")

    def pick(key: str, given: Path | None, default: str | None) -> Path:
        if given is not None:
            return Path(given).resolve()
        if raw.get(key) is None:
            raise PipelineConfigError(file, f"folders.{key}", "is required: a path")
        folder: str = gated(raw, key, _gate(FOLDERS, key), "", file, f"folders.{key}")
        return (base / folder).resolve()

    warehouse = pick("warehouse", over.warehouse, None)
    reports = over.reports
    if reports is None and (over.warehouse is not None or "reports" not in raw):
        # a caller that moves the warehouse gets the reports beside it, not in the YAML's default place
        reports = warehouse.parent / "reports"
    return Folders(
        landing=pick("landing", over.landing, None),
        reference=pick("reference", over.reference, None),
        warehouse=warehouse,
        reports=pick("reports", reports, None),
    )


def _load_step(raw: Any, i: int, base: Path, file: str) -> StepSpec:
    key, found = f"steps[{i}]", Problems()  # each field on its own: all its mistakes at once
    if not isinstance(raw, dict):
        raise PipelineConfigError(file, key, "must be a mapping")
    found.attempt(unknown_keys, raw, _STEP_KEYS, file, f"{key}.")
    if raw.get("name") is None:
        found.add(file, f"{key}.name", "is required")
    name = found.attempt(gated, raw, "name", _gate(STEP, "name"), "", file, f"{key}.name")
    kind = found.attempt(gated, raw, "kind", _gate(STEP, "kind"), "sql", file, f"{key}.kind")
    source = found.attempt(step_source, raw, kind, base, file, key) if kind is not None else None
    sql, sql_path, func, rule_thresholds = source or (None, None, None, ())
    deps = found.attempt(gated, raw, "depends_on", _gate(STEP, "depends_on"), (), file, f"{key}.depends_on")
    timeout = found.attempt(
        gated, raw, "timeout_s", _gate(STEP, "timeout_s"), DEFAULT_TIMEOUT_S, file, f"{key}.timeout_s"
    )
    retries = found.attempt(gated, raw, "retries", _gate(STEP, "retries"), DEFAULT_RETRIES, file, f"{key}.retries")
    if raw.get("modes") == []:
        found.add(file, f"{key}.modes", "must be a non-empty list of run, replay")
    every = tuple(m.value for m in RunMode)
    modes_raw = found.attempt(gated, raw, "modes", _gate(STEP, "modes"), every, file, f"{key}.modes")
    params = raw.get("params", {})
    if not isinstance(params, dict):
        found.add(file, f"{key}.params", "must be a mapping")
    layer = found.attempt(gated, raw, "layer", _gate(STEP, "layer"), None, file, f"{key}.layer")
    if func is not None and isinstance(params, dict):
        found.attempt(check_shipped_params, func, params, file, f"{key}.params")
    thresholds = found.attempt(step_thresholds, raw.get("thresholds"), rule_thresholds, file, key, str(name))
    keys = found.attempt(load_step_keys, raw, file, key)
    found.raise_any()
    assert name is not None and kind is not None and modes_raw is not None and thresholds is not None

    return StepSpec(
        name=name,
        kind=StepKind(kind),
        depends_on=deps or (),
        timeout_s=DEFAULT_TIMEOUT_S if timeout is None else timeout,
        retries=DEFAULT_RETRIES if retries is None else retries,
        modes=frozenset(RunMode(m) for m in modes_raw),
        sql=sql,
        sql_path=sql_path,
        callable=func,
        params=params,
        layer=layer,
        thresholds=thresholds,
        keys=keys if keys is not None else (),
    )
