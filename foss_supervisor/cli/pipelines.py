"""The CLI's subcommands about data: ``pipeline`` (run, replay, retry, cancel, pause, resume, status, runs,
validate, reset; diff and rollback in snapshots.py), ``query``, ``export`` and ``demo-data``. All but
``pipeline validate`` talk to the daemon.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foss_supervisor.base.atomicfile import atomic_publish
from foss_supervisor.base.jsonable import jsonable
from foss_supervisor.base.pipelinestates import RUN_SUCCEEDED
from foss_supervisor.cli.backfill import cmd_backfill, cmd_partitions, partition_summary_line
from foss_supervisor.cli.held import cmd_release, held_line, release_extra
from foss_supervisor.cli.snapshots import cmd_snapshots
from foss_supervisor.cli.terminal import EXIT_FAIL, EXIT_OK, EXIT_USAGE, duration_s, say
from foss_supervisor.control.client import ControlClient, call
from foss_supervisor.errors import ConfigError

if TYPE_CHECKING:
    from foss_supervisor.cli.dispatch import Target

__all__ = [
    "args_demo_data",
    "args_export",
    "args_pipeline",
    "args_query",
    "cmd_demo_data",
    "cmd_export",
    "cmd_pipeline",
    "cmd_query",
    "runs_table",
]


GOOD_RUN = RUN_SUCCEEDED


def run_rows(run: dict[str, Any]) -> int | None:
    """The lines a run ingested: its record's ``ingested`` (what its shipped ``ingest`` steps took in from landing
    files and stayed in bronze, history.RunRecord); None when it ingested nothing in this run (none declared, or
    reused by a retry).

    Before, the column was the most rows any one step wrote, which read like rows ingested but could be a gold
    table's rows, a reused step's or a dedupe's."""
    found = run.get("ingested")
    return int(found) if isinstance(found, int) else None


def runs_table(runs: list[dict[str, Any]]) -> list[str]:
    """``pipeline runs``: a header, then per run (newest first, as given) its id, pipeline, status, reason
    (``manual``, ``schedule``, ``files_landed``, ``config_changed``, ``after``, ``backfill`` with its
    partition; a retry says so), start in
    local time, duration and lines ingested that stayed in bronze (:func:`run_rows`); ``-`` where a run has none
    (yet). A run that held files says how many after its status (``failed (2 held)``) and the bronze rows its hold
    took out after its lines (``20 (480 held)``), so the column adds up with bronze across runs."""
    head = f"{'RUN':<24} {'PIPELINE':<12} {'STATUS':<24} {'REASON':<15} {'STARTED':<19} {'TOOK':>9} {'INGESTED':>12}"
    lines = [head]
    for run in runs:
        took = f"{run['duration_s']:.2f}s" if run.get("duration_s") is not None else "-"
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run["started_at"]))
        reason = str(run.get("reason") or run.get("trigger") or "-") + (" (retry)" if run.get("retry_of") else "")
        reason += f" {run['partition']}" if run.get("partition") else ""
        rows = run_rows(run)
        status = run["status"] + (f" ({len(run['held'])} held)" if run.get("held") else "")  # files it held (hold.py)
        shown = "-" if rows is None else f"{rows:,}"
        held_rows = run.get("held_rows")
        shown += f" ({held_rows:,} held)" if isinstance(held_rows, int) and held_rows else ""
        lines.append(
            f"{run['run_id']:<24} {run['pipeline']:<12} {status:<24} {reason:<15} {started:<19} {took:>9} {shown:>12}"
        )
    return lines


