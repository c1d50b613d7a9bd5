"""The CLI's subcommands about programs: ``status``, ``is-ready``, ``logs``, ``ctl`` (start, stop, restart, signal,
scale), ``top``.

Each takes any selector where it takes a program (see :mod:`foss_supervisor.core.selectors`) and talks to the
daemon over the control socket; ``logs`` reads the files itself when the daemon is down.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from typing import TYPE_CHECKING, Any

from foss_supervisor.base.processstates import STOPPED_STATES, ProcessState
from foss_supervisor.cli.terminal import (
    EXIT_FAIL,
    EXIT_NOT_AS_WANTED,
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

__all__ = [
    "args_ctl",
    "args_is_ready",
    "args_logs",
    "args_status",
    "args_why",
    "cmd_ctl",
    "cmd_is_ready",
    "cmd_logs",
    "cmd_status",
    "cmd_top",
    "cmd_why",
]

SELECTOR_HELP = "a program, a group, a replica set, a glob like 'web-*', or all"


def cmd_status(args: argparse.Namespace, config: Target) -> int:
    reply = call(config.control_socket, "status", names=args.names, ports=args.ports)
    return print_status(reply, args.json, not args.names)


def args_why(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "name", help="a program, a service (@dashboard), a pipeline, a table (schema.table), a run id or a node id"
    )
    p.add_argument("--json", action="store_true", help="print the reply as JSON")


def cmd_why(args: argparse.Namespace, config: Target) -> int:
    """``api BACKOFF <- exited 3 times in 41 s, last: exit 1 <- ...`` (then ``affects: ...``, what is downstream of
    it on the graph): exit 0 when as wanted, 3 otherwise."""
    result = call(config.control_socket, "why", name=args.name)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(" <- ".join(result["chain"]))
        if result.get("affected"):
            shown = result["affected"][:20]
            more = len(result["affected"]) - len(shown)
            print("affects: " + ", ".join(shown) + (f" and {more} more" if more > 0 else ""))
    return EXIT_OK if result["as_wanted"] else EXIT_NOT_AS_WANTED


def cmd_logs(args: argparse.Namespace, config: Target) -> int:
    """Every line printed passed a redaction: the daemon's (``logs`` and ``log_read`` replies) or, with the
    daemon down, one that learned the config's secrets the same way."""
    from foss_supervisor.cli.logfollow import DaemonFollower
    from foss_supervisor.core.logview import LineSource, follow

    followers: list[LineSource]
    try:
        result = call(config.control_socket, "logs", names=args.names, lines=args.lines, contains=args.grep)
        names: list[str] = [s["name"] for s in result["sources"]]
        tails: dict[str, list[str]] = result["lines"]
        if args.follow:
            ask = functools.partial(call, config.control_socket)
            followers = [DaemonFollower(ask, name) for name in names]
    except NotRunning:
        names, tails, followers = _offline_logs(args)
    prefix = len(names) > 1
    width = max((len(name) for name in names), default=0)
    for name in names:
        for line in tails.get(name, []):
            print(f"{name.ljust(width)} | {line}" if prefix else line)
    sys.stdout.flush()
    if args.follow and not output_closed():
        follow(followers, stop=output_closed, contains=args.grep)
    return EXIT_OK


