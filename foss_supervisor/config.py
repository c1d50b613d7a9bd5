"""Typed configuration: the one loader that builds the frozen dataclasses of :mod:`config_model` from YAML.

The types live in :mod:`config_model`, the located reading of values in :mod:`config_reader`, the
``programs``/``groups``/``hooks`` sections in :mod:`config_programs`; this module holds the file as a
whole, the ``pipelines`` section and the public names (importers use ``foss_supervisor.config``).

Every refusal is a :class:`~foss_supervisor.errors.ConfigError` naming the file, the line, the
dotted key and the reason, so an operator can fix a file without reading our code. Durations are
seconds (``5``, ``0.5``) or strings with a unit (``"500ms"``, ``"5s"``, ``"2m"``); sizes are bytes or
``"10MB"``-style strings. Relative paths are resolved against the config file's folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from foss_supervisor.config_model import (
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
from foss_supervisor.config_programs import check_dependencies, parse_groups, parse_hooks, parse_programs
from foss_supervisor.config_reader import (
    MAX_PROGRAMS,
    NAME_RE,
    Reader,
    as_bool,
    as_duration,
    as_int,
    as_names,
    as_port,
    as_size,
    as_str,
)
from foss_supervisor.errors import ConfigError
from foss_supervisor.interpolate import interpolate_config
from foss_supervisor.redact import MAX_LITERAL, MIN_LITERAL
from foss_supervisor.resources import (
    config_path,
    data_dir,
    default_config_path,
    default_state_dir,
    resolve_path,
)
from foss_supervisor.yamlload import MAX_FILE_BYTES, load_yaml

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


def _parse_pipelines(r: Reader, base: Path, data_dir: Path) -> dict[str, PipelineConfig]:
    out = {}
    for name in r.data:
        p = r.sub(str(name))
        p.only({"file", "landing", "reference", "every", "on_new_files", "demo_data", "cron", "after"})
        if not NAME_RE.match(str(name)):
            p.fail("", "pipeline names use letters, digits, '_', '.', '-' (at most 64)")
        file = p.get("file", as_str, "")
        path = resolve_path(base, file) if file else shipped_pipeline_file(str(name))
        if not path.is_file():
            p.fail("file", f"no pipeline file at {path}")
        landing = p.get("landing", as_str, "")
        reference = p.get("reference", as_str, "")
        out[str(name)] = PipelineConfig(
            name=str(name),
            file=path,
            landing=resolve_path(base, landing) if landing else data_dir / "landing" / str(name),
            reference=resolve_path(base, reference) if reference else None,
            every_s=p.get("every", as_duration, 0.0),
            on_new_files=p.get("on_new_files", as_bool, True),
            demo_data=p.get("demo_data", as_bool, False),
            cron=p.get("cron", _cron, None),
            after=p.get("after", as_names, ()),
        )
    for name, pc in out.items():
        p = r.sub(name)
        for other in pc.after:
            if other not in out or other == name:
                p.fail("after", f"{other!r} is not another configured pipeline")
        seen, todo = set(), list(pc.after)
        while todo:  # runs started by other runs must not loop back
            current = todo.pop()
            if current == name:
                p.fail("after", "pipelines triggering each other in a loop")
            if current not in seen:
                seen.add(current)
                todo.extend(out[current].after)
    if out:
        # Each pipeline's own YAML and SQL are part of the config: refused here, they exit 2 with their
        # file:line (not at daemon start, with exit 1). Imported here: a config without pipelines pays nothing.
        from foss_supervisor.pipeline.spec import check_isolation, load_for_daemon

        check_isolation(
            [load_for_daemon(pc.file, name=pc.name, landing=pc.landing, reference=pc.reference, data_dir=data_dir)
             for pc in out.values()]
        )  # fmt: skip
    return out


def _cron(value: Any) -> str:
    from croniter import croniter  # only configs with a schedule pay for the import

    text = as_str(value)
    if not croniter.is_valid(text):
        raise ValueError(f"{text!r} is not a cron expression like '*/15 * * * *'")
    return text


def shipped_pipeline_file(name: str) -> Path:
    """A pipeline without ``file:`` is the one shipped under that name (``configs/pipelines/NAME.yaml``)."""
    return data_dir("configs") / "pipelines" / f"{name}.yaml"


def parse_config(text: str, file: Path, environ: Mapping[str, str] | None = None,
                 replicas: Mapping[str, int] | None = None) -> Config:  # fmt: skip
    """Build a :class:`Config` from YAML text; environment overrides win over the file.

    ``replicas`` overrides programs' ``replicas:`` (``ctl scale``). Raises one ConfigError that lists
    every error found (``.errors``), each with file, line and key.
    """
    environ = os.environ if environ is None else environ
    label = str(file)
    data, lines = load_yaml(text, label)
    errors: list[ConfigError] = []
    base = file.parent.resolve()
    if isinstance(data, dict):
        _override_replicas(data, replicas or {})
        interpolate_config(data, lines, label, base, environ, errors)
    root = Reader(data, "", label, lines, errors)
    root.only({"state_dir", "dashboard", "debug", "log", "programs", "groups", "hooks", "pipelines", "data_dir",
               "warehouse", "secrets"})  # fmt: skip
    state_dir_text = environ.get("FOSS_SUPERVISOR_STATE_DIR") or root.get("state_dir", as_str, "")
    state_dir = resolve_path(base, state_dir_text) if state_dir_text else default_state_dir()
    dash = root.sub("dashboard")
    dash.only({"host", "port"})
    host = environ.get("FOSS_SUPERVISOR_HOST") or dash.get("host", as_str, "127.0.0.1")
    port = dash.get("port", as_port, 5000)
    if env_port := environ.get("FOSS_SUPERVISOR_PORT"):
        try:
            port = as_port(int(env_port))
        except (TypeError, ValueError):
            errors.append(ConfigError("environment", "FOSS_SUPERVISOR_PORT", f"must be a port, got {env_port!r}"))
    debug = root.get("debug", as_bool, False) or environ.get("FOSS_SUPERVISOR_DEBUG", "") not in ("", "0", "false")
    log = root.sub("log")
    log.only({"max_bytes", "backups"})
    programs, groups = parse_programs(root.sub("programs"), base)
    program_groups = parse_groups(root.sub("groups"), groups)
    hooks = parse_hooks(root.sub("hooks"))
    data_dir_text = root.get("data_dir", as_str, "")
    data_path = resolve_path(base, data_dir_text) if data_dir_text else state_dir / "data"
    wh = root.sub("warehouse")
    wh.only({"watch_interval", "memory_limit"})
    pipelines: dict[str, PipelineConfig] = {}
    try:
        pipelines = _parse_pipelines(root.sub("pipelines"), base, data_path)
        if not errors:  # a program that failed to parse would show up again as an unknown dependency
            programs = check_dependencies(programs, groups, label, lines)
    except ConfigError as exc:
        errors.append(exc)
    config = Config(
        source=file,
        state_dir=state_dir,
        dashboard_host=host,
        dashboard_port=port,
        debug=debug,
        log_max_bytes=log.get("max_bytes", as_size, 10 * 1024 * 1024),
        log_backups=log.get("backups", as_int(0, 100), 3),
        programs=programs,
        pipelines=pipelines,
        data_dir=resolve_path(base, data_dir_text) if data_dir_text else None,
        watch_interval_s=wh.get("watch_interval", as_duration, 5.0) or 5.0,
        worker_memory_limit=wh.get("memory_limit", as_str, "") or None,
        groups=program_groups,
        hooks=hooks,
        secrets=root.get("secrets", _as_secrets, ()),
    )
    if errors:
        raise ConfigError.collected(errors)
    return config


def _as_secrets(value: Any) -> tuple[str, ...]:
    """``secrets:``, a list of values redacted wherever they appear; never quoted back in an error."""
    if not isinstance(value, list):
        raise TypeError(f"must be a list of strings, got {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not MIN_LITERAL <= len(item.strip()) <= MAX_LITERAL or not item.strip("* "):
            what = type(item).__name__ if not isinstance(item, str) else f"{len(item.strip())} characters"
            raise ValueError(f"item {i} must be a string of {MIN_LITERAL} to {MAX_LITERAL} characters "
                             f"(not only '*'), got {what}")  # fmt: skip
    return tuple(item.strip() for item in value)


def _override_replicas(data: dict[str, Any], replicas: Mapping[str, int]) -> None:
    programs = data.get("programs")
    for name, count in replicas.items():
        if isinstance(programs, dict) and isinstance(programs.get(name), dict):
            programs[name]["replicas"] = count


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None,
                replicas: Mapping[str, int] | None = None) -> Config:  # fmt: skip
    """Load ``path``, else ``$FOSS_SUPERVISOR_CONFIG``, else the embedded default config."""
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
    return parse_config(text, path, environ, replicas)