def _print_run(run: dict[str, Any]) -> None:
    took = f" in {run['duration_s']:.2f}s" if run.get("duration_s") is not None else ""
    print(f"run {run['run_id']} of {run['pipeline']} ({run['mode']}, {run['trigger']}): {run['status']}{took}")
    if run.get("retry_of"):
        print(f"  retry of run {run['retry_of']}")
    for i, step in enumerate(run["steps"], 1):
        rows = (
            f"{step['rows_in'] if step['rows_in'] is not None else '-'} -> "
            f"{step['rows_out'] if step['rows_out'] is not None else '-'}"
        )
        dur = f"{step['duration_s']:.2f}s" if step.get("duration_s") is not None else ""
        print(
            f"  [{i}/{len(run['steps'])}] {step['name']:<12} {step['state']:<24} {rows:<22} {dur}"
            + (f"  {step['error']}" if step.get("error") else "")
            + (f"  ({'; '.join(step['warnings'])})" if step.get("warnings") else "")
        )
    if run.get("error"):  # a run that ended with warnings carries them in the same field: say which it is
        print(f"  {'warning' if run.get('status') == 'succeeded_with_warnings' else 'error'}: {run['error']}")
    if run.get("note"):
        print(f"  note: {run['note']}")


def _follow_run(config: Target, run: dict[str, Any]) -> dict[str, Any]:
    """Print each step as it changes state until the run ends (polled a few times a second, like a progress bar)."""
    shown: dict[str, str] = {}
    total = len(run["steps"])
    while True:
        for i, step in enumerate(run["steps"], 1):
            if shown.get(step["name"]) != step["state"] and step["state"] not in ("pending", "queued"):
                shown[step["name"]] = step["state"]
                rows = f" ({step['rows_out']} rows)" if step.get("rows_out") is not None else ""
                say("INFO", f"[{i}/{total}] {step['name']}: {step['state']}{rows}")
        if run.get("finished_at") is not None:
            return run
        time.sleep(0.25)
        run = call(config.control_socket, "pipeline_run_info", run_id=run["run_id"])


def cmd_pipeline(args: argparse.Namespace, config: Target) -> int:
    if args.timeout is not None and args.action != "diff":
        say("ERROR", "--timeout is for pipeline diff only")
        return EXIT_USAGE
    if args.action == "status":
        data = call(config.control_socket, "pipelines")
        if args.name is not None:  # one pipeline, as for runs (the daemon's reply lists them all)
            if not any(p["name"] == args.name for p in data):
                say("ERROR", f"no such pipeline: {args.name!r}; known: {', '.join(p['name'] for p in data)}")
                return EXIT_FAIL
            data = [p for p in data if p["name"] == args.name]
        if args.json:
            print(json.dumps(data, indent=2))
            return EXIT_OK
        for p in data:
            print(f"{p['name']}: {p['description']}")
            when = [f"every {p['every_s']:g}s"] if p["every_s"] else []
            when += [f"cron {p['cron']}"] if p.get("cron") else []
            when += [f"after {', '.join(p['after'])}"] if p.get("after") else []
            when += [f"on new files ({', '.join(p.get('patterns') or [])})"] if p["on_new_files"] else []
            runs = "; ".join(when) or "on demand only"
            if p.get("paused") and when:
                runs = f"on demand only: schedules paused ({runs}; `pipeline resume {p['name']}`)"
            print(f"  landing {p['landing']}; runs {runs}")
            if p.get("schemas"):
                print(f"  schemas {', '.join(p['schemas'])}")
            if p.get("partitions"):
                print(f"  {partition_summary_line(p['partitions'])} (`pipeline partitions {p['name']}`)")
            if line := held_line(p["name"], p.get("held")):
                print(line)
            for label in ("active_run", "last_run"):
                if p[label]:
                    _print_run(p[label])
            if p["report_html"]:
                print(f"  report: {p.get('report_url') or p['report_html']}")
        return EXIT_OK
    if args.action == "runs":
        runs = call(config.control_socket, "pipeline_runs", name=args.name or "", limit=args.limit)
        if args.json:
            print(json.dumps(runs, indent=2))
        else:
            print("\n".join(runs_table(runs)))
        return EXIT_OK
    if args.action in ("diff", "rollback"):
        return cmd_snapshots(args, config)
    if not args.name:
        say("ERROR", f"pipeline {args.action} needs a {'run id' if args.action == 'retry' else 'pipeline name'}")
        return EXIT_USAGE
    if args.step and args.action != "retry":
        say("ERROR", "--step is for pipeline retry only")
        return EXIT_USAGE
    if (args.start or args.only_failed or args.dry_run or args.parallel != 1) and args.action != "backfill":
        say("ERROR", "--from, --only-failed, --dry-run and --parallel are for pipeline backfill only")
        return EXIT_USAGE
    if (args.every or args.more) and args.action != "release":
        say("ERROR", "--all and more than one name are for pipeline release only")
        return EXIT_USAGE
    if args.action == "release":
        return cmd_release(args, config)
    if args.action == "backfill":
        return cmd_backfill(args, config)
    if args.action == "partitions":
        return cmd_partitions(args, config)
    if args.action == "reset":
        return _pipeline_reset(args, config)
    if args.action == "validate":
        return _pipeline_validate(args)
    if args.action in ("pause", "resume"):
        call(config.control_socket, f"pipeline_{args.action}", name=args.name)
        say(
            "SUCCESS",
            f"schedules of {args.name} {'paused (manual runs only)' if args.action == 'pause' else 'resumed'}",
        )
        return EXIT_OK
    if args.action == "cancel":
        result = call(config.control_socket, "pipeline_cancel", name=args.name)
        say("SUCCESS" if result["cancelled"] else "INFO", "cancelled" if result["cancelled"] else "nothing running")
        return EXIT_OK
    if args.action == "retry":
        run = call(config.control_socket, "pipeline_retry", run_id=args.name, step=args.step or "", wait=False)
        say("INFO", f"started run {run['run_id']} of {run['pipeline']}, retrying run {args.name}")
    else:
        command = "pipeline_run" if args.action == "run" else "pipeline_replay"
        run = call(config.control_socket, command, name=args.name, wait=False)
        say("INFO", f"started run {run['run_id']} of {args.name}")
    if not args.wait:
        return EXIT_OK
    run = _follow_run(config, run)
    _print_run(run)
    return EXIT_OK if run["status"] in GOOD_RUN else EXIT_FAIL


