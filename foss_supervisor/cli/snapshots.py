"""``pipeline diff RUN_A RUN_B`` and ``pipeline rollback PIPELINE --to RUN [--yes]``: the CLI's face of the
``pipeline_diff`` and ``pipeline_rollback`` commands (commands/snapshots.py, where their replies are described).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from foss_supervisor.base.jsonable import jsonable
from foss_supervisor.cli.terminal import EXIT_OK, EXIT_USAGE, say
from foss_supervisor.control.client import ControlClient, call

if TYPE_CHECKING:
    from foss_supervisor.cli.dispatch import Target

__all__ = ["cmd_snapshots", "diff_lines"]

#: how long a diff may take: by default, and at most (the command's own bound)
DIFF_TIMEOUT_S, DIFF_TIMEOUT_MIN_S, DIFF_TIMEOUT_MAX_S = 60.0, 0.1, 600.0
MAX_COLUMN_LINES = 12  # column shifts shown per table (``--json`` has them all)


def _count(value: Any) -> str:
    return "-" if value is None else f"{value:,}"


def diff_lines(tables: list[dict[str, Any]]) -> list[str]:
    """A diff's tables as text: one line per table (rows on each side, added, removed, changed, how rows were
    matched), then its schema changes and the columns whose null rate, min or max moved."""
    lines = [
        f"{'TABLE':<32} {'STATUS':<8} {'ROWS A':>10} {'ROWS B':>10} {'ADDED':>9} {'REMOVED':>9} {'CHANGED':>9}  MATCH"
    ]
    for t in tables:
        match = t["match"] if isinstance(t["match"], str) else f"{t['match']['by']}: {', '.join(t['match']['columns'])}"
        if isinstance(t["match"], dict) and t["match"].get("key_repeats"):  # its key could not pair rows
            match = f"whole rows (key {', '.join(t['match']['key_repeats'])} repeats)"
        lines.append(
            f"{t['table']:<32} {t['status']:<8} {_count(t['rows_a']):>10} {_count(t['rows_b']):>10} "
            f"{_count(t['added']):>9} {_count(t['removed']):>9} {_count(t['changed']):>9}  {match[:60]}"
        )
        schema = t["schema"]
        lines += [f"    column added   {c['name']} {c['type']}" for c in schema["added"]]
        lines += [f"    column dropped {c['name']} {c['type']}" for c in schema["dropped"]]
        lines += [f"    column retyped {c['name']} {c['from']} -> {c['to']}" for c in schema["retyped"]]
        moved = [c for c in t["columns"] if c["a"] and c["b"] and c["a"] != c["b"]]
        for c in moved[:MAX_COLUMN_LINES]:
            a, b = c["a"], c["b"]
            parts = [f"nulls {a['null_rate']} -> {b['null_rate']}"] if a["null_rate"] != b["null_rate"] else []
            parts += [f"min {a['min']} -> {b['min']}"] if a["min"] != b["min"] else []
            parts += [f"max {a['max']} -> {b['max']}"] if a["max"] != b["max"] else []
            lines.append(f"    {c['name']}: {'; '.join(parts)}")
        if len(moved) > MAX_COLUMN_LINES:
            lines.append(f"    ... {len(moved) - MAX_COLUMN_LINES} more columns moved (--json shows them)")
    return lines


def cmd_snapshots(args: argparse.Namespace, config: Target) -> int:
    """``pipeline diff`` and ``pipeline rollback`` (``args.action``)."""
    if args.action == "diff":
        if not (args.name and args.other):
            say("ERROR", "pipeline diff needs two run ids: pipeline diff RUN_A RUN_B (see pipeline runs)")
            return EXIT_USAGE
        timeout = DIFF_TIMEOUT_S if args.timeout is None else args.timeout
        if not DIFF_TIMEOUT_MIN_S <= timeout <= DIFF_TIMEOUT_MAX_S:
            say("ERROR", f"--timeout must be {DIFF_TIMEOUT_MIN_S:g} to {DIFF_TIMEOUT_MAX_S:g} s, got {timeout:g}")
            return EXIT_USAGE
        with ControlClient(config.control_socket, timeout_s=timeout + 15.0) as client:
            result = client.call("pipeline_diff", run_a=args.name, run_b=args.other, timeout_s=timeout)
        if args.json:
            print(json.dumps(result, indent=2, default=jsonable))
            return EXIT_OK
        print(f"{result['pipeline']}: run {result['run_a']} (A) -> run {result['run_b']} (B)")
        print("\n".join(diff_lines(result["tables"])))
        return EXIT_OK
    if not (args.name and args.to):
        say("ERROR", "pipeline rollback needs a pipeline and a run: pipeline rollback PIPELINE --to RUN [--yes]")
        return EXIT_USAGE
    result = call(
        config.control_socket, "pipeline_rollback", timeout_s=3700.0, name=args.name, to=args.to, yes=args.yes
    )
    if args.json:
        print(json.dumps(result, indent=2, default=jsonable))
        return EXIT_OK
    published = {  # what was done, and (the plan) what would be
        "switch": (f"runs/{args.to} made current again", f"runs/{args.to} would be made current again"),
        "restore": (
            f"each Delta table restored to run {args.to}'s version (a new commit)",
            f"each Delta table would be restored to run {args.to}'s version (a new commit)",
        ),
        "republish": ("published anew (run no longer kept)", "would be published anew (run no longer kept)"),
    }
    if not result["applied"]:
        print(f"rolling {args.name} back to run {args.to} would change (A: now, B: after the rollback):")
        print("\n".join(diff_lines(result["changes"])))
        if result["published"]:
            print(f"published set ({result['published']}): {published[result['published']][1]}")
        say("INFO", "nothing changed; pass --yes to roll back")
        return EXIT_OK
    restored = ", ".join(f"{t['table']} ({t['rows']:,} rows)" for t in result["tables"])
    say("SUCCESS", f"rolled {args.name} back to run {args.to} as run {result['run_id']}: {restored}")
    if result["dropped"]:
        print(f"  dropped tables made since: {', '.join(result['dropped'])}")
    if result["published"]:
        print(f"  published set: {published[result['published']][0]}")
    return EXIT_OK
