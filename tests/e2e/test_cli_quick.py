"""``status`` on its quick path: read as argparse reads it, answered as the full front answers, and lean.

The quick path (:mod:`foss_supervisor.cli.quick`) parses a subset of ``status`` command lines itself; any
line it takes must mean to it what it means to argparse (the front it bypasses), which a property test
checks over generated command lines. Its output is the full front's, on a real daemon; and a real call
imports neither argparse, pathlib, typing nor hashlib (``-X importtime``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import subprocess
from pathlib import Path, PurePosixPath

import pytest
from helpers import PY, DaemonHandle
from hypothesis import example, given
from hypothesis import strategies as st

from foss_supervisor.base.controlsocket import control_socket, pure
from foss_supervisor.cli.dispatch import build_parser
from foss_supervisor.cli.quick import parse_status

REPO = Path(__file__).resolve().parents[2]
SLEEPER = f"programs:\n  one: {{command: [{PY!r}, '-c', 'import time; time.sleep(600)']}}\n"
FAILING = "  two: {command: [/bin/false]}\n"  # not as wanted: status exits 3
WORDS = st.sampled_from(
    [
        "status",
        "--json",
        "--debug",
        "--config",
        "--config=c.yaml",
        "--config=",
        "--config=a=b",
        "c.yaml",
        "web",
        "all",
        "web-*",
        "",
        " ",
        "-h",
        "--help",
        "--js",
        "--conf",
        "--",
        "-1",
        "-",
        "--JSON",
        "ctl",
        "--version",
    ]
)
ARGV = st.lists(st.one_of(WORDS, st.text(max_size=8)), max_size=8)


def argparse_reading(argv: list[str]) -> argparse.Namespace | None:
    """What the full front's parser makes of ``argv``; None when it refuses it (or prints help)."""
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            return build_parser(argv[0] if argv else None).parse_args(argv)
        except SystemExit:
            return None


@given(st.one_of(ARGV, ARGV.map(lambda rest: ["status", *rest])))
@example(["status"])
@example(["status", "web", "--json", "--config", "c.yaml"])
@example(["status", "web", "--json", "api"])  # selectors on both sides of an option: argparse refuses
@example(["status", "--config", "--json"])
def test_what_the_quick_path_takes_means_the_same_to_argparse(argv: list[str]) -> None:
    quick = parse_status(argv)
    if quick is None:
        return  # the full front takes it, whatever it is
    full = argparse_reading(argv)
    assert full is not None, f"argparse refuses {argv!r}, the quick path took it"
    assert full.command == "status"
    assert (quick.names, quick.json, quick.debug) == (full.names, full.json, full.debug)
    assert (None if quick.config is None else Path(quick.config)) == full.config


@pytest.mark.parametrize(
    "argv",
    [
        ["status"],
        ["status", "--json"],
        ["status", "web", "api", "--config", "c.yaml"],
        ["status", "--config=c.yaml", "--debug", "web-*"],
    ],
)
def test_the_plain_forms_take_the_quick_path(argv: list[str]) -> None:
    assert parse_status(argv) is not None


PATHS = st.lists(st.sampled_from(["/", "//", ".", "..", "a", "state", "x" * 40, "é", " "]), max_size=12).map("".join)


@given(PATHS)
def test_paths_are_spelled_as_pathlib_spells_them(path: str) -> None:
    assert pure(path) == str(PurePosixPath(path))


@given(PATHS.map(lambda p: "/" + p))
def test_the_cli_finds_the_socket_the_daemon_serves_from_any_spelling_of_its_state_dir(state_dir: str) -> None:
    """The daemon computes it from the config's ``Path``; the quick path from the text: the same, byte for
    byte, short (``control.sock`` in it) or long (a hash of it)."""
    assert control_socket(state_dir) == str(Path(state_dir) / "control.sock") or len(state_dir) > 90
    assert control_socket(state_dir) == control_socket(str(Path(state_dir)))


def _cli(daemon: DaemonHandle, *args: str, full: bool = False) -> subprocess.CompletedProcess[str]:
    """``foss-supervisor ARGS`` from the source tree without ``site`` (so nothing but our imports shows), or
    the full front alone."""
    code = "import sys; from foss_supervisor.cli.dispatch import main; sys.exit(main(sys.argv[1:]))"
    argv = [PY, "-S", "-X", "importtime", *(["-c", code] if full else ["-m", "foss_supervisor"]), *args]
    env = {**daemon.env, "PYTHONPATH": str(REPO)}
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)


def _shape(text: str) -> str:
    """The output with its figures blanked (uptimes, times, the retry countdown move between two calls)."""
    return re.sub(r"[ \t]+", " ", re.sub(r"\d+(\.\d+)?", "#", text))


@pytest.mark.timeout(60)
def test_status_answers_as_the_full_front_does_and_imports_little(daemon: DaemonHandle) -> None:
    daemon.write_config(SLEEPER + FAILING)
    daemon.start()
    config = ["--config", str(daemon.config_path)]
    for args in (["status", *config], ["status", "one", *config], ["status", "--json", *config]):
        quick, full = _cli(daemon, *args), _cli(daemon, *args, full=True)
        assert quick.returncode == full.returncode and quick.returncode in (0, 3), quick.stderr
        assert _shape(quick.stdout) == _shape(full.stdout) and quick.stdout
        ours = re.findall(r"^import time:.*\| +([\w.]+)$", quick.stderr, re.M)
        ours = ours[ours.index("foss_supervisor") :]  # what the interpreter itself loaded comes before
        assert "foss_supervisor.cli.quick" in ours
        assert {"argparse", "pathlib", "typing", "hashlib", "foss_supervisor.cli.dispatch"}.isdisjoint(ours), ours
    assert os.path.exists(daemon.socket_path)