def _pipeline_validate(args: argparse.Namespace) -> int:
    """YAML and SQL of one pipeline (configured NAME, or a pipeline YAML file) against DuckDB, without data."""
    from foss_supervisor.cli.restart import config_given, load_last_config
    from foss_supervisor.config import load_config
    from foss_supervisor.core.statestore import last_config
    from foss_supervisor.pipeline.engine.reloadcheck import run_check
    from foss_supervisor.pipeline.engine.spec import load_for_daemon, load_pipeline

    try:
        if args.name.endswith((".yaml", ".yml")) and Path(args.name).is_file():
            spec = load_pipeline(args.name)
            item: dict[str, Any] = {"file": str(Path(args.name).resolve()), "name": spec.name, "standalone": True}
        else:  # without --config: the config the daemon of the state dir runs (or ran last), as `logs` does
            config = load_config(args.config)
            if not config_given(args) and (ran := last_config(config.state_dir)) is not None:
                config = load_last_config(ran)
            pc = config.pipelines.get(args.name)
            if pc is None:
                say("ERROR", f"no pipeline {args.name!r} in {config.source} (known: {', '.join(config.pipelines)})")
                return EXIT_USAGE
            spec = load_for_daemon(
                pc.file, name=pc.name, landing=pc.landing, reference=pc.reference, data_dir=config.data_path
            )
            item = {
                "file": str(pc.file),
                "name": pc.name,
                "landing": str(pc.landing),
                "reference": None if pc.reference is None else str(pc.reference),
                "data_dir": str(config.data_path),
            }
    except ConfigError as exc:
        say("ERROR", f"config refused: {exc}")
        return EXIT_USAGE
    # in a child of its own, as a reload checks it: a module that exits at import cannot end this command as a pass
    found, why = asyncio.run(run_check([item]))
    verdict = (found or {}).get(spec.name) or {"reports": [], "error": why or "no verdict"}
    if verdict["error"]:
        say("ERROR", f"{spec.name}: {verdict['error']}")
        return EXIT_USAGE
    reports = verdict["reports"]
    for r in reports:
        error = r["status"] == "error"
        detail = f"  {r['where']}: {r['message']}" if error else (f"  ({r['message']})" if r["message"] else "")
        metrics = f"  metrics: {', '.join(r.get('metrics') or [])}" if r.get("metrics") else ""
        print(f"  {r['step']:<14} {r['status']}{metrics}{detail}")
    bad = [r for r in reports if r["status"] == "error"]
    say("ERROR" if bad else "SUCCESS", f"{spec.name}: {len(bad)} problem(s) in {spec.path}")
    return EXIT_USAGE if bad else EXIT_OK


