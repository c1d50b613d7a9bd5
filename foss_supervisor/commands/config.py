"""Configuration management commands: the effective config (secrets redacted), the file, a checked edit,
the kept generations (list, diff, restore).

Registered into :data:`foss_supervisor.commands.registry.COMMANDS` on import (``commands`` imports this module).
Every save (an edit, a restore) takes one path, one at a time: checked exactly as the file would be
loaded (a bad one changes nothing), gated (:func:`foss_supervisor.config.change.save_refusal`: a save
that would empty the file or stop every program needs ``allow_empty``), the replaced file kept as a
generation (:mod:`foss_supervisor.config.history`), written atomically, then the daemon reloads.
"""

from __future__ import annotations

import asyncio
import functools
import os
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from foss_supervisor.base.atomicfile import atomic_write
from foss_supervisor.base.jsonable import dataclass_to_json, jsonable
from foss_supervisor.base.processstates import RUNNING_STATES
from foss_supervisor.base.resources import default_config_path
from foss_supervisor.commands.impact import pipelines_preview
from foss_supervisor.commands.registry import CommandContext, Limit, command
from foss_supervisor.config import PipelineConfig, parse_config
from foss_supervisor.config.change import CONFIRM_HINT, pin_daemon_settings, save_refusal
from foss_supervisor.config.history import ConfigHistory
from foss_supervisor.config.yamlload import MAX_FILE_BYTES
from foss_supervisor.errors import CommandError, ConfigError, ConfigRefused, ConfirmationRequired

__all__ = [
    "check_pipeline_files",
    "config_diff",
    "config_file",
    "config_history",
    "config_restore",
    "config_show",
    "config_write",
    "pipeline_sources",
]

log = structlog.get_logger("foss_supervisor.config")


def check_pipeline_files(pipelines: Sequence[PipelineConfig], data_dir: Path) -> None:
    """The pipeline files a new config declares, checked by the pipelines' façade, imported when first called:
    the loader calls it only for a config that declares pipelines, so a daemon without them never imports the
    pipeline package (the daemon's reload uses this one too)."""
    from foss_supervisor.pipeline.engine.service import check_pipeline_files as check

    check(pipelines, data_dir)


@command("config_show", bulky=True)
async def config_show(ctx: CommandContext) -> dict[str, Any]:
    """The running (effective) config, every default filled in, secrets redacted (as in every reply).

    Returns ``{"file": str, "editable": bool, "config": {...}}``; editable is false when the daemon
    runs on the embedded default config (start it with --config FILE to edit one).
    """
    cfg = ctx.config  # frozen: read on a worker thread while the loop supervises (1,000 programs: ~0.4 s)
    return {
        "file": str(cfg.source),
        "editable": _editable(cfg.source),
        "config": await asyncio.to_thread(jsonable, cfg),
    }


def _editable(path: Path) -> bool:
    return path.resolve() != default_config_path().resolve()


@command("config_file", mutating=True, raw=True)
async def config_file(ctx: CommandContext) -> dict[str, Any]:
    """The config file as it is on disk, for the editor: ``{"file", "text"}``. The one reply not redacted
    (an edit saves the whole text back): it needs the write role, as a save does."""
    path = ctx.config.source
    text = await asyncio.to_thread(path.read_text, encoding="utf-8")
    return {"file": str(path), "text": text}


_SAVE_LOCKS: weakref.WeakKeyDictionary[CommandContext, asyncio.Lock] = weakref.WeakKeyDictionary()


def _save_lock(ctx: CommandContext) -> asyncio.Lock:
    """The one lock of a daemon's saves: read, check, keep, write and reload happen for one save at a time."""
    lock = _SAVE_LOCKS.get(ctx)
    if lock is None:
        lock = _SAVE_LOCKS[ctx] = asyncio.Lock()
    return lock


def _read_current(path: Path) -> tuple[bytes, float, int, tuple[int, int] | None]:
    """The config file's bytes (bounded), modification time, permission bits (set-id and sticky bits too),
    and its owner to keep: (uid, gid) when this daemon runs as root (anyone else writes its own files)."""
    with path.open("rb") as f:
        st = os.fstat(f.fileno())
        data = f.read(MAX_FILE_BYTES + 1)
    owner = (st.st_uid, st.st_gid) if os.geteuid() == 0 else None
    return data, st.st_mtime, st.st_mode & 0o7777, owner


