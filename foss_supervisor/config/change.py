"""What a new config would do to the running daemon: settings that wait for a restart, saves that need a yes.

Daemon-level settings are taken once, when the daemon starts: the state dir (PID file, control socket,
logs), the dashboard's address, the daemon's own log, the warehouse (``data_dir``, whether pipelines run
at all, the worker's memory limit). A reload cannot move them under a running daemon, and a daemon that
*reported* the new values while it runs on the old ones would lose its CLI (which looks for the control
socket where the config says). :func:`pin_daemon_settings` keeps the running values in the new config and
names the keys that wait for ``foss-supervisor restart``; the programs' changes apply at once.

:func:`save_refusal` is the gate every save of the config file passes (an edit through ``config_write``,
a restore of an earlier generation): a save that would empty the file, leave no program configured while
some are, stop every running program by any means (removed, renamed, replicas gone, ``autostart: false``
on a changed program), or move what locates the running daemon (its state dir, hence its PID lock and
control socket, or its dashboard's address), is refused unless confirmed, with what exactly would happen.
A confirmed move keeps the running values until ``foss-supervisor restart`` (:func:`pin_daemon_settings`),
and the CLI finds the daemon by its config file meanwhile (:mod:`foss_supervisor.base.controlsocket`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence

from foss_supervisor.config.model import Config
from foss_supervisor.config.yamlload import load_yaml
from foss_supervisor.errors import ConfigError

__all__ = [
    "CONFIRM_HINT",
    "LOCATING_SETTINGS",
    "RESTART_SETTINGS",
    "holds_no_settings",
    "pin_daemon_settings",
    "save_refusal",
    "would_stop",
]

#: (the key as written in the file, the Config attribute): kept at their running values until a restart
RESTART_SETTINGS: tuple[tuple[str, str], ...] = (
    ("state_dir", "state_dir"),
    ("dashboard.host", "dashboard_host"),
    ("dashboard.port", "dashboard_port"),
    ("debug", "debug"),
    ("log.max_bytes", "log_max_bytes"),
    ("log.backups", "log_backups"),
    ("history.enabled", "history_enabled"),
    ("history.retention_days", "history_retention_days"),
    ("history.max_bytes", "history_max_bytes"),
)  # warehouse.* bounds are applied live: the worker restarts with them once idle (pipeline/engine/service.py)
#: the settings by which the CLI and monitors find the running daemon: a save moving one needs a yes
LOCATING_SETTINGS: tuple[tuple[str, str], ...] = (
    ("state_dir", "state_dir"),
    ("dashboard.host", "dashboard_host"),
    ("dashboard.port", "dashboard_port"),
)
CONFIRM_HINT = "to save it anyway, confirm: allow_empty=true (CLI: --allow-empty; the editor asks)"
_NAMES_SHOWN = 5


def pin_daemon_settings(running: Config, new: Config) -> tuple[Config, list[str]]:
    """``new`` with every daemon-level setting at its running value, and the keys that differed.

    The keys are those of :data:`RESTART_SETTINGS`, then ``data_dir`` (the warehouse would move: also
    a new ``state_dir`` without a ``data_dir``) and ``pipelines`` (turned on or off, or changed while the
    warehouse moves). When the warehouse moves or pipelines are turned on or off, the running pipelines
    stay as they are until the restart, since their folders are resolved against the data dir.
    """
    waiting = [key for key, attr in RESTART_SETTINGS if getattr(running, attr) != getattr(new, attr)]
    pinned = dataclasses.replace(new, **{attr: getattr(running, attr) for _, attr in RESTART_SETTINGS})
    moved = new.data_path != running.data_path
    switched = bool(new.pipelines) != bool(running.pipelines)
    if moved:
        waiting.append("data_dir")
    if moved or switched:
        if switched or new.pipelines != running.pipelines:
            waiting.append("pipelines")
        pinned = dataclasses.replace(pinned, data_dir=running.data_dir, pipelines=running.pipelines)
    return pinned, waiting


def holds_no_settings(text: str) -> bool:
    """Whether a config text sets nothing at all: empty, blank, only comments, ``---`` or ``{}``.

    A text that is not valid YAML sets something (it is not blank); it is never taken for empty.
    """
    try:
        data, _lines = load_yaml(text, "<text>")
    except ConfigError:
        return False
    return bool(data == {})


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_NAMES_SHOWN])
    return shown + (f" and {len(names) - _NAMES_SHOWN} more" if len(names) > _NAMES_SHOWN else "")


def would_stop(running: Config, new: Config, up: Collection[str]) -> list[str]:
    """The programs of ``up`` that would not run after ``new`` is applied, sorted.

    A program stops when it is not in ``new`` (removed, renamed, its replicas gone), or when it changed
    and ``autostart`` is false in ``new`` (a reload restarts a changed program only if it autostarts; see
    :meth:`foss_supervisor.core.supervisor.Supervisor.apply`). An unchanged program keeps running.
    """
    stopping = []
    for name in up:
        cfg = new.programs.get(name)
        if cfg is None or (cfg != running.programs.get(name) and not cfg.autostart):
            stopping.append(name)
    return sorted(stopping)


def save_refusal(current_text: str, new_text: str, new: Config, running: Config, up: Collection[str]) -> str | None:
    """Why saving ``new_text`` (parsed: ``new``) over ``current_text`` needs a confirmation, or None.

    ``running`` is the running config and ``up`` the programs now starting, running or in backoff.
    A save needs a confirmation when it would empty the file (the new text sets nothing while the
    current one does), leave no program configured while some are, stop every program that is up
    (:func:`would_stop`), or move a setting of :data:`LOCATING_SETTINGS` (the running daemon keeps it
    until a restart). The reason says each thing that would happen, with names and values.
    """
    what: list[str] = []
    if holds_no_settings(new_text) and not holds_no_settings(current_text):
        what.append("empty the config file (the new text sets nothing: every setting back to its default)")
    configured = sorted(running.programs)
    if configured and not new.programs:
        what.append(f"remove every configured program ({len(configured)}: {_names(configured)})")
    stopped = would_stop(running, new, up)
    if stopped and len(stopped) == len(set(up)):
        what.append(f"stop every running program ({len(stopped)}: {_names(stopped)})")
    moved = [
        f"{key} from {getattr(running, attr)} to {getattr(new, attr)}"
        for key, attr in LOCATING_SETTINGS
        if getattr(running, attr) != getattr(new, attr)
    ]
    if moved:
        what.append(
            f"move {', '.join(moved)}: the running daemon keeps its values until `foss-supervisor restart`, "
            "which is needed for the change to take effect"
        )
    if not what:
        return None
    return "this save would " + " and ".join(what)