def _pipeline_reset(args: argparse.Namespace, config: Target) -> int:
    """Confirmed by --yes, or by typing the name at a terminal; never silently."""
    if not args.yes:
        if not sys.stdin.isatty():
            say("ERROR", f"pipeline reset drops every table of {args.name!r}: pass --yes to confirm")
            return EXIT_USAGE
        typed = input(
            f"This drops every table, the file ledger and the run history of {args.name!r}.\n"
            f"Type the pipeline's name to confirm: "
        ).strip()
        if typed != args.name:
            say("ERROR", "not confirmed; nothing changed")
            return EXIT_USAGE
    result = call(config.control_socket, "pipeline_reset", timeout_s=330.0, name=args.name, confirm=args.name)
    say(
        "SUCCESS",
        f"reset {args.name}: dropped schemas {', '.join(result['schemas_dropped'])}; "
        f"forgot {result['runs_forgotten']} runs"
        + ("; removed its published tables" if result.get("unpublished") else ""),
    )
    return EXIT_OK


def cmd_query(args: argparse.Namespace, config: Target) -> int:
    with ControlClient(config.control_socket, timeout_s=args.timeout + 10.0) as client:
        result = client.call("query", sql=args.sql, max_rows=args.max_rows, timeout_s=args.timeout)
    if args.json:
        print(json.dumps(result, indent=2, default=jsonable))
        return EXIT_OK
    header = [str(c) for c in result["columns"]]
    rows = [header] + [["NULL" if v is None else str(v) for v in r] for r in result["rows"]]
    widths = [min(40, max(len(r[i]) for r in rows)) for i in range(len(rows[0]))] if rows and rows[0] else []
    for n, row in enumerate(rows):
        print("  ".join(c[:40].ljust(w) for c, w in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * w for w in widths))
    why = result.get("truncated_reason") or "more rows than --max-rows"
    more = f" (cut: {why}; `export --sql` writes the whole result)" if result["truncated"] else ""
    print(f"({result['row_count']} rows{more}, {result['elapsed_s']:.3f}s)")
    return EXIT_OK


def cmd_export(args: argparse.Namespace, config: Target) -> int:
    """The whole table, or a query's whole result, into a file (-o) or onto stdout, streamed in 1 MiB chunks;
    no row cap."""
    import shutil

    if bool(args.table) == bool(args.sql):
        say("ERROR", "export a table (schema.table) or a query (--sql), one of the two")
        return EXIT_USAGE
    what = {"sql": args.sql} if args.sql else {"table": args.table}
    result = call(config.control_socket, "export", timeout_s=3700.0, format=args.format, **what)
    path = Path(result["path"])
    try:
        if args.output and str(args.output) != "-":
            # the operator's file replaced whole or not at all, on another file system too (base/atomicfile.py)
            atomic_publish(Path(args.output), lambda tmp: shutil.copyfile(path, tmp))
            path.unlink()
            say(
                "SUCCESS",
                f"{result['rows']:,} rows of {args.table or 'the query'} written to {args.output} "
                f"({result['bytes']:,} bytes, {args.format})",
            )
        else:
            with path.open("rb") as src:
                shutil.copyfileobj(src, sys.stdout.buffer, 1 << 20)
            sys.stdout.buffer.flush()
    finally:
        path.unlink(missing_ok=True)
    return EXIT_OK


def cmd_demo_data(args: argparse.Namespace, config: Target) -> int:
    result = call(
        config.control_socket, "demo_data", timeout_s=600.0, name=args.pipeline, orders=args.orders, seed=args.seed
    )
    summary = result["summary"]
    files = summary.get("files") or []
    say("SUCCESS", f"wrote {len(files)} files of sample orders into {result['landing']}")
    for label in ("orders", "lines", "resent", "bad_rows", "malformed_lines"):
        if label in summary:
            print(f"  {label.replace('_', ' ')}: {summary[label]}")
    return EXIT_OK