def _offline_logs(args: argparse.Namespace) -> tuple[list[str], dict[str, list[str]], list[Any]]:
    """The daemon is down: the same sources, found from the config (without ``--config``: the one the last
    daemon of the state dir ran), read from disk and redacted here."""
    from foss_supervisor.base.redact import Redactor
    from foss_supervisor.cli.restart import config_given, load_last_config
    from foss_supervisor.config import load_config
    from foss_supervisor.core.logview import Follower, search, select_sources, tail
    from foss_supervisor.core.statestore import last_config

    config = load_config(args.config)
    if not config_given(args) and (ran := last_config(config.state_dir)) is not None:
        config = load_last_config(ran)
    redactor = Redactor()
    redactor.learn(config)
    say("INFO", f"foss-supervisor is not running; reading the log files under {config.state_dir}")
    program_logs = {n: p.log.file or config.state_dir / "logs" / f"{n}.log" for n, p in config.programs.items()}
    sources = select_sources(args.names, program_logs, config.state_dir, config.replica_sets, config.groups)
    if args.grep:
        tails = {s.name: search(s, args.grep, args.lines, redactor.lines) for s in sources}
    else:
        tails = {s.name: list(redactor.lines(tail(s, args.lines))) for s in sources}
    followers = [Follower(s, redactor.lines) for s in sources] if args.follow else []
    return [s.name for s in sources], tails, followers


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
    if args.rolling and args.action != "restart":
        say("ERROR", "--rolling goes with restart only (ctl restart --rolling web)")
        return EXIT_USAGE
    extra = {"rolling": True} if args.rolling else {}
    selected = len(args.names) if not args.rolling else 1000  # a rolling restart waits for each in turn
    results = call(
        config.control_socket,
        args.action,
        timeout_s=args.wait * selected + 10.0,
        names=args.names,
        wait_s=float(args.wait),
        **extra,
    )
    failed = False
    for p in results:
        print(f"{p['name']}: {p['state']} (pid {p['pid'] or '-'}) {p['reason']}".rstrip())
        up = p["state"] == ProcessState.RUNNING or p.get("completed", False)  # a one-shot job that is done counts
        ok = up if args.action != "stop" else p["state"] in STOPPED_STATES
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
    say("SUCCESS", f"{args.names[0]} runs {args.names[1]} replicas (kept by reloads until its replicas: is edited)")
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
    p.add_argument("--ports", action="store_true", help="also what each program listens on (TCP), before INFO")


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
    p.add_argument(
        "--grep",
        default="",
        metavar="TEXT",
        help="only lines holding TEXT (case-insensitive plain text; the last 16 MiB of each log are searched)",
    )


def args_ctl(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "action",
        choices=["start", "stop", "restart", "signal", "scale"],
        help="what to do; signal takes the signal first (ctl signal HUP web), "
        "scale a program and a count (ctl scale web 4)",
    )
    p.add_argument("names", nargs="+", metavar="SELECTOR", help=SELECTOR_HELP)
    p.add_argument("--wait", type=duration_s, default=30.0, help="seconds to wait for the new state (default 30)")
    p.add_argument(
        "--rolling",
        action="store_true",
        help="restart one at a time, each ready (RUNNING, healthy) before the next; --wait bounds each",
    )


def cmd_is_ready(args: argparse.Namespace, config: Target) -> int:
    """Exit 0 when every selected program is ready (RUNNING and, when probed, healthy), else 1 saying which
    is not; with --wait, wait up to --timeout seconds for them first (process-compose's ``is-ready --wait``)."""
    import time

    wait_s = args.timeout if args.wait else 0.0
    began = time.monotonic()
    result = call(config.control_socket, "is_ready", timeout_s=wait_s + 10.0, names=args.names, wait_s=wait_s)
    if result["ready"]:
        say("SUCCESS", f"ready: {', '.join(p['name'] for p in result['programs']) or '(no program selected)'}")
        return EXIT_OK
    late = [p for p in result["programs"] if not p["ready"]]
    after = f" after {time.monotonic() - began:.1f}s" if args.wait else ""  # stopped or FATAL ones end it early
    say("ERROR", f"not ready{after}: " + "; ".join(f"{p['name']} ({p['state']}, {p['reason']})" for p in late))
    return EXIT_FAIL


def args_is_ready(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", default=["all"], metavar="SELECTOR", help=SELECTOR_HELP + " (default: all)")
    p.add_argument(
        "--wait", action="store_true", help="wait for them to be ready (up to --timeout) instead of answering at once"
    )
    p.add_argument(
        "--timeout", type=duration_s, default=60.0, help="seconds --wait waits at most (0 to 3600, default 60)"
    )
