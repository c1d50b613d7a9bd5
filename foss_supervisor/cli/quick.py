"""The quick path of ``foss-supervisor status``: no argparse, no pathlib, no other command imported.

A monitoring script runs ``status`` every few seconds, and most of a call is the interpreter starting and
importing. This path reads the plain forms of ``status`` itself (``status [SELECTOR...] [--json]
[--config FILE] [--debug]``, the options before or after the selectors), finds the control socket with
:mod:`foss_supervisor.base.controlsocket` and prints with :mod:`~.terminal`: the same output and exit
code as the full front (:mod:`~.dispatch`), which takes every other form, so that argparse reads it
(``--help``, an abbreviated option, ``--``, a selector starting with ``-``, selectors on both sides of
an option, which argparse refuses), and every case where no daemon's socket was found.
"""

from __future__ import annotations

import os

from foss_supervisor.base.controlsocket import find_control_socket
from foss_supervisor.cli.terminal import exit_code, guard_output, print_status
from foss_supervisor.control.client import call

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["StatusArgs", "parse_status", "quick_status"]


class StatusArgs:
    """What a plain ``status`` command line says (the fields argparse's namespace has for it)."""

    __slots__ = ("config", "debug", "json", "names")

    def __init__(self, names: list[str], json: bool, config: str | None, debug: bool) -> None:
        self.names = names
        self.json = json
        self.config = config
        self.debug = debug


def parse_status(argv: Sequence[str]) -> StatusArgs | None:
    """``argv`` (without the program name) read as a plain ``status`` command, or None for anything else."""
    if not argv or argv[0] != "status":
        return None
    names: list[str] = []
    as_json = debug = closed = False
    config: str | None = None
    rest = list(argv[1:])
    while rest:
        word = rest.pop(0)
        if word.startswith("-"):
            closed = bool(names)  # argparse reads the selectors as one run: more of them after this is an error
            if word == "--json":
                as_json = True
            elif word == "--debug":
                debug = True
            elif word == "--config" and rest and rest[0] and not rest[0].startswith("-"):
                config = rest.pop(0)
            elif word.startswith("--config=") and len(word) > len("--config="):
                config = word[len("--config=") :]
            else:
                return None
        elif closed:
            return None
        else:
            names.append(word)
    return StatusArgs(names, as_json, config, debug)


def quick_status(argv: Sequence[str]) -> int | None:
    """Run a plain ``status`` against a daemon whose socket is there and return the exit code; None (nothing
    done, nothing printed) when the full front must take ``argv``."""
    args = parse_status(argv)
    if args is None:
        return None
    sock = find_control_socket(args.config, os.environ)
    if sock is None or not os.path.exists(sock):
        return None  # the full front loads the config, says what is wrong or that nothing runs
    if args.debug:
        os.environ["FOSS_SUPERVISOR_DEBUG"] = "1"
    guard_output()
    return exit_code(lambda: print_status(call(sock, "status", names=args.names), args.json, not args.names), sock)