def args_pipeline(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "action",
        choices=[
            *("run", "replay", "retry", "cancel", "status", "runs", "validate", "reset", "pause", "resume"),
            *("diff", "rollback", "backfill", "partitions", "release"),
        ],
        help="what to do; validate checks a pipeline's YAML and SQL without the daemon; pause and "
        "resume its schedules (timer, cron, landing files, after); retry RUN_ID runs a failed "
        "run's failed steps (or --step and what follows it) again as a new run, reusing the "
        "steps that succeeded; only a pipeline's latest run can be retried; diff RUN_A RUN_B shows "
        "what changed in the tables between two runs; rollback NAME --to RUN restores a run's tables; "
        "backfill NAME re-runs the partitions of a pipeline that declares partition: (--from, --to, "
        "--only-failed, --dry-run), one at a time; partitions NAME lists them with their last runs; "
        "release NAME FILE... (or --all) lets the next run ingest files held below an error threshold",
    )
    p.add_argument(
        "name",
        nargs="?",
        help="the pipeline (needed by all but status and runs; filters status and runs); "
        "for retry, the run id (see pipeline runs); for diff, the first run (A)",
    )
    p.add_argument("other", nargs="?", help="diff: the second run (B); release: a held file (name, path or sha256)")
    p.add_argument("more", nargs="*", help="release: more held files")
    p.add_argument("--all", dest="every", action="store_true", help="release: every held file of the pipeline")
    p.set_defaults(explain_extra=release_extra)  # files after --all: a clear usage error (dispatch._refuse_extra)
    p.add_argument(
        "--to",
        help="rollback: the run whose tables and published set to restore; backfill: the last partition "
        "(inclusive; a date partition takes YYYY-MM-DD)",
    )
    p.add_argument("--from", dest="start", help="backfill: the first partition (inclusive)")
    p.add_argument(
        "--only-failed", action="store_true", help="backfill: only partitions whose last partition run failed"
    )
    p.add_argument("--dry-run", action="store_true", help="backfill: list the partitions it would run, run none")
    p.add_argument(
        "--parallel",
        type=int,
        default=1,
        help="backfill: partitions at once; only 1 is accepted, since the runs of one pipeline never overlap "
        "and the DuckDB worker has one writer",
    )
    p.add_argument("--step", help="retry: start from this step (it and every step downstream run again)")
    p.add_argument("--yes", action="store_true", help="reset: confirm without a prompt; rollback: apply it")
    p.add_argument("--wait", action="store_true", help="follow the run (backfill: each partition) until it ends")
    p.add_argument("--json", action="store_true", help="print the reply as JSON")
    p.add_argument("--limit", type=int, default=20, help="how many runs to list (default 20, at most 500)")
    p.add_argument(
        "--timeout",
        type=duration_s,
        help="diff: seconds before it is interrupted (default 60, at most 600; 10M-row tables need more)",
    )


def args_query(p: argparse.ArgumentParser) -> None:
    p.add_argument("sql", help="one SELECT statement on bronze.*, silver.*, gold.*")
    p.add_argument("--json", action="store_true", help="print columns, rows and timings as JSON")
    p.add_argument("--max-rows", type=int, default=1000, help="rows to return at most (default 1000)")
    p.add_argument("--timeout", type=duration_s, default=10.0, help="seconds before the query is interrupted")


def args_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("table", nargs="?", help="schema.table (or a view), e.g. gold.daily_revenue")
    p.add_argument("--sql", help="instead of a table: the whole result of this read-only query")
    p.add_argument("--format", choices=["csv", "parquet", "jsonl"], default="parquet", help="default parquet")
    p.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")


def args_demo_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pipeline", default="orders", help="whose landing folder to write into (default orders)")
    p.add_argument("--orders", type=int, default=100_000, help="how many orders to generate (default 100000)")
    p.add_argument("--seed", type=int, default=1, help="random seed: the same seed writes the same files")
