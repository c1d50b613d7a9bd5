"""``foss-supervisor analyze [startup|RUN_ID]``: the start-up's or a pipeline run's critical chain, as
``systemd-analyze critical-chain`` prints it."""

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
    p.add_argument(
        "what", nargs="?", default="startup", help="startup (the default), or a pipeline run's id (pipeline runs)"
    )
    p.add_argument("--all", action="store_true", help="every program (step) by how long it took, then the chain")
    p.add_argument("--json", action="store_true", help="print the reply as JSON")


def format_chain(reply: dict[str, Any], every: bool = False) -> list[str]:
    """The report's lines: the total, the programs or steps (with ``every``), the chain from the last down."""
    total = reply["total_s"]
    run = reply.get("run_id")
    if run is not None:
        head = (
            f"run {run} of {reply['pipeline']} {reply['status']} in {total:.3f}s"
            if total is not None
            else f"run {run} of {reply['pipeline']} still running"
        )
        items, missing = reply["steps"], "did not run"
        legend = 'The time a step ended (from the run\'s start) is printed after "@", the time it ran after "+".'
    else:
        head = (
            f"startup finished in {total:.3f}s (from the daemon's start to the last program RUNNING)"
            if total is not None
            else "startup not finished: some programs are not RUNNING yet"
        )
        items, missing = reply["programs"], "not RUNNING"
        legend = 'The time a program became RUNNING is printed after "@", the time it took to start after "+".'
    out = [head]
    if every:
        out.append("")
        timed = [p for p in items if p["duration_s"] is not None]
        for p in sorted(timed, key=lambda p: -p["duration_s"]):
            out.append(f"{p['duration_s']:>9.3f}s {p['name']}")
        out += [f"{'-':>10} {p['name']} ({missing})" for p in items if p["offset_s"] is None]
    out += ["", legend, ""]
    for depth, p in enumerate(reply["chain"]):
        prefix = "" if depth == 0 else "  " * (depth - 1) + "└─"
        out.append(f"{prefix}{p['name']} @{p['offset_s']:.3f}s +{p['duration_s']:.3f}s")
    return out


def cmd_analyze(args: argparse.Namespace, config: Target) -> int:
    if args.what == "startup":
        reply = call(config.control_socket, "analyze_startup")
    else:
        reply = call(config.control_socket, "analyze_run", run_id=args.what)
    print(json.dumps(reply, indent=2) if args.json else "\n".join(format_chain(reply, args.all)))
    return EXIT_OK
