"""``pipeline release PIPELINE [FILE...] [--all]`` and the held-files line of ``pipeline status``: the CLI's face
of the ``pipeline_release`` command and of ``pipelines``' ``held`` (commands/pipelines.py describes both).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from foss_supervisor.cli.terminal import EXIT_OK, EXIT_USAGE, say
from foss_supervisor.control.client import call

if TYPE_CHECKING:
    from foss_supervisor.cli.dispatch import Target

__all__ = ["EXCLUSIVE", "cmd_release", "held_line", "release_extra"]

SHOWN = 5  # file names a line lists


def _names(files: list[dict[str, Any]]) -> str:
    """The held files' names (each a path, listed once), a path held with several contents saying how many."""
    names = ", ".join(
        str(f["name"]) + (f" ({f['contents']} contents)" if int(f.get("contents") or 1) > 1 else "")
        for f in files[:SHOWN]
    )
    return names + (f" and {len(files) - SHOWN} more" if len(files) > SHOWN else "")


def held_line(pipeline: str, held: dict[str, Any] | None) -> str | None:
    """``pipeline status``'s line for a pipeline's held files (None when it holds none)."""
    if not held or not held.get("count"):
        return None
    return f"  held files: {held['count']} ({_names(held['files'])}; `pipeline release {pipeline} --all`)"


#: what ``pipeline release`` given both held files and ``--all`` says (whatever their order)
EXCLUSIVE = "pipeline release: --all and FILE are exclusive: pipeline release PIPELINE FILE... or PIPELINE --all"


def release_extra(args: argparse.Namespace, extra: list[str]) -> str | None:
    """Why ``pipeline`` left ``extra`` over, when it is a release given files after ``--all`` (argparse fills the
    positionals before the option, so the files after it are left over): :data:`EXCLUSIVE`; else None."""
    if getattr(args, "action", None) == "release" and args.every and not any(e.startswith("-") for e in extra):
        return EXCLUSIVE
    return None


#: what the next run does with a released content its landing file no longer holds (hold.release_files)
STALE = {
    "changed": "the file holds another content now: the next run marks the released one changed, not ingested",
    "missing": "the file is gone from landing: the next run marks the released content missing, not ingested",
}


def release_fate(contents: int, stale: list[dict[str, str]]) -> str:
    """What the next run does with ``contents`` released held contents of which ``stale`` (the reply's) can no
    longer be ingested (tester of issue 18: "the next run ingests them" also for a file changed or deleted)."""
    if not stale:
        return "the next run ingests them"
    if len(stale) >= contents:
        return "none can be ingested as held (see below)"
    return f"the next run ingests {contents - len(stale)} of the {contents} held contents (see below)"


def cmd_release(args: argparse.Namespace, config: Target) -> int:
    """``pipeline release NAME FILE...`` or ``pipeline release NAME --all``."""
    files = [f for f in (args.other, *args.more) if f]
    if files and args.every:
        say("ERROR", EXCLUSIVE)
        return EXIT_USAGE
    if not files and not args.every:
        say("ERROR", "pipeline release needs held files or --all: pipeline release PIPELINE [FILE...|--all]")
        return EXIT_USAGE
    result = call(config.control_socket, "pipeline_release", name=args.name, files=files, all=args.every)
    if args.json:
        print(json.dumps(result, indent=2))
        return EXIT_OK
    released = result["released"]  # each path once, whatever number of its held contents went (holding.py)
    contents = int(result.get("contents", len(released)))
    stale = result.get("stale") or []
    if released:
        more = f" ({contents} held contents)" if contents != len(released) else ""
        say("SUCCESS", f"released {len(released)} file(s){more} of {args.name}: {release_fate(contents, stale)}")
    else:
        say("INFO", f"{args.name} holds no files")
    why = {s["path"]: s["why"] for s in stale}
    for path in released:
        print(f"  {path}" + (f"  ({STALE[why[path]]})" if path in why else ""))
    if result["held"]:
        print(f"  still held: {len(result['held'])} ({_names(result['held'])})")
    return EXIT_OK
