"""``foss-supervisor analyze [startup]``: the start-up's critical chain, as ``systemd-analyze`` prints it."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from foss_supervisor.cli.terminal import EXIT_OK
from foss_supervisor.control.client import call

if TYPE_CHECKING:
    from foss_supervisor.cli.dispatch import Target

__all__ = ["args_analyze", "cmd_analyze", "format_chain"]


def args_analyze(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", nargs="?", choices=["startup"], default="startup", help="what to analyze (startup)")
    p.add_argument("--all", action="store_true", help="every program by how long it took to start, then the chain")
    p.add_argument("--json", action="store_true", help="print the reply as JSON")


def format_chain(reply: dict[str, Any], every: bool = False) -> list[str]:
    """The report's lines: the total, the programs (with ``every``), the chain from the last ready down."""
    total = reply["total_s"]
    out = [
        f"startup finished in {total:.3f}s (from the daemon's start to the last program RUNNING)"
        if total is not None
        else "startup not finished: some programs are not RUNNING yet"
    ]
    if every:
        out.append("")
        timed = [p for p in reply["programs"] if p["duration_s"] is not None]
        for p in sorted(timed, key=lambda p: -p["duration_s"]):
            out.append(f"{p['duration_s']:>9.3f}s {p['name']}")
        out += [f"{'-':>10} {p['name']} (not RUNNING)" for p in reply["programs"] if p["offset_s"] is None]
    out += ["", 'The time a program became RUNNING is printed after "@", the time it took to start after "+".', ""]
    for depth, p in enumerate(reply["chain"]):
        prefix = "" if depth == 0 else "  " * (depth - 1) + "└─"
        out.append(f"{prefix}{p['name']} @{p['offset_s']:.3f}s +{p['duration_s']:.3f}s")
    return out


def cmd_analyze(args: argparse.Namespace, config: Target) -> int:
    reply = call(config.control_socket, "analyze_startup")
    print(json.dumps(reply, indent=2) if args.json else "\n".join(format_chain(reply, args.all)))
    return EXIT_OK
