"""The ``foss-supervisor`` command line.

Everything but ``start --foreground`` talks to the daemon over the control socket. Heavy modules
(psutil, structlog, aiohttp, asyncio) are imported only by the commands that need them, so that
``foss-supervisor status`` starts fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from foss_supervisor import __version__
from foss_supervisor.base.resources import locate_control_socket
from foss_supervisor.cli.alerts import args_alerts, cmd_alerts
from foss_supervisor.cli.analyze import args_analyze, cmd_analyze
from foss_supervisor.cli.config import args_config, cmd_config, print_plan
from foss_supervisor.cli.configfile import check_pipeline_files
from foss_supervisor.cli.events import args_events, cmd_events
from foss_supervisor.cli.graph import args_graph, cmd_graph
from foss_supervisor.cli.lifecycle import cmd_start, cmd_stop
from foss_supervisor.cli.pipelines import (
    args_demo_data,
    args_export,
    args_pipeline,
    args_query,
    cmd_demo_data,
    cmd_export,
    cmd_pipeline,
    cmd_query,
)
from foss_supervisor.cli.programs import (
    args_ctl,
    args_is_ready,
    args_logs,
    args_status,
    args_why,
    cmd_ctl,
    cmd_is_ready,
    cmd_logs,
    cmd_status,
    cmd_top,
    cmd_why,
)
from foss_supervisor.cli.restart import cmd_restart
from foss_supervisor.cli.terminal import (
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    exit_code,
    guard_output,
    say,
)
from foss_supervisor.control.client import call
from foss_supervisor.errors import (
    ConfigError,
)

if TYPE_CHECKING:
    from foss_supervisor.config import Config


class Target(Protocol):
    """What the socket-only commands need of the config: where the control socket is."""

    @property
    def control_socket(self) -> Path: ...


class SocketTarget:
    """A Target found without loading the config (see resources.locate_control_socket)."""

    __slots__ = ("control_socket",)

    def __init__(self, control_socket: Path) -> None:
        self.control_socket = control_socket


# These only talk to the daemon: they find its socket without PyYAML and the typed config, which are
# about half of a CLI call's start-up (and so of the time `ctl stop` takes before the daemon hears it).
SOCKET_ONLY = frozenset(
    {
        "status",
        "is-ready",
        "why",
        "analyze",
        "ctl",
        "logs",
        "query",
        "pipeline",
        "demo-data",
        "export",
        "top",
        "reload",
        "config",
        "graph",
        "alerts",
    }
)

__all__ = ["check_pipeline_files", "main"]

DESCRIPTION = "One daemon for a data-platform host: supervised programs, the dashboard, the medallion pipeline."


def cmd_reload(args: argparse.Namespace, config: Target) -> int:
    """Re-read the daemon's own config file. A ``--config`` naming another file is refused (exit 2): reload
    would apply (or, with ``--dry-run``, check) the daemon's file, not the one named."""
    named = args.config or os.environ.get("FOSS_SUPERVISOR_CONFIG")
    if named:
        theirs = str(call(config.control_socket, "ping").get("config") or "")
        # (a relative path the daemon was given is relative to where it started: not compared)
        if Path(theirs).is_absolute() and Path(theirs).resolve() != Path(named).resolve():
            say("ERROR", f"the daemon runs {theirs}; reload re-reads that file, not {named}")
            say("INFO", f"to check {named} against it: foss-supervisor config save {named} --dry-run")
            say("INFO", f"to run {named} instead: foss-supervisor restart --config {named}")
            return EXIT_USAGE
    result = call(config.control_socket, "reload", timeout_s=600.0, dry_run=args.dry_run)
    print_plan(result, args.dry_run, config.control_socket)
    return EXIT_OK


