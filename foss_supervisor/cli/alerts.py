"""The CLI's ``alerts``: open and recent incidents, and acknowledging or silencing them (docs/graph.md, "Alerts").

``foss-supervisor alerts`` (or ``alerts list``) prints the open incidents, the silences and the last closed
ones (``--json``: the ``alerts`` command's reply); ``alerts ack ID`` acknowledges an open incident (no more
repeats); ``alerts silence KEY --for 2h`` tells nothing about KEY for that long, ``alerts unsilence KEY`` lifts
that silence. The daemon does the work (commands ``alerts``, ``alert_ack``, ``alert_silence``,
``alert_unsilence``); the dashboard's /alerts page and the API reach the same ones.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, Any

from foss_supervisor.cli.terminal import EXIT_OK, EXIT_USAGE, say
from foss_supervisor.control.client import call

if TYPE_CHECKING:
    from foss_supervisor.cli.dispatch import Target

__all__ = ["args_alerts", "cmd_alerts"]

#: the longest ``--for`` (seconds)
MAX_SILENCE_S = 30 * 86400.0


def _silence_s(text: str) -> float:
    """``--for``: what the config's durations take (``90m``, ``2h``, ``1d``, seconds), 1 s to 30 days."""
    from foss_supervisor.config.gates import GateError, duration  # only here: the config package loads PyYAML

    try:
        return duration(1, MAX_SILENCE_S)(text)
    except GateError as exc:
        raise argparse.ArgumentTypeError(exc.reason) from None


def args_alerts(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "action",
        nargs="?",
        choices=("list", "ack", "silence", "unsilence"),
        default="list",
        help="list (default): open and recent alerts; ack ID: no more repeats; silence KEY: tell nothing for --for;"
        " unsilence KEY: lift a silence",
    )
    p.add_argument("target", nargs="?", default="", help="ack: the incident's ID; (un)silence: the alert's KEY")
    p.add_argument(
        "--for", dest="for_s", type=_silence_s, default=7200.0, help="silence: how long, e.g. 90m, 2h, 1d (default 2h)"
    )
    p.add_argument("--json", action="store_true", help="print the reply as JSON")


def _when(at: float | None) -> str:
    return "-" if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def _print(reply: dict[str, Any]) -> None:
    if not reply["open"]:
        print("no open alerts")
    for i in reply["open"]:
        flags = "".join((" acked" if i["acked"] else "", " silenced" if i["silenced"] else ""))
        print(f"#{i['id']}  FIRING{flags}  since {_when(i['opened_at'])}  {i['key']}\n    {i['summary']}")
    for s in reply["silences"]:
        print(f"silenced until {_when(s['until'])}  {s['key']}")
    for i in reply["closed"][:10]:
        print(f"#{i['id']}  resolved {_when(i['closed_at'])}  {i['key']}")


def cmd_alerts(args: argparse.Namespace, config: Target) -> int:
    """List, acknowledge or silence alerts; exit 2 for a missing or malformed ID or KEY."""
    if args.action == "list":
        reply = call(config.control_socket, "alerts")
        print(json.dumps(reply, indent=2)) if args.json else _print(reply)
        return EXIT_OK
    if not args.target:
        say("ERROR", f"alerts {args.action} needs {'an ID' if args.action == 'ack' else 'a KEY'}")
        return EXIT_USAGE
    if args.action == "ack":
        if not args.target.isascii() or not args.target.isdigit():
            say("ERROR", f"an alert ID is a number (see `foss-supervisor alerts`), got {args.target!r}")
            return EXIT_USAGE
        reply = call(config.control_socket, "alert_ack", id=int(args.target))
        say("OK", f"alert #{reply['id']} acknowledged: {reply['key']}")
    elif args.action == "unsilence":
        reply = call(config.control_socket, "alert_unsilence", key=args.target)
        say("OK", f"{reply['key']}: silence lifted")
    else:
        reply = call(config.control_socket, "alert_silence", key=args.target, for_s=args.for_s)
        say("OK", f"{reply['key']} silenced until {_when(reply['until'])}")
    if args.json:
        print(json.dumps(reply, indent=2))
    return EXIT_OK
