"""The CLI's ``config`` subcommand: save a file through the daemon's checks, list, diff and restore generations.

``config save FILE`` sends the text to ``config_write`` (checked as the file would be loaded, gated, the
replaced file kept as a generation, then reloaded); ``config history``, ``config diff GEN`` and
``config restore GEN`` are ``config_history``, ``config_diff`` and ``config_restore``. A save or restore
that would empty the file or stop every running program is refused (exit 2, saying what would happen)
unless ``--allow-empty`` is given. Also the plan printer ``reload`` uses.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foss_supervisor.cli.terminal import EXIT_OK, EXIT_USAGE, say
from foss_supervisor.control.client import call

if TYPE_CHECKING:
    from foss_supervisor.cli.dispatch import Target

__all__ = ["args_config", "cmd_config", "print_impact", "print_plan"]

SAVE_TIMEOUT_S = 600.0  # a save reloads: stopping removed programs may take their stop_timeout each
MAX_TEXT_BYTES = 1024 * 1024 + 1  # read no more than the daemon takes (it refuses anything larger)


def print_plan(result: Mapping[str, Any], dry_run: bool, socket: Path) -> None:
    """A reload plan (``reload``, a save, a restore) as lines, then the settings that wait for a restart."""
    for key in ("added", "changed", "removed", "unchanged"):
        if result.get(key):
            print(f"{key:>9}: {', '.join(result[key])}")
    for key, names in (result.get("pipelines") or {}).items():
        if names and key != "unchanged":
            print(f"{key:>9}: pipeline {', '.join(names)}")
    print_impact(result.get("impact"))
    waiting = result.get("needs_daemon_restart") or []
    if waiting:
        say(
            "WARN", f"changed {', '.join(waiting)}: the daemon keeps the running values until `foss-supervisor restart`"
        )
        if "state_dir" in waiting:
            say(
                "WARN",
                f"the running daemon stays in {socket.parent}: stop it there first "
                f"(FOSS_SUPERVISOR_STATE_DIR={socket.parent} foss-supervisor stop), then start",
            )
    verb = "would" if dry_run else "did"
    added, changed, removed = (len(result.get(k) or []) for k in ("added", "changed", "removed"))
    summary = f"{added} added, {changed} changed, {removed} removed programs"
    if (pipelines := result.get("pipelines")) is not None:  # counted too (issue 18): "1 pipeline changed"
        counts = [(len(pipelines.get(k) or []), k) for k in ("added", "changed", "removed")]
        said = [f"{n} pipeline{'s' if n != 1 else ''} {k}" for n, k in counts if n]
        summary += "; " + (", ".join(said) if said else "no pipeline changed")
    say("SUCCESS", f"reload {verb} apply: {summary}")


def print_impact(impact: Mapping[str, Any] | None) -> None:
    """Per pipeline, the steps whose SQL changed and every table downstream that would be rebuilt."""
    if not impact:
        return
    for name, found in (impact.get("pipelines") or {}).items():
        steps = [*found["changed_steps"], *(["setup"] if found["setup_changed"] else [])]
        if steps:
            print(f"{'sql':>9}: pipeline {name}: changed {', '.join(steps)}")
        if found["removed_steps"]:
            print(f"{'sql':>9}: pipeline {name}: removed {', '.join(found['removed_steps'])}")
        if found["downstream_tables"]:
            print(f"{'rebuilds':>9}: {', '.join(found['downstream_tables'])}")
    for gap in impact.get("contracts") or ():
        say("WARN", f"contract tables.{gap['table']}.contract.{gap['column']} ({gap['declared']}): {gap['problem']}")
    if impact.get("error"):
        say("WARN", str(impact["error"]))


def _saved(reply: Mapping[str, Any], socket: Path) -> int:
    if reply.get("needs_confirmation"):
        tag = "WARN" if reply["dry_run"] else "INFO"
        say(tag, f"{reply['needs_confirmation']}" + (" (needs --allow-empty)" if reply["dry_run"] else " (confirmed)"))
    print_plan(reply["plan"], reply["dry_run"], socket)
    if reply.get("generation") is not None:
        say("INFO", f"the replaced file is kept as generation {reply['generation']} (`foss-supervisor config history`)")
    return EXIT_OK


def _read_text(name: str) -> str | None:
    try:
        if name == "-":
            data = sys.stdin.buffer.read(MAX_TEXT_BYTES)
        else:
            with Path(name).open("rb") as f:
                data = f.read(MAX_TEXT_BYTES)
        return data.decode("utf-8")
    except OSError as exc:
        say("ERROR", f"cannot read {name}: {exc.strerror or exc}")
    except UnicodeDecodeError as exc:
        say("ERROR", f"{name} is not UTF-8 text: {exc}")
    return None


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _generation(args: argparse.Namespace) -> int | None:
    try:
        return int(args.target)
    except (TypeError, ValueError):
        say("ERROR", f"config {args.action} needs a generation number (see `foss-supervisor config history`)")
        return None


def cmd_config(args: argparse.Namespace, config: Target) -> int:
    sock = config.control_socket
    if args.action == "save":
        text = _read_text(args.target) if args.target else None
        if text is None:
            if not args.target:
                say("ERROR", "config save needs a FILE (or - for standard input)")
            return EXIT_USAGE
        reply = call(
            sock,
            "config_write",
            timeout_s=SAVE_TIMEOUT_S,
            text=text,
            dry_run=args.dry_run,
            allow_empty=args.allow_empty,
        )
        return _saved(reply, sock)
    if args.action in ("restore", "diff"):
        generation = _generation(args)
        if generation is None:
            return EXIT_USAGE
        if args.action == "diff":
            sys.stdout.write(call(sock, "config_diff", generation=generation)["diff"])
            return EXIT_OK
        reply = call(
            sock,
            "config_restore",
            timeout_s=SAVE_TIMEOUT_S,
            generation=generation,
            dry_run=args.dry_run,
            allow_empty=args.allow_empty,
        )
        return _saved(reply, sock)
    reply = call(sock, "config_history")
    if args.json:
        print(json.dumps(reply, indent=2))
        return EXIT_OK
    print(f"{reply['file']}: {len(reply['generations'])} generation(s) kept (config_generations: {reply['keep']})")
    rows = [("GEN", "SAVED", "BYTES", "VS CURRENT")]
    rows.append(("current", _when(reply["current"]["saved_at"]), str(reply["current"]["bytes"]), ""))
    for g in reply["generations"]:
        rows.append(
            (
                str(g["generation"]),
                _when(g["saved_at"]),
                str(g["bytes"]),
                f"+{g['lines_added']} -{g['lines_removed']} lines",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join([*(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)), row[3]]).rstrip())
    return EXIT_OK


def args_config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "action",
        choices=["save", "history", "diff", "restore"],
        help="save FILE: check its text as the daemon would load it, save it as the config file "
        "(the replaced one kept as a generation) and reload; history: the kept generations; "
        "diff GEN: from generation GEN to the current file; restore GEN: save GEN back and "
        "reload",
    )
    p.add_argument(
        "target",
        nargs="?",
        metavar="FILE|GEN",
        help="save: the file (- for standard input); diff, restore: the generation number",
    )
    p.add_argument("--dry-run", action="store_true", help="save, restore: show the plan, change nothing")
    p.add_argument(
        "--allow-empty",
        action="store_true",
        help="save, restore: confirm a save that empties the file or stops every program",
    )
    p.add_argument("--json", action="store_true", help="history: print the config_history reply")
