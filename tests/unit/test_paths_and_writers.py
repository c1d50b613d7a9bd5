"""Limits that used to be found at spawn, now gone or checked at load, and one writer per file.

A state dir too deep for ``<state_dir>/control.sock`` gets a short control socket that
the CLI finds too; programs and replicas sharing a ``log.file`` share one writer and one rotation, and
what two programs cannot share (a pidfile, different rotations, the daemon's own log) is refused at load.
"""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest
from helpers import deep_dir, make_config

from foss_supervisor.base.filewriter import WRITER
from foss_supervisor.base.resources import MAX_SOCKET_PATH, locate_control_socket
from foss_supervisor.config import parse_config
from foss_supervisor.core.logsink import LogSink, StreamWriter
from foss_supervisor.errors import ConfigError


def test_a_deep_state_dir_gets_a_short_control_socket_the_cli_finds(tmp_path: Path) -> None:
    state_dir = deep_dir(tmp_path, 110)
    config = tmp_path / "c.yaml"
    config.write_text(f"state_dir: {state_dir}\n")
    cfg = parse_config(config.read_text(), config, {})
    assert len(os.fsencode(str(cfg.control_socket))) <= MAX_SOCKET_PATH
    assert locate_control_socket(config, {}) == cfg.control_socket
    assert parse_config("", config, {"FOSS_SUPERVISOR_STATE_DIR": str(tmp_path)}).control_socket == (
        tmp_path / "control.sock"
    )  # a state dir that fits keeps its socket


# ---------------------------------------------------------------------------------------------- log files


def test_writers_of_one_log_file_share_one_rotation_and_write_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "shared.log"
    sinks = [LogSink.shared(path, 2000, 2, False, None, owner=f"w-{i}") for i in range(3)]
    assert sinks[0] is sinks[1] is sinks[2] and sinks[0].is_shared
    writers = [StreamWriter(sink, "") for sink in sinks]
    for n in range(300):
        for i, w in enumerate(writers):  # each line arrives in two chunks, interleaved with the others'
            w.feed(f"writer {i} line {n:04d} ".encode())
            w.feed(b"end\n")
    for w in writers:
        w.feed(b"", final=True)
    assert WRITER.flush(10)  # the writer thread makes the writes
    files = [path, path.with_name("shared.log.1"), path.with_name("shared.log.2")]
    assert all(f.exists() for f in files) and not path.with_name("shared.log.3").exists()
    for f in files:
        for line in f.read_text().splitlines():
            assert re.fullmatch(r"writer \d line \d{4} end", line), line  # never two writers in one line
    live = path.read_text()
    assert all(f"writer {i} line 0299 end" in live for i in range(3))  # everyone still writes the live file


def _refused(tmp: Path, programs: str) -> list[ConfigError]:
    text = f"state_dir: {tmp}\nprograms:\n" + textwrap.indent(textwrap.dedent(programs), "  ")
    with pytest.raises(ConfigError) as refused:
        parse_config(text, tmp / "c.yaml", {})
    return list(refused.value.errors)


def test_what_two_programs_cannot_share_is_refused_at_load(tmp_path: Path) -> None:
    errors = _refused(
        tmp_path,
        """
        a: {command: [x], log: {file: app.log, max_bytes: 1MB}}
        b: {command: [x], log: {file: app.log, max_bytes: 2MB}}
        c: {command: [x], pidfile: /run/c.pid, replicas: 2}
        d: {command: [x], log: {file: foss-supervisor.log}}
        """,
    )
    found = {(e.key, e.line): e.reason for e in errors}
    assert (
        "{replica}" in found[("programs.b.log.file", 5)] and "share its rotation" in found[("programs.b.log.file", 5)]
    )
    assert "{replica}" in found[("programs.c.pidfile", 6)] and "c-0" in found[("programs.c.pidfile", 6)]
    assert "daemon's own log" in found[("programs.d.log.file", 7)]
    assert len(found) == 3


def test_replicas_and_programs_may_share_a_log_file_with_one_rotation(tmp_path: Path) -> None:
    cfg = make_config(
        tmp_path, "w: {command: [x], replicas: 3, log: {file: w.log}}\nv: {command: [x], log: {file: w.log}}\n"
    )
    assert {p.log.file for p in cfg.programs.values()} == {tmp_path.resolve() / "w.log"}