def cmd_install_service(args: argparse.Namespace, config: Config) -> int:
    """Write the systemd units for this installation and print the systemctl commands (never runs sudo)."""
    from foss_supervisor.systemd.install import options_for, plan_install, write_units

    options, notes = options_for(config, user_mode=args.user)  # as loaded: the default file and what is exported
    plan = plan_install(options, notes=notes, socket_activation=args.socket)
    if args.print:
        for name, text in plan.files.items():
            print(f"# {plan.unit_dir / name}\n{text}")
    else:
        try:
            for path in write_units(plan):
                say("SUCCESS", f"wrote {path}")
        except PermissionError as exc:
            say("ERROR", f"cannot write to {plan.unit_dir} ({exc.strerror}); run as root, or use --print")
            return EXIT_FAIL
    for note in plan.notes:
        say("INFO", note)
    say("INFO", "then run:")
    for command in plan.commands:
        print(f"  {command}")
    return EXIT_OK


# ------------------------------------------------------------------------------------------ parser


def _args_start(p: argparse.ArgumentParser) -> None:
    p.add_argument("--foreground", action="store_true", help="run in this process (systemd, containers)")
    p.add_argument("--restart", action="store_true", help="replace a running instance")
    p.add_argument("--take-over-port", action="store_true", help="stop a foreign process holding the port")
    p.add_argument("--daemonized", action="store_true", help=argparse.SUPPRESS)


def _args_restart(p: argparse.ArgumentParser) -> None:
    p.add_argument("--foreground", action="store_true", help="run the new daemon in this process")
    p.add_argument("--take-over-port", action="store_true", help="stop a foreign process holding the port")
    p.set_defaults(daemonized=False)