def _up(ctx: CommandContext) -> list[str]:
    return [name for name, proc in ctx.supervisor.processes.items() if proc.state in RUNNING_STATES]


async def _save(ctx: CommandContext, text: str, dry_run: bool, allow_empty: bool) -> dict[str, Any]:
    """The one path of every save (an edit, a restore): check, gate, keep a generation, write, reload."""
    path = ctx.config.source
    if not _editable(path):
        raise CommandError("the daemon runs on the embedded default config: start it with --config FILE to edit one")
    if len(text.encode()) > MAX_FILE_BYTES:
        raise CommandError(f"the config is larger than {MAX_FILE_BYTES} bytes")
    async with _save_lock(ctx):
        try:
            new = await asyncio.to_thread(parse_config, text, path, None, None, check_pipeline_files)
        except ConfigError as exc:
            raise ConfigRefused(f"config refused, nothing changed: {exc}") from None
        try:
            current, mtime, mode, owner = await asyncio.to_thread(_read_current, path)
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror or exc}; nothing changed") from None
        current_text = current.decode("utf-8", "replace")
        refusal = save_refusal(current_text, text, new, ctx.config, _up(ctx))
        if dry_run:
            pinned, waiting = pin_daemon_settings(ctx.config, new)
            # the reload's own pipelines path (commands/impact.py): the Check lists and refuses what a save would
            pipelines, impact = await pipelines_preview(ctx.pipelines, pinned, ctx.config.contracts)
            plan = {
                **dataclass_to_json(ctx.supervisor.plan(pinned)),
                "needs_daemon_restart": waiting,
                "pipelines": pipelines,
                "impact": impact,
            }
            return {"dry_run": True, "file": str(path), "plan": plan, "needs_confirmation": refusal, "generation": None}
        if refusal is not None and not allow_empty:
            raise ConfirmationRequired(f"{refusal}; nothing changed: {CONFIRM_HINT}")
        if refusal is not None:
            log.warning("config_save_confirmed", file=str(path), consequence=refusal)
        history = ConfigHistory(path)
        keep = ctx.config.config_generations
        try:
            generation = await asyncio.to_thread(history.keep, current, mtime, keep)
        except OSError as exc:
            raise CommandError(
                f"cannot keep the current file in {history.folder} ({exc.strerror or exc}): nothing changed"
            ) from None
        try:
            await asyncio.to_thread(functools.partial(atomic_write, path, text, mode=mode, owner=owner))
        except OSError as exc:
            if generation is not None:
                await asyncio.to_thread(history.forget, generation)
            raise CommandError(f"cannot write {path} ({exc.strerror or exc}): nothing changed") from None
        try:
            result = await ctx.reload(False)
        except CommandError as exc:  # the reload refused the saved text: the file goes back to what runs
            await asyncio.to_thread(functools.partial(atomic_write, path, current, mode=mode, owner=owner))
            if generation is not None:
                await asyncio.to_thread(history.forget, generation)
            raise type(exc)(f"{exc}; the file is back as it was") from None
    number = generation.number if generation is not None else None
    log.info(
        "config_saved",
        file=str(path),
        generation=number,
        added=result.get("added"),
        removed=result.get("removed"),
        needs_daemon_restart=result.get("needs_daemon_restart"),
    )
    return {"dry_run": False, "file": str(path), "plan": result, "needs_confirmation": refusal, "generation": number}


