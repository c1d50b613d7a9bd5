"""``pipeline backfill NAME [--from V] [--to V] [--only-failed] [--dry-run] [--parallel N] [--wait]`` and
``pipeline partitions NAME``: re-run partitions of a pipeline that declares ``partition:``, and list each
partition with its last partition run (docs/pipelines.md, "Partitions and backfill")."""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, Any

from foss_supervisor.base.pipelinestates import RUN_SUCCEEDED
from foss_supervisor.cli.terminal import EXIT_FAIL, EXIT_OK, say
from foss_supervisor.control.client import call

if TYPE_CHECKING:
    from foss_supervisor.cli.dispatch import Target

__all__ = ["cmd_backfill", "cmd_partitions", "partition_summary_line", "partitions_table"]

GOOD = RUN_SUCCEEDED
POLL_S = 1.0


def partition_summary_line(summary: dict[str, Any]) -> str:
    """``pipeline status``'s line of a partitioned pipeline: its partitions by last run, its backfill."""
    counts = ", ".join(f"{n} {s}" for s, n in sorted((summary.get("counts") or {}).items())) or "none run yet"
    line = f"partitions by {summary['key']}: {counts}"
    bf = summary.get("backfill")
    if bf and bf.get("finished_at") is None:
        line += f"; backfill {len(bf.get('done') or {})} of {len(bf.get('partitions') or [])} done"
    return line


def partitions_table(data: dict[str, Any]) -> list[str]:
    """``pipeline partitions``: a header, one line per partition (value, files, status, run, failed step)."""
    key = str(data.get("key") or "partition")
    lines = [f"{key:<24} {'files':>5} {'status':<24} {'run':<24} failed step / error"]
    for p in data.get("partitions") or []:
        why = p.get("failed_step") or ""
        if p.get("error"):
            why = f"{why}: {p['error']}" if why else str(p["error"])
        lines.append(f"{p['partition']:<24} {p['files']:>5} {p['status']:<24} {p.get('run_id') or '-':<24} {why}"[:200])
    counts = ", ".join(f"{n} {status}" for status, n in sorted((data.get("counts") or {}).items()))
    lines.append(f"{len(data.get('partitions') or [])} partitions: {counts or 'none'}")
    if data.get("unmatched_files"):
        lines.append(f"{data['unmatched_files']} landing file(s) match no partition (see partition.from_file)")
    return lines


def cmd_partitions(args: argparse.Namespace, config: Target) -> int:
    """Print the partitions of ``args.name`` and their last runs (as JSON with ``--json``)."""
    data = call(config.control_socket, "pipeline_partitions", name=args.name)
    print(json.dumps(data, indent=2) if args.json else "\n".join(partitions_table(data)))
    return EXIT_OK


def cmd_backfill(args: argparse.Namespace, config: Target) -> int:
    """Start (or with ``--dry-run`` list) a backfill; with ``--wait`` follow it partition by partition and exit
    1 when any partition's run did not succeed."""
    reply = call(
        config.control_socket,
        "pipeline_backfill",
        name=args.name,
        start=getattr(args, "start", None) or "",
        end=args.to or "",
        only_failed=bool(args.only_failed),
        dry_run=bool(args.dry_run),
        parallel=int(args.parallel),
        wait=False,
    )
    chosen: list[str] = reply["partitions"]
    if args.json and (args.dry_run or not args.wait):
        print(json.dumps(reply, indent=2))
        return EXIT_OK
    if args.dry_run:
        say("INFO", f"backfill of {args.name} would run {len(chosen)} partition(s): {', '.join(chosen) or 'none'}")
        return EXIT_OK
    say("INFO", f"backfill of {args.name} started: {len(chosen)} partition(s), one at a time")
    if not args.wait:
        return EXIT_OK
    shown: set[str] = set()
    while True:
        backfill = call(config.control_socket, "pipeline_partitions", name=args.name)["backfill"] or {}
        for value, status in (backfill.get("done") or {}).items():
            if value not in shown:
                shown.add(value)
                say("SUCCESS" if status in GOOD else "ERROR", f"partition {value}: {status}")
        if backfill.get("finished_at") is not None:
            break
        time.sleep(POLL_S)
    done = backfill.get("done") or {}
    bad = sorted(v for v, s in done.items() if s not in GOOD)
    if args.json:
        print(json.dumps(backfill, indent=2))
    say("SUCCESS" if not bad and len(done) == len(chosen) else "ERROR", f"{len(done) - len(bad)} of {len(chosen)} ok")
    return EXIT_OK if not bad and len(done) == len(chosen) else EXIT_FAIL
