"""The CLI's subcommands about programs: ``status``, ``logs``, ``ctl`` (start, stop, restart, signal, scale), ``top``.

Each takes any selector where it takes a program (see :mod:`foss_supervisor.core.selectors`) and talks to the
daemon over the control socket; ``logs`` reads the files itself when the daemon is down.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foss_supervisor.cli.terminal import (
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    duration_s,
    output_closed,
    print_status,
    say,
)
from foss_supervisor.control.client import call
from foss_supervisor.errors import NotRunning

if TYPE_CHECKING:
    from foss_supervisor.cli.dispatch import Target

__all__ = ["args_ctl", "args_logs", "args_status", "cmd_ctl", "cmd_logs", "cmd_status", "cmd_top"]

SELECTOR_HELP = "a program, a group, a replica set, a glob like 'web-*', or all"


def cmd_status(args: argparse.Namespace, config: Target) -> int:
    return print_status(call(config.control_socket, "status", names=args.names), args.json, not args.names)


def cmd_logs(args: argparse.Namespace, config: Target) -> int:
    from foss_supervisor.core.logview import LogSource, follow

    try:
        result = call(config.control_socket, "logs", names=args.names, lines=args.lines)
        sources = [LogSource(s["name"], Path(s["file"]), tuple(s["logger_prefix"])) for s in result["sources"]]
        tails: dict[str, list[str]] = result["lines"]
    except NotRunning:
        sources, tails = _offline_logs(args)
    prefix = len(sources) > 1
    width = max((len(s.name) for s in sources), default=0)
    for source in sources:
        for line in tails.get(source.name, []):
            print(f"{source.name.ljust(width)} | {line}" if prefix else line)
    sys.stdout.flush()
    if args.follow and not output_closed():
        follow(sources, stop=output_closed)
    return EXIT_OK


def _offline_logs(args: argparse.Namespace) -> tuple[list[Any], dict[str, list[str]]]:
    """The daemon is down: the same sources, found from the config, read from disk."""
    from foss_supervisor.config import load_config
    from foss_supervisor.core.logview import select_sources, tail

    config = load_config(args.config)
    say("INFO", f"foss-supervisor is not running; reading the log files under {config.state_dir}")
    program_logs = {n: p.log.file or config.state_dir / "logs" / f"{n}.log" for n, p in config.programs.items()}
    sources = select_sources(args.names, program_logs, config.state_dir, config.replica_sets, config.groups)
    return sources, {s.name: tail(s, args.lines) for s in sources}


def cmd_ctl(args: argparse.Namespace, config: Target) -> int:
    if args.action == "scale":
        return _scale(args, config)
    if args.action == "signal":
        if len(args.names) < 2:
            say("ERROR", "usage: ctl signal SIGNAL SELECTOR... (e.g. ctl signal HUP web)")
            return EXIT_USAGE
        sent = call(config.control_socket, "signal", signal=args.names[0], names=args.names[1:])
        for p in sent:
            outcome = f"sent {p['signal']} to pid {p['pid']}" if p["sent"] else p["reason"]
            print(f"{p['name']}: {outcome}")
        return EXIT_OK if all(p["sent"] for p in sent) else EXIT_FAIL
    results = call(
        config.control_socket, args.action, timeout_s=args.wait + 10.0, names=args.names, wait_s=float(args.wait)
    )
    failed = False
    for p in results:
        print(f"{p['name']}: {p['state']} (pid {p['pid'] or '-'}) {p['reason']}".rstrip())
        up = p["state"] == "RUNNING" or p.get("completed", False)  # a one-shot job that is done counts
        ok = up if args.action != "stop" else p["state"] in ("STOPPED", "EXITED", "FATAL")
        failed = failed or not ok
    return EXIT_FAIL if failed else EXIT_OK


def _scale(args: argparse.Namespace, config: Target) -> int:
    if len(args.names) != 2 or not args.names[1].isdigit():
        say("ERROR", "usage: ctl scale PROGRAM COUNT (e.g. ctl scale web 4)")
        return EXIT_USAGE
    plan = call(config.control_socket, "scale", timeout_s=600.0, name=args.names[0], replicas=int(args.names[1]))
    for key in ("added", "removed"):
        if plan[key]:
            print(f"{key:>7}: {', '.join(plan[key])}")
    say("SUCCESS", f"{args.names[0]} runs {args.names[1]} replicas (until the next reload)")
    return EXIT_OK


def cmd_top(args: argparse.Namespace, config: Target) -> int:
    """The terminal UI (textual is imported only here: it is most of this command's start-up)."""
    try:
        from foss_supervisor.cli.top import TopApp
    except ImportError as exc:
        say("ERROR", f"`top` needs textual ({exc.name} is missing): pip install 'foss-supervisor[tui]'")
        return EXIT_FAIL

    call(config.control_socket, "ping")  # not running: say so plainly instead of an empty screen
    TopApp(config.control_socket).run()
    return EXIT_OK


def args_status(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="SELECTOR", help=SELECTOR_HELP + " (default: all)")
    p.add_argument(
        "--json", action="store_true", help="print the reply as JSON and exit 0 (all_as_wanted says what exit 3 would)"
    )


def args_logs(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "names",
        nargs="*",
        default=["all"],
        metavar="SELECTOR",
        help=SELECTOR_HELP + ", 'daemon' (its own log) or 'pipeline' (default: all programs)",
    )
    p.add_argument("-n", "--lines", type=int, default=100, help="how many of the last lines to show (default 100)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (several: prefixed by name)")


def args_ctl(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "action",
        choices=["start", "stop", "restart", "signal", "scale"],
        help="what to do; signal takes the signal first (ctl signal HUP web), "
        "scale a program and a count (ctl scale web 4)",
    )
    p.add_argument("names", nargs="+", metavar="SELECTOR", help=SELECTOR_HELP)
    p.add_argument("--wait", type=duration_s, default=30.0, help="seconds to wait for the new state (default 30)")