@command(
    "config_write",
    mutating=True,
    text=(str, ..., Limit(size=MAX_FILE_BYTES)),
    dry_run=(bool, True),
    allow_empty=(bool, False),
)
async def config_write(ctx: CommandContext, text: str, dry_run: bool, allow_empty: bool) -> dict[str, Any]:
    """Check a new config file text, and unless dry_run, save it and reload.

    The text is checked exactly as the file would be loaded; a bad text is refused with every error
    (file, line, key) and nothing changes. A save that would empty the file (the text sets nothing),
    leave no program configured while some are, or stop every running program is refused with what
    exactly would happen (ConfirmationRequired) unless ``allow_empty`` confirms it; a dry run says so in
    ``needs_confirmation``. Saving keeps the replaced file as the next generation (see
    ``config_history``), writes atomically (a unique 0600 temporary file, fsync, rename), then reloads;
    saves run one at a time. If the reload refuses the text, the file is put back. Daemon-level settings
    (``needs_daemon_restart``: state_dir, dashboard, log, data_dir, pipelines on or off, warehouse
    memory_limit) keep their running values until ``foss-supervisor restart``; programs apply at once.
    The plan's ``impact`` (also in a dry run, the editor's Check) lists each pipeline's steps whose SQL changed
    and the tables downstream they rebuild; a change that breaks a column a step or a ``contract:`` uses is
    refused, dry run too (see ``reload``).
    Returns ``{"dry_run", "file", "plan": {added, changed, removed, unchanged, needs_daemon_restart, impact, ...},
    "needs_confirmation": str|None, "generation": int|None}`` (the number the replaced file is kept under).
    """
    return await _save(ctx, text, dry_run, allow_empty)


@command("config_history", mutating=True)
async def config_history(ctx: CommandContext) -> dict[str, Any]:
    """The kept generations of the config file (needs the token: they may hold secrets), newest first.

    Each save keeps the file it replaces; the newest ``config_generations`` (default 10) are kept, in
    ``<file>.history/`` (mode 0600). Returns ``{"file", "keep", "current": {"bytes", "saved_at"},
    "generations": [{"generation", "saved_at", "bytes", "file", "lines_added", "lines_removed"}]}``,
    the line counts being what restoring that generation would bring back and drop.
    """
    path = ctx.config.source
    history = ConfigHistory(path)

    def read() -> dict[str, Any]:
        current, mtime, _mode, _owner = _read_current(path)
        generations = history.summary(current)
        return {
            "file": str(path),
            "keep": ctx.config.config_generations,
            "current": {"bytes": len(current), "saved_at": mtime},
            "generations": generations,
        }

    try:
        return await asyncio.to_thread(read)
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None


@command("config_diff", mutating=True, generation=(int, ...))
async def config_diff(ctx: CommandContext, generation: int) -> dict[str, Any]:
    """The unified diff from a kept generation to the current config file (needs the token).

    ``--- <file> (generation N)`` / ``+++ <file> (current)``: the ``-`` lines are what restoring N
    brings back. Versions that differ in more than 5,000 lines are not diffed (the reply says how to
    compare them). Returns ``{"file", "generation", "diff": str}``; an unknown generation is refused
    naming the kept ones.
    """
    path = ctx.config.source
    history = ConfigHistory(path)

    def diff() -> str:
        return history.diff(generation, _read_current(path)[0])

    try:
        text = await asyncio.to_thread(diff)
    except LookupError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
    return {"file": str(path), "generation": generation, "diff": text}


@command("config_restore", mutating=True, generation=(int, ...), dry_run=(bool, True), allow_empty=(bool, False))
async def config_restore(ctx: CommandContext, generation: int, dry_run: bool, allow_empty: bool) -> dict[str, Any]:
    """Save a kept generation back as the config file and reload: exactly a ``config_write`` of its text.

    Checked and gated the same way (a restore that would stop every program needs ``allow_empty``);
    the file it replaces is kept as a new generation, so a restore can be undone by another.
    dry_run (the default) only returns the plan. Returns ``config_write``'s reply plus ``"restored": N``.
    """
    history = ConfigHistory(ctx.config.source)
    try:
        data = await asyncio.to_thread(history.read, generation)
    except LookupError as exc:
        raise CommandError(str(exc)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigRefused(f"generation {generation} is not UTF-8 text ({exc}): nothing changed") from None
    return {**await _save(ctx, text, dry_run, allow_empty), "restored": generation}


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
    steps = [
        {
            "name": s.name,
            "kind": jsonable(s.kind),
            "file": str(s.sql_path) if s.sql_path else None,
            "sql": s.sql,
            "callable": s.callable,
            "depends_on": list(s.depends_on),
        }
        for s in spec.steps
    ]
    return {"name": name, "file": str(spec.path), "yaml": yaml_text, "setup_sql": spec.setup_sql, "steps": steps}
