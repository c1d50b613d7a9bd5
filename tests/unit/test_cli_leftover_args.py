"""Arguments a subcommand leaves over are refused with that subcommand's usage (exit 2), not the top-level one,
and ``pipeline release`` given held files and ``--all`` says they are exclusive, in either order (tester of issue
18: ``pipeline release orders --all junk.csv`` printed the top-level usage, and ``junk.csv --all`` said it needed
files or --all). No daemon is asked, no config read."""

from __future__ import annotations

import contextlib
import io
import string
from pathlib import Path

import pytest
from helpers.strategies import regex_class
from hypothesis import given
from hypothesis import strategies as st

from foss_supervisor.cli.dispatch import SocketTarget, build_parser, main
from foss_supervisor.cli.held import EXCLUSIVE, cmd_release
from foss_supervisor.cli.terminal import EXIT_USAGE

NAMES = regex_class(string.ascii_lowercase, string.ascii_lowercase + string.digits + "_.", 12).filter(
    lambda n: n not in ("release",)
)


def _run(argv: list[str]) -> tuple[int | str | None, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code, err.getvalue()


@given(files=st.lists(NAMES, min_size=1, max_size=3))
def test_release_of_files_and_all_is_a_usage_error_saying_they_are_exclusive(files: list[str]) -> None:
    code, said = _run(["pipeline", "release", "orders", "--all", *files])  # refused while parsing
    assert code == 2 and EXCLUSIVE in said and "usage: foss-supervisor pipeline" in said, said
    assert "usage: foss-supervisor [-h]" not in said  # never the top-level usage
    args = build_parser("pipeline").parse_args(["pipeline", "release", "orders", *files, "--all"])
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(err):
        code = cmd_release(args, SocketTarget(Path("/nonexistent/control.sock")))  # refused before it asks a daemon
    assert code == EXIT_USAGE and EXCLUSIVE in err.getvalue(), err.getvalue()


def test_an_unknown_option_gets_its_subcommands_usage() -> None:
    code, said = _run(["status", "--nope"])
    assert code == 2 and "usage: foss-supervisor status" in said and "unrecognized arguments: --nope" in said
    code, said = _run(["pipeline", "release", "orders", "--bogus"])
    assert code == 2 and "usage: foss-supervisor pipeline" in said and "unrecognized arguments: --bogus" in said
