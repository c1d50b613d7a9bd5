"""Configuration management commands: the effective config (secrets redacted), the file, a checked edit.

Registered into :data:`foss_supervisor.commands.COMMANDS` on import (``commands`` imports this module).
An edit is checked exactly as the file would be loaded; a bad one changes nothing; a good one is written
atomically with the old file kept as ``<file>.previous``, then the daemon reloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from foss_supervisor.commands import CommandContext, command
from foss_supervisor.config import parse_config
from foss_supervisor.errors import CommandError, ConfigError, ConfigRefused
from foss_supervisor.resources import default_config_path
from foss_supervisor.yamlload import MAX_FILE_BYTES

__all__ = ["config_file", "config_show", "config_write", "pipeline_sources"]


def _plain_config(value: Any) -> Any:
    """Config dataclasses as JSON-able data (secrets are redacted where every reply is: commands.answer)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain_config(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain_config(v) for k, v in value.items()}
    if isinstance(value, frozenset | set):
        return sorted(_plain_config(v) for v in value)
    if isinstance(value, list | tuple):
        return [_plain_config(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.name if isinstance(value, signal.Signals) else value.value
    if isinstance(value, Path):
        return str(value)
    return value if value is None or isinstance(value, str | int | float | bool) else repr(value)


@command("config_show")
async def config_show(ctx: CommandContext) -> dict[str, Any]:
    """The running (effective) config, every default filled in, secrets redacted (as in every reply).

    Returns ``{"file": str, "editable": bool, "config": {...}}``; editable is false when the daemon
    runs on the embedded default config (start it with --config FILE to edit one).
    """
    cfg = ctx.config
    return {"file": str(cfg.source), "editable": _editable(cfg.source), "config": _plain_config(cfg)}


def _editable(path: Path) -> bool:
    return path.resolve() != default_config_path().resolve()


@command("config_file", mutating=True, raw=True)
async def config_file(ctx: CommandContext) -> dict[str, Any]:
    """The config file as it is on disk, for the editor: ``{"file", "text"}``. The one reply not redacted
    (an edit saves the whole text back): it needs the write role, as a save does."""
    path = ctx.config.source
    text = await asyncio.to_thread(path.read_text, encoding="utf-8")
    return {"file": str(path), "text": text}


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _write_keeping_previous(path: Path, text: str) -> Path:
    """Write ``text`` atomically (temp file, fsync, rename), the old file kept as ``<name>.previous``."""
    previous = path.with_name(path.name + ".previous")
    mode = path.stat().st_mode & 0o777
    _atomic_write(previous, path.read_bytes(), mode)
    _atomic_write(path, text.encode("utf-8"), mode)
    return previous


@command("config_write", mutating=True, text=(str, ...), dry_run=(bool, True))
async def config_write(ctx: CommandContext, text: str, dry_run: bool) -> dict[str, Any]:
    """Check a new config file text, and unless dry_run, save it and reload.

    The text is checked exactly as the file would be loaded; a bad text is refused with every error
    (file, line, key) and nothing changes. Saving writes atomically and keeps the old file as
    ``<file>.previous``, then reloads. Returns ``{"dry_run", "file", "plan": {added, changed, removed,
    needs_daemon_restart}, "previous": str|None}``.
    """
    path = ctx.config.source
    if not _editable(path):
        raise CommandError("the daemon runs on the embedded default config: start it with --config FILE to edit one")
    if len(text.encode()) > MAX_FILE_BYTES:
        raise CommandError(f"the config is larger than {MAX_FILE_BYTES} bytes")
    try:
        new = await asyncio.to_thread(parse_config, text, path)
    except ConfigError as exc:
        raise ConfigRefused(f"config refused, nothing changed: {exc}") from None
    plan = ctx.supervisor.plan(new).as_dict()
    if dry_run:
        return {"dry_run": True, "file": str(path), "plan": plan, "previous": None}
    previous = await asyncio.to_thread(_write_keeping_previous, path, text)
    result = await ctx.reload(False)
    return {"dry_run": False, "file": str(path), "plan": result, "previous": str(previous)}


@command("pipeline_sources", name=(str, ...))
async def pipeline_sources(ctx: CommandContext, name: str) -> dict[str, Any]:
    """A pipeline's definition as loaded: its YAML file, its setup SQL and every step's SQL or callable.

    Returns ``{"name", "file", "yaml": str, "setup_sql": str|None, "steps": [{"name", "kind", "file",
    "sql", "callable", "depends_on"}]}``.
    """
    if ctx.pipelines is None:
        raise CommandError("no pipelines are configured (see pipelines: in the config)")
    spec = ctx.pipelines.specs.get(name)
    if spec is None:
        raise CommandError(f"no such pipeline: {name!r}; known: {', '.join(ctx.pipelines.specs)}")
    yaml_text = await asyncio.to_thread(spec.path.read_text, encoding="utf-8")
    steps = [{"name": s.name, "kind": _plain_config(s.kind), "file": str(s.sql_path) if s.sql_path else None,
              "sql": s.sql, "callable": s.callable, "depends_on": list(s.depends_on)} for s in spec.steps]  # fmt: skip
    return {"name": name, "file": str(spec.path), "yaml": yaml_text, "setup_sql": spec.setup_sql, "steps": steps}
