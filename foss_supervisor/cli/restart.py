"""The CLI's ``restart``: the new daemon runs the config the old one ran, unless the operator names another.

``systemctl restart`` and ``pm2 restart`` bring back what ran; a bare ``foss-supervisor restart`` does the
same: it asks the running daemon for its config file over the control socket before it stops it, or,
with the daemon down, reads ``<state_dir>/last-config`` (written by every daemon at start). ``logs`` with
the daemon down finds its files the same way (:func:`load_last_config`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from foss_supervisor.cli.configfile import check_pipeline_files
from foss_supervisor.cli.lifecycle import HEALTH_BOUND_S, cmd_start, ping_daemon
from foss_supervisor.cli.terminal import EXIT_FAIL, say
from foss_supervisor.errors import SupervisorError

if TYPE_CHECKING:
    from foss_supervisor.config import Config

__all__ = ["cmd_restart", "config_given", "load_last_config"]


def cmd_restart(args: argparse.Namespace, config: Config) -> int:
    """Replace the daemon with a fresh one on the config it runs (as ``systemctl restart`` and ``pm2 restart``).

    Without ``--config`` (or ``$FOSS_SUPERVISOR_CONFIG``) the new daemon runs the config the running one
    answers with, else the one the last daemon of the state dir ran; with a different ``--config`` it
    runs the given one, and says so.
    """
    args.restart = True
    pong = ping_daemon(config, HEALTH_BOUND_S)
    theirs = Path(str(pong["config"])) if pong and pong.get("config") else None
    if theirs is None:
        from foss_supervisor.core.statestore import last_config

        theirs = last_config(config.state_dir)
    if theirs is None or theirs.resolve() == config.source.resolve():
        return cmd_start(args, config)
    if config_given(args):
        say("INFO", f"the daemon ran {theirs}; restarting it on the given config {config.source}")
        return cmd_start(args, config)
    try:
        config = load_last_config(theirs)
    except SupervisorError as exc:
        say("ERROR", f"the config the daemon ran is refused now: {exc}; fix it, or pass --config")
        return EXIT_FAIL
    say("INFO", f"restarting on the config the daemon ran: {theirs} (pass --config for another)")
    return cmd_start(args, config)


def config_given(args: argparse.Namespace) -> bool:
    """Did the operator name a config (``--config`` or ``$FOSS_SUPERVISOR_CONFIG``)?"""
    return args.config is not None or bool(os.environ.get("FOSS_SUPERVISOR_CONFIG"))


def load_last_config(path: Path) -> Config:
    """The config a daemon ran, loaded as ``--config path`` would be (ConfigError if refused now)."""
    from foss_supervisor.config import load_config

    return load_config(path, check_pipelines=check_pipeline_files)
