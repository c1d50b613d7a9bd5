"""``foss-supervisor events``: the daemon's events as JSON lines, from its journal and then live.

Each line is one event exactly as the daemon keeps it in ``<state_dir>/history/events-YYYY-MM-DD.jsonl``
(:mod:`foss_supervisor.core.eventjournal`) and sends it to subscribers: ``{"type", "at", "seq", "boot", ...}``
with the fields of its kind (``docs/dashboard.md`` lists the kinds; ``CommandCompleted`` is the audit
record: who ran which state-changing command, from where, with what outcome). Without ``--follow`` it
prints what the journal holds (the daemon may be down); with ``--follow`` it then prints each new event as
it happens, with no gap and no repeat between the two (the stream resumes after the journal's last event;
when the daemon no longer holds it, a ``{"type": "Resync"}`` line says events were missed). Without
``--since``, ``--follow`` starts with a ``{"type": "Snapshot", "programs": [...]}`` line: the state now.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fnmatch
import json
import re
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from foss_supervisor.cli.terminal import EXIT_FAIL, EXIT_OK, say
from foss_supervisor.control.client import ControlClient, call
from foss_supervisor.errors import NoAnswer, NotRunning

if TYPE_CHECKING:  # the CLI's front imports this module: the config (and PyYAML) only when events runs
    from foss_supervisor.config import Config

__all__ = ["args_events", "cmd_events", "matches", "parse_since"]

_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def args_events(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="NAME", help="only events about these programs or pipelines (globs)")
    p.add_argument("--since", type=parse_since, help="from this time: 30m, 2h, 7d ago, or an ISO 8601 time")
    p.add_argument("-f", "--follow", action="store_true", help="then print new events as they happen")


def parse_since(text: str) -> float:
    """``30s``/``30m``/``2h``/``7d`` (that long ago) or an ISO 8601 time (UTC unless it says) -> epoch
    seconds. Raises ``argparse.ArgumentTypeError`` for anything else (non-finite, future offsets included)."""
    now = time.time()
    if m := _AGO.match(text.strip()):
        return now - float(m[1]) * _UNIT_S[m[2]]
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time: {text!r} (give 30m, 2h, 7d or an ISO 8601 time)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def matches(event: Mapping[str, Any], names: Iterable[str]) -> bool:
    """Whether ``event`` is about one of ``names`` (globs over its ``name`` or ``pipeline``, and an audit
    record's ``names``, ``name`` or ``pipeline`` argument: ``events api`` shows who stopped api); all when none."""
    wanted = list(names)
    if not wanted:
        return True
    about = [str(event[k]) for k in ("name", "pipeline") if isinstance(event.get(k), str)]
    args = event.get("args") if event.get("type") == "CommandCompleted" else None
    if isinstance(args, Mapping):
        named = args.get("names")
        about += [str(n) for n in named] if isinstance(named, list) else []
        about += [str(args[k]) for k in ("name", "pipeline") if isinstance(args.get(k), str)]
    return any(fnmatch.fnmatchcase(a, pattern) for a in about for pattern in wanted)


def _emit(event: Mapping[str, Any]) -> None:
    sys.stdout.write(json.dumps(event, separators=(",", ":"), ensure_ascii=False) + "\n")
    sys.stdout.flush()


def cmd_events(args: argparse.Namespace, config: Config) -> int:
    from foss_supervisor.core.eventjournal import read_journal  # here: the CLI's front imports this module

    last: tuple[str, int] | None = None  # (boot, seq) of the last event printed from the journal
    if args.since is not None or not args.follow:
        for event in read_journal(config.state_dir / "history", args.since):
            if isinstance(event.get("boot"), str) and isinstance(event.get("seq"), int):
                last = (event["boot"], event["seq"])
            if matches(event, args.names):
                _emit(event)
        if not args.follow:
            return EXIT_OK
    try:
        return _follow(config, args.names, last, snapshot=args.since is None)
    except KeyboardInterrupt:
        return EXIT_OK
    except (NotRunning, NoAnswer) as exc:
        say("ERROR", str(exc))
        return EXIT_FAIL


def _follow(config: Config, names: list[str], last: tuple[str, int] | None, snapshot: bool) -> int:
    with contextlib.ExitStack() as stack:
        stream, head = _subscribe(stack, config, last)
        if last is not None and head.get("resync") and head.get("boot") != last[0]:
            # the journal ends in an earlier run of the daemon: this run's events from its first on
            stack.close()
            stream, head = _subscribe(stack, config, (str(head.get("boot")), 0))
        boot = head.get("boot")
        if last is not None and head.get("resync"):
            _emit({"type": "Resync", "at": time.time(), "boot": boot, "seq": head.get("seq")})
        if snapshot:
            status = call(config.control_socket, "status")
            programs = [
                {k: p.get(k) for k in ("name", "state", "health", "pid", "wanted")}
                for p in status["programs"] + status.get("services", [])
                if matches(p, names)
            ]
            _emit({"type": "Snapshot", "at": time.time(), "boot": boot, "seq": head.get("seq"), "programs": programs})
        for message in stream:
            if isinstance(message.get("event"), dict):
                event = message["event"] | {"boot": boot}
                if matches(event, names):
                    _emit(event)
            elif message.get("resync"):
                _emit({"type": "Resync", "at": time.time(), "boot": boot, "seq": message.get("seq")})
    raise NotRunning("the daemon ended the event stream")


def _subscribe(
    stack: contextlib.ExitStack, config: Config, after: tuple[str, int] | None
) -> tuple[Iterator[dict[str, Any]], dict[str, Any]]:
    """A new connection's event stream after ``after`` (boot, seq), and the daemon's first reply."""
    client = stack.enter_context(ControlClient(config.control_socket))
    stream = client.subscribe(*(after or (None, None)))
    return stream, next(stream)
