"""The CLI's duration options pass one argparse type (``terminal.duration_s``): any float text is either a
duration from 0 to a day or a usage error (exit 2) naming the range, never a traceback; and bytes written to
a stdout whose reader has gone (``export ... | head -1``) are dropped quietly (the CLI run for real:
tests/process/test_cli_usage.py)."""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os

from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from foss_supervisor.cli.dispatch import build_parser
from foss_supervisor.cli.terminal import MAX_DURATION_S, _Guarded

FLOAT_TEXT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "-nan", "NaN", "inf", "-inf", "Infinity", "1e309", "-0", "0x10", "", " ", "1_0", "٣"]),
    st.text(max_size=12),
)
OPTIONS = [["ctl", "restart", "web", "--wait"], ["ctl", "stop", "web", "--wait"], ["query", "select 1", "--timeout"]]


@settings(max_examples=examples(300), deadline=None)
@given(text=FLOAT_TEXT, option=st.sampled_from(OPTIONS))
def test_every_duration_is_in_range_or_a_usage_error(text: str, option: list[str]) -> None:
    argv = [*option[:-1], f"{option[-1]}={text}"]
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = build_parser(option[0]).parse_args(argv)
    except SystemExit as exc:
        assert exc.code == 2
        err = stderr.getvalue()
        assert any(
            said in err for said in (f"0 to {MAX_DURATION_S:g} seconds", "is not a number of seconds", "is not a value")
        )
        return
    value = args.wait if hasattr(args, "wait") else args.timeout
    assert math.isfinite(value) and 0 <= value <= MAX_DURATION_S


def test_bytes_to_a_closed_pipe_are_dropped_quietly() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # what `| head -1` does once it has its line
    stream = _Guarded(io.TextIOWrapper(io.BufferedWriter(io.FileIO(write_end, "w"))))  # type: ignore[arg-type]
    stream.buffer.write(b"x" * (1 << 20))
    stream.buffer.flush()
    assert stream.closed_pipe and stream.buffer.closed_pipe
    stream.buffer.write(b"more")  # and stays quiet


def _single_valued_options() -> list[tuple[str, str, str]]:
    """(subcommand, option, dest) for every option of every subcommand that takes one typed value."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [
        (name, action.option_strings[-1], action.dest)
        for name, p in sub.choices.items()
        for action in p._actions
        if action.option_strings and action.nargs in (None, "?") and action.type is not None
    ]


@settings(max_examples=examples(300), deadline=None)
@given(option=st.sampled_from(_single_valued_options()), text=st.sampled_from(["--", "-", "", " ", "--x", "nan"]))
def test_an_option_of_one_value_is_that_value_or_a_usage_error(option: tuple[str, str, str], text: str) -> None:
    """``--opt=--`` (argparse drops the ``--``) and other odd values, at every typed option of every subcommand:
    a usage error (exit 2), or a value that is not a list."""
    command, flag, dest = option
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            args = build_parser(command).parse_args([command, f"{flag}={text}"])
    except SystemExit as exc:
        assert exc.code == 2
        return
    assert not isinstance(getattr(args, dest), list)
