"""Typed configuration: the one loader that builds the frozen dataclasses of :mod:`~.model` from YAML.

The types live in :mod:`~.model`, the located reading of values in :mod:`~.reader`, the
``programs``/``groups``/``hooks`` sections in :mod:`~.programs`; this module holds the file as a whole and
the ``pipelines`` section (importers use the names of :mod:`foss_supervisor.config`).

Every refusal is a :class:`~foss_supervisor.errors.ConfigError` naming the file, the line, the
dotted key and the reason, so an operator can fix a file without reading our code. Durations are
seconds (``5``, ``0.5``) or strings with a unit (``"500ms"``, ``"5s"``, ``"2m"``); sizes are bytes or
``"10MB"``-style strings. Relative paths are resolved against the config file's folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from foss_supervisor.base.redact import REDACTED, Redactor, looks_secret
from foss_supervisor.base.resources import config_path, data_dir, default_state_dir, resolve_path
from foss_supervisor.config.gates import Gate, GateError, shown
from foss_supervisor.config.interpolate import interpolate_config
from foss_supervisor.config.model import ALERT_RULES, AlertsConfig, Config, PipelineConfig
from foss_supervisor.config.programs import (
    check_dependencies,
    check_single_writers,
    parse_groups,
    parse_hooks,
    parse_programs,
)
from foss_supervisor.config.reader import Reader
from foss_supervisor.config.schema import SCHEMA
from foss_supervisor.config.yamlload import MAX_FILE_BYTES, load_yaml
from foss_supervisor.errors import ConfigError

__all__ = ["PipelineCheck", "load_config", "parse_config"]


#: checks the pipeline files a config declares (``foss_supervisor.pipeline.engine.configcheck.check_pipeline_files``):
#: passed in by the caller, so that this package never imports the pipeline engine
PipelineCheck = Callable[[Sequence[PipelineConfig], Path], None]


def _parse_pipelines(r: Reader, base: Path, data_dir: Path, check: PipelineCheck | None) -> dict[str, PipelineConfig]:
    out = {}
    for name, p in r.each():
        p.only()
        file = p.get("file", "")
        landing = p.get("landing", "")
        reference = p.get("reference", "")
        pipeline = PipelineConfig(
            name=name,
            file=resolve_path(base, file) if file else shipped_pipeline_file(name),
            landing=resolve_path(base, landing) if landing else data_dir / "landing" / name,
            reference=resolve_path(base, reference) if reference else None,
            every_s=p.get("every", 0.0),
            on_new_files=p.get("on_new_files", True),
            demo_data=p.get("demo_data", False),
            cron=p.get("cron", None),
            after=p.get("after", ()),
            fresh_within_s=p.get("fresh_within", None),
        )
        if not pipeline.file.is_file():
            p.fail("file", f"no pipeline file at {pipeline.file}")
        out[name] = pipeline
    for name, pc in out.items():
        for other in pc.after:
            if other not in out or other == name:
                r.fail(f"{name}.after", f"{other!r} is not another configured pipeline")
        seen, todo = set(), list(pc.after)
        while todo:  # runs started by other runs must not loop back
            current = todo.pop()
            if current == name:
                r.fail(f"{name}.after", "pipelines triggering each other in a loop")
            if current not in seen:
                seen.add(current)
                todo.extend(out[current].after)
    if out and check is not None:
        check(list(out.values()), data_dir)
    return out


def _parse_tables(r: Reader) -> tuple[dict[str, float], dict[str, dict[str, str]]]:
    """``tables: {schema.table: {fresh_within: 2h, contract: {column: TYPE}}}`` as (table -> fresh_within_s,
    table -> its contract's column -> type); a table without one is left out of that one."""
    fresh_within: dict[str, float] = {}
    contracts: dict[str, dict[str, str]] = {}
    for name, t in r.each():
        t.only()
        if (fresh := t.get("fresh_within", None)) is not None:
            fresh_within[name] = fresh
        if (contract := t.get("contract", None)) is not None:
            contracts[name] = contract
    return fresh_within, contracts


def _parse_alerts(r: Reader) -> AlertsConfig:
    r.only()
    return AlertsConfig(
        rules=frozenset(r.get("on", ALERT_RULES)),
        renotify_after_s=r.get("renotify_after", 4 * 3600.0),
        backoff_for_s=r.get("backoff_for", 300.0),
        regression_min_s=r.get("regression_min", 1.0),
    )


def shipped_pipeline_file(name: str) -> Path:
    """A pipeline without ``file:`` is the one shipped under that name (``configs/pipelines/NAME.yaml``)."""
    return data_dir("configs") / "pipelines" / f"{name}.yaml"


def parse_config(
    text: str,
    file: Path,
    environ: Mapping[str, str] | None = None,
    replicas: Mapping[str, int] | None = None,
    check_pipelines: PipelineCheck | None = None,
) -> Config:
    """Build a :class:`Config` from YAML text; environment overrides win over the file.

    ``replicas`` overrides programs' ``replicas:`` (``ctl scale``); ``check_pipelines`` checks the pipeline
    files declared (None: only the ``pipelines:`` section itself). Raises one ConfigError that lists every
    error found (``.errors``), each with file, line and key.
    """
    environ = os.environ if environ is None else environ
    label = str(file)
    data, lines = load_yaml(text, label)
    try:
        return _parse(data, lines, file, environ, replicas, check_pipelines)
    except ConfigError as exc:
        raise without_secrets(exc, data) from None


def without_secrets(exc: ConfigError, document: Any) -> ConfigError:
    """``exc`` (each of its errors) with no secret the file holds: the one place config errors are redacted.

    A :class:`~foss_supervisor.base.redact.Redactor` learns ``document`` (the file as read, variables
    expanded: values of secret-looking keys, URL passwords, everything under ``secrets:``) and redacts
    every reason; a reason about a secret-looking key (``env.DB_PASSWORD``, ``headers.X-Api-Key``) loses
    whatever it quotes of the value (``got ***``), however short. File, line and key are kept.
    """
    redactor = Redactor()
    redactor.learn(document)
    out: list[ConfigError] = []
    for error in exc.errors:
        reason = redactor.text(error.reason)
        if any(looks_secret(part) for part in re.split(r"[.\[\]]", error.key) if part):
            reason = _QUOTED.sub(REDACTED, reason)
        out.append(ConfigError(error.file, error.key, reason, error.line))
    return ConfigError.collected(out)


# what a reason quotes of a value: gates show it (a repr) after "got "; a type ("got int", "got a str") or a
# count ("got 3 characters") is kept
_QUOTED = re.compile(r"(?<=got )(?!(?:an? |\d+ )?[A-Za-z_]+$).*$", re.S)


def _parse(
    data: Any,
    lines: dict[str, int],
    file: Path,
    environ: Mapping[str, str],
    replicas: Mapping[str, int] | None,
    check_pipelines: PipelineCheck | None,
) -> Config:
    label = str(file)
    errors: list[ConfigError] = []
    base = file.parent.resolve()
    file_counts: dict[str, int] = {}
    if isinstance(data, dict):
        file_counts = _override_replicas(data, replicas or {})
        interpolate_config(data, lines, label, base, environ, errors)
    root = Reader(data, "", label, lines, errors, SCHEMA)
    root.only()
    state_dir_text = _from_environ(environ, "FOSS_SUPERVISOR_STATE_DIR", root.gate("state_dir"), errors)
    if state_dir_text and not Path(state_dir_text).is_absolute():  # relative to what? the daemon runs from /
        errors.append(ConfigError("environment", "FOSS_SUPERVISOR_STATE_DIR", "must be an absolute path"))
        state_dir_text = None
    state_dir_text = state_dir_text or root.get("state_dir", "")
    state_dir = resolve_path(base, state_dir_text) if state_dir_text else default_state_dir()
    dash = root.sub("dashboard")
    dash.only()
    host = _from_environ(environ, "FOSS_SUPERVISOR_HOST", dash.gate("host"), errors) or dash.get("host", "127.0.0.1")
    port = _from_environ(environ, "FOSS_SUPERVISOR_PORT", dash.gate("port"), errors) or dash.get("port", 5000)
    debug_override: bool | None = _from_environ(environ, "FOSS_SUPERVISOR_DEBUG", ENV_FLAG, errors)
    debug = root.get("debug", False) or bool(debug_override)
    log = root.sub("log")
    log.only()
    history = root.sub("history")
    history.only()
    programs, groups = parse_programs(root.sub("programs"), base, file_counts)
    check_single_writers(programs, state_dir, label, lines, errors)
    program_groups = parse_groups(root.sub("groups"), groups)
    hooks = parse_hooks(root.sub("hooks"))
    data_dir_text = root.get("data_dir", "")
    data_path = resolve_path(base, data_dir_text) if data_dir_text else state_dir / "data"
    wh = root.sub("warehouse")
    wh.only()
    tables, contracts = _parse_tables(root.sub("tables"))
    pipelines: dict[str, PipelineConfig] = {}
    try:
        pipelines = _parse_pipelines(root.sub("pipelines"), base, data_path, check_pipelines)
        declared = set(data["programs"]) if isinstance(data, dict) and isinstance(data.get("programs"), dict) else set()
        programs, problems = check_dependencies(programs, groups, label, lines, declared)
        errors.extend(problems)
    except ConfigError as exc:
        errors.append(exc)
    config = Config(
        source=file,
        state_dir=state_dir,
        dashboard_host=host,
        dashboard_port=port,
        dashboard_public=dash.get("public", ()),
        debug=debug,
        log_max_bytes=log.get("max_bytes", 10 * 1024 * 1024),
        log_backups=log.get("backups", 3),
        history_enabled=history.get("enabled", True),
        history_retention_days=history.get("retention_days", 30),
        history_max_bytes=history.get("max_bytes", 2**30),
        history_sample_interval_s=history.get("sample_interval", 60.0),
        programs=programs,
        pipelines=pipelines,
        data_dir=resolve_path(base, data_dir_text) if data_dir_text else None,
        watch_interval_s=wh.get("watch_interval", 5.0),
        worker_memory_limit=wh.get("memory_limit", 0) or None,
        worker_max_temp_size=wh.get("max_temp_directory_size", None),
        worker_recycle_rss=wh.get("recycle_rss", None),
        worker_recycle_after_s=wh.get("recycle_after", None),
        groups=program_groups,
        hooks=hooks,
        config_generations=root.get("config_generations", 10),
        secrets=root.get("secrets", ()),
        tables=tables,
        contracts=contracts,
        alerts=_parse_alerts(root.sub("alerts")),
    )
    if errors:
        raise ConfigError.collected(errors)
    return config


T = TypeVar("T")
_FLAGS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _env_flag(value: Any) -> bool:
    text = str(value).strip().lower()
    if text not in _FLAGS:
        raise GateError(f"must be one of {', '.join(_FLAGS)}, got {shown(str(value))}")
    return _FLAGS[text]


#: a boolean environment override (FOSS_SUPERVISOR_DEBUG): 1/0, true/false, yes/no, on/off, nothing else
ENV_FLAG: Gate[bool] = Gate("bool", "1, 0, true, false, yes, no, on or off", _env_flag)


def _from_environ(environ: Mapping[str, str], variable: str, gate: Gate[T], errors: list[ConfigError]) -> T | None:
    """The environment's override of a key, through that key's own gate; None when unset or refused (noted).

    A variable is text: digits are read as the integer they spell, as YAML would read them.
    """
    text = environ.get(variable)
    if not text:
        return None
    try:
        return gate(int(text) if text.isascii() and text.isdigit() and len(text) < 20 else text)
    except GateError as exc:
        errors.append(ConfigError("environment", variable, exc.reason))
        return None


def _override_replicas(data: dict[str, Any], replicas: Mapping[str, int]) -> dict[str, int]:
    """Set the counts ``ctl scale`` asked for; returns the file's own count of each overridden program (their
    replicas keep the names the file's count gives: scaling never renames a running replica)."""
    programs = data.get("programs")
    file_counts: dict[str, int] = {}
    for name, count in replicas.items():
        if isinstance(programs, dict) and isinstance(programs.get(name), dict):
            written = programs[name].get("replicas", 1)
            file_counts[name] = written if isinstance(written, int) and not isinstance(written, bool) else 1
            programs[name]["replicas"] = count
    return file_counts


def load_config(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    replicas: Mapping[str, int] | None = None,
    check_pipelines: PipelineCheck | None = None,
) -> Config:
    """Load ``path``, else ``$FOSS_SUPERVISOR_CONFIG``, else the embedded default config (see
    :func:`parse_config`)."""
    environ = os.environ if environ is None else environ
    path = config_path(path, environ)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)  # never more: a config may be any file an operator points at
        if len(raw) > MAX_FILE_BYTES:
            raise ConfigError(str(path), "", f"larger than {MAX_FILE_BYTES} bytes")
        text = raw.decode("utf-8")
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), "", f"not UTF-8 text: {exc}") from None
    return parse_config(text, path, environ, replicas, check_pipelines)