def _args_reload(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")


def _args_install_service(p: argparse.ArgumentParser) -> None:
    p.add_argument("--user", action="store_true", help="a unit for systemctl --user")
    p.add_argument("--print", action="store_true", help="print the units instead of writing them")
    p.add_argument("--socket", action="store_true", help="also a .socket unit, so systemd owns the port")


def _no_args(p: argparse.ArgumentParser) -> None:
    pass


Command = Callable[[argparse.Namespace, Any], int]
SUBCOMMANDS: dict[str, tuple[str, Command, Callable[[argparse.ArgumentParser], None]]] = {
    "start": ("start the daemon (idempotent)", cmd_start, _args_start),
    "restart": ("replace the running daemon with a fresh one", cmd_restart, _args_restart),
    "stop": ("stop all programs and the daemon", cmd_stop, _no_args),
    "status": ("daemon and program states (exit 3: a program is not as wanted)", cmd_status, args_status),
    "is-ready": (
        "exit 0 when the programs are ready; --wait waits for them (scripts, CI)",
        cmd_is_ready,
        args_is_ready,
    ),
    "reload": ("re-read the config and apply the difference", cmd_reload, _args_reload),
    "config": (
        "save the config through the daemon's checks; list, diff, restore kept versions",
        cmd_config,
        args_config,
    ),
    "why": ("why a program, pipeline, table or run is as it is (exit 3: not as wanted)", cmd_why, args_why),
    "analyze": ("the start-up's (or a run's) critical chain: when each was ready", cmd_analyze, args_analyze),
    "logs": ("programs' output, the daemon's log, the pipeline's", cmd_logs, args_logs),
    "events": ("the daemon's events and audit records as JSON lines (journal, then --follow)", cmd_events, args_events),
    "ctl": ("start, stop, restart, signal or scale programs", cmd_ctl, args_ctl),
    "pipeline": ("run pipelines and read their history", cmd_pipeline, args_pipeline),
    "graph": ("programs, pipelines and tables as one graph: json, dot or mermaid", cmd_graph, args_graph),
    "alerts": (
        "open alerts; ack ID, silence KEY --for 2h (objectives, FATAL, BACKOFF, failed runs)",
        cmd_alerts,
        args_alerts,
    ),
    "query": ("a read-only SQL query on the warehouse", cmd_query, args_query),
    "export": ("a whole table or query result as csv, parquet or jsonl (no row cap)", cmd_export, args_export),
    "demo-data": ("write sample orders into a landing folder", cmd_demo_data, args_demo_data),
    "top": ("a terminal UI: live programs, their log, keys to start, stop, restart, signal", cmd_top, _no_args),
    "install-service": ("write systemd units for this installation", cmd_install_service, _args_install_service),
}


class _Parser(argparse.ArgumentParser):
    """argparse, except that ``--opt=--`` is a usage error: argparse drops the ``--`` and hands an option that
    takes one value an empty list (``--wait=--`` became ``wait=[]``, and a crash later). ``commands``: the
    subcommands' parsers by name (the root's; see :func:`_refuse_extra`)."""

    commands: dict[str, argparse.ArgumentParser]

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        if action.option_strings and action.nargs in (None, "?") and arg_strings == ["--"]:
            raise argparse.ArgumentError(action, "'--' is not a value: write the value itself")
        return super()._get_values(action, arg_strings)


def build_parser(only: str | None = None) -> _Parser:
    """The parser; with ``only``, just that subcommand (argparse's set-up is a visible share of a CLI call)."""
    common = _Parser(add_help=False)
    common.add_argument("--config", type=Path, help="config file (default: $FOSS_SUPERVISOR_CONFIG or embedded)")
    common.add_argument("--debug", action="store_true", help="verbose logs")
    parser = _Parser(prog="foss-supervisor", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"foss-supervisor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    parser.commands = {}
    for name, (text, func, add_arguments) in SUBCOMMANDS.items():
        if only is None or name == only:
            p = sub.add_parser(name, parents=[common], help=text)
            add_arguments(p)
            p.set_defaults(func=func)
            parser.commands[name] = p
    return parser


def _refuse_extra(parser: _Parser, args: argparse.Namespace, extra: list[str]) -> NoReturn:
    """Exit 2 with the usage of the subcommand ``extra`` (arguments it left over) was given to, not the root's
    (``pipeline release orders --all junk.csv`` printed the top-level usage), and its own reason when it has one
    (its ``explain_extra(args, extra) -> str | None`` default, e.g. cli/held.py)."""
    explain = getattr(args, "explain_extra", None)
    said = explain(args, extra) if callable(explain) else None
    parser.commands.get(args.command, parser).error(said or f"unrecognized arguments: {' '.join(extra)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a closed stdout (``| head``) silences it but never stops it halfway."""
    guard_output()
    return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv and argv[0] in SUBCOMMANDS else None)
    args, extra = parser.parse_known_args(argv)
    if extra:
        _refuse_extra(parser, args, extra)
    if args.debug:
        os.environ["FOSS_SUPERVISOR_DEBUG"] = "1"
    if args.command in SOCKET_ONLY:
        sock = locate_control_socket(args.config, os.environ)
        if sock is not None and sock.exists():
            return _run(args, SocketTarget(sock))
    from foss_supervisor.config import load_config

    try:
        config = load_config(args.config, check_pipelines=check_pipeline_files)
    except ConfigError as exc:
        say("ERROR", f"config refused: {exc}")
        sock = locate_control_socket(args.config, os.environ) if args.command == "stop" else None
        if sock is None or not sock.exists():
            return EXIT_USAGE
        # a broken file must not keep an operator from stopping the daemon that runs the last good one
        from foss_supervisor.config import Config

        say("WARN", f"stopping the daemon that answers on {sock} anyway")
        return _run(args, Config(source=Path(exc.file), state_dir=sock.parent))
    return _run(args, _follow_running(config))


def _follow_running(config: Config) -> Config:
    """``config`` aimed at the state dir of the daemon that runs its file, when that is not where the file
    says (a save moved ``state_dir``: the daemon keeps its own until a restart; see base/configlock.py)."""
    import dataclasses

    from foss_supervisor.base.configlock import ConfigLock
    from foss_supervisor.base.pidfile import PidFile

    if PidFile(config.pid_file).inspect().locked:
        return config  # a daemon lives where the file says
    running = ConfigLock(config.source).running_state_dir()
    if running is None or running == config.state_dir:
        return config
    say(
        "WARN",
        f"the daemon running {config.source} uses the state dir {running} (the file now names "
        f"{config.state_dir}; it applies at `foss-supervisor restart`)",
    )
    return dataclasses.replace(config, state_dir=running)


def _run(args: argparse.Namespace, target: Target) -> int:
    return exit_code(lambda: int(args.func(args, target)), target.control_socket)
