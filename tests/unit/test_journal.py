"""The journald handler against a datagram socket bound by the test, parsed the way journald parses it."""

from __future__ import annotations

import array
import fcntl
import logging
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from foss_supervisor.base.processstates import ProcessState
from foss_supervisor.systemd.journal import (
    JournalHandler,
    encode_fields,
    field_name,
    journald_wanted,
    priority_of,
    record_fields,
)

RECV_TIMEOUT_S = 5.0


def parse_native(data: bytes) -> list[tuple[str, str]]:
    """journald's side of the protocol: ``NAME=value\\n`` or ``NAME\\n<le64><bytes>\\n``."""
    fields = []
    pos = 0
    while pos < len(data):
        newline = data.index(b"\n", pos)
        line = data[pos:newline]
        if b"=" in line:
            name, _, value = line.partition(b"=")
            pos = newline + 1
        else:
            name = line
            (size,) = struct.unpack("<Q", data[newline + 1 : newline + 9])
            value = data[newline + 9 : newline + 9 + size]
            assert data[newline + 9 + size : newline + 10 + size] == b"\n"
            pos = newline + 10 + size
        fields.append((name.decode(), value.decode()))
    return fields


class Journal:
    """A stand-in for /run/systemd/journal/socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(RECV_TIMEOUT_S)

    def entry(self) -> dict[str, str]:
        """The next entry, from a datagram or from a memfd passed with SCM_RIGHTS."""
        data, ancdata, _, _ = self.sock.recvmsg(1 << 20, socket.CMSG_SPACE(4))
        for level, kind, payload in ancdata:
            assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
            fd = array.array("i", payload[:4])[0]
            try:
                seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
                assert seals & fcntl.F_SEAL_WRITE and seals & fcntl.F_SEAL_SHRINK, "journald refuses unsealed memfds"
                data = os.pread(fd, os.fstat(fd).st_size, 0)
            finally:
                os.close(fd)
        fields = parse_native(data)
        names = [n for n, _ in fields]
        assert len(names) == len(set(names)), f"duplicate fields: {names}"
        return dict(fields)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.sock")
    yield j
    j.close()


@pytest.fixture
def handler(journal: Journal) -> Iterator[JournalHandler]:
    h = JournalHandler(socket_path=str(journal.path))
    yield h
    h.close()


@pytest.fixture
def log(handler: JournalHandler, request: pytest.FixtureRequest) -> Iterator[structlog.stdlib.BoundLogger]:
    """A structlog logger routed through stdlib the way logsetup routes the daemon's (without global config)."""
    std = structlog.stdlib.LoggerFactory()(f"foss_supervisor.test.{request.node.name}")  # as logsetup makes them
    std.propagate = False
    std.setLevel(logging.DEBUG)
    std.addHandler(handler)
    logger = structlog.wrap_logger(
        std,
        processors=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    yield logger
    std.removeHandler(handler)


def test_structlog_key_values_become_journal_fields(log: structlog.stdlib.BoundLogger, journal: Journal) -> None:
    log.info(
        "program_state",
        program="api",
        old=ProcessState.STARTING,
        new=ProcessState.RUNNING,
        pid=4242,
        exit_code=None,
        reason="",
        retry_in_s=None,
    )
    entry = journal.entry()
    assert entry["MESSAGE"] == 'program_state program=api old=STARTING new=RUNNING pid=4242 reason=""'
    assert entry["PRIORITY"] == "6"
    assert entry["SYSLOG_IDENTIFIER"] == "foss-supervisor"
    assert entry["EVENT"] == "program_state"
    assert entry["PROGRAM"] == "api"
    assert (entry["OLD"], entry["NEW"]) == ("STARTING", "RUNNING")
    assert entry["PID"] == "4242"
    assert entry["REASON"] == ""
    assert entry["LEVEL"] == "info"
    assert entry["LOGGER"].startswith("foss_supervisor.test.")
    assert entry["CODE_FILE"] == __file__
    assert entry["CODE_FUNC"] == "test_structlog_key_values_become_journal_fields"
    assert "EXIT_CODE" not in entry and "RETRY_IN_S" not in entry  # None is no value
    assert all(name == name.upper() and not name.startswith("_") for name in entry)


def test_levels_map_to_syslog_priorities(log: structlog.stdlib.BoundLogger, journal: Journal) -> None:
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    log.critical("c")
    assert [journal.entry()["PRIORITY"] for _ in range(5)] == ["7", "6", "4", "3", "2"]
    assert [priority_of(n) for n in (5, 10, 20, 25, 30, 40, 50, 60)] == [7, 7, 6, 6, 4, 3, 2, 2]


def test_newlines_use_the_binary_form(log: structlog.stdlib.BoundLogger, journal: Journal) -> None:
    log.warning("reload_refused", error="config.yaml:6: bad\nsecond line")
    entry = journal.entry()
    assert entry["ERROR"] == "config.yaml:6: bad\nsecond line"
    assert entry["MESSAGE"] == 'reload_refused error="config.yaml:6: bad\\nsecond line"'


def test_exceptions_carry_their_traceback(log: structlog.stdlib.BoundLogger, journal: Journal) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("step_crashed", step="load")
    entry = journal.entry()
    assert entry["PRIORITY"] == "3"
    assert entry["MESSAGE"].startswith("step_crashed step=load\nTraceback (most recent call last):")
    assert entry["MESSAGE"].endswith("ValueError: boom")
    assert entry["EXCEPTION"] == "ValueError: boom"
    assert "EXC_INFO" not in entry


def test_code_location_is_left_out_when_it_would_point_into_structlog(
    handler: JournalHandler, journal: Journal
) -> None:
    plain = logging.Logger("foss_supervisor.test.plain")  # not from structlog's factory: finds structlog frames
    plain.addHandler(handler)
    structlog.wrap_logger(
        plain,
        processors=[structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.stdlib.BoundLogger,
    ).info("x", a=1)
    entry = journal.entry()
    assert entry["A"] == "1"
    assert not {"CODE_FILE", "CODE_LINE", "CODE_FUNC"} & set(entry)


def test_plain_stdlib_records_work_too(handler: JournalHandler, journal: Journal) -> None:
    std = logging.getLogger("aiohttp.server.test")
    std.propagate = False
    std.addHandler(handler)
    try:
        std.warning("hello %s", "world")
    finally:
        std.removeHandler(handler)
    entry = journal.entry()
    assert entry["MESSAGE"] == "hello world"
    assert entry["PRIORITY"] == "4"
    assert entry["LOGGER"] == "aiohttp.server.test"


def test_a_formatter_decides_the_message(
    log: structlog.stdlib.BoundLogger, handler: JournalHandler, journal: Journal
) -> None:
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.KeyValueRenderer(key_order=["event"]),
            ]
        )
    )
    log.info("daemon_state", state="ready")
    entry = journal.entry()
    assert entry["MESSAGE"].startswith("event='daemon_state'")
    assert entry["STATE"] == "ready"


def test_field_names_are_made_legal() -> None:
    assert field_name("program") == "PROGRAM"
    assert field_name("exit-code") == "EXIT_CODE"
    assert field_name("2fa.ok") == "FA_OK"
    assert field_name("_record") is None
    assert field_name("___") is None
    assert field_name("x" * 100) == "X" * 64


def test_event_keys_never_overwrite_the_handlers_own_fields(
    log: structlog.stdlib.BoundLogger, journal: Journal
) -> None:
    log.info("odd", message="user text", priority="urgent", syslog_identifier="evil", tags=["a", "b"], ok=True)
    entry = journal.entry()
    assert entry["SYSLOG_IDENTIFIER"] == "foss-supervisor"
    assert entry["PRIORITY"] == "6"
    assert entry["FIELD_MESSAGE"] == "user text"
    assert entry["FIELD_PRIORITY"] == "urgent"
    assert entry["FIELD_SYSLOG_IDENTIFIER"] == "evil"
    assert entry["TAGS"] == '["a", "b"]'
    assert entry["OK"] == "true"


def test_an_entry_too_large_for_a_datagram_goes_through_a_sealed_memfd(
    log: structlog.stdlib.BoundLogger, journal: Journal, handler: JournalHandler
) -> None:
    big = "x" * 600_000  # larger than the default socket send buffer (wmem_default, 208 KiB)
    log.info("big", blob=big)
    entry = journal.entry()
    assert entry["BLOB"] == big
    assert handler.failed == 0 and handler.dropped == 0


def test_a_full_journal_queue_drops_instead_of_blocking(
    log: structlog.stdlib.BoundLogger, journal: Journal, handler: JournalHandler
) -> None:
    for i in range(2000):  # nobody reads: the receive queue fills up (max_dgram_qlen / rcvbuf)
        log.info("flood", i=i)
    assert handler.dropped > 0
    assert handler.failed == 0
    assert journal.entry()["EVENT"] == "flood"


def test_a_missing_journal_is_reported_once_not_per_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    h = JournalHandler(socket_path=str(tmp_path / "no-journal"))
    std = logging.getLogger("foss_supervisor.test.missing")
    std.propagate = False
    std.addHandler(h)
    try:
        for _ in range(3):
            std.error("lost")
    finally:
        std.removeHandler(h)
        h.close()
    assert h.failed == 3
    assert capsys.readouterr().err.count("--- Logging error ---") == 1


def test_encode_fields_round_trips() -> None:
    fields = [("MESSAGE", "one\ntwo"), ("PROGRAM", "api"), ("EMPTY", ""), ("UNICODE", "é ✓")]
    assert parse_native(encode_fields(fields)) == fields


def test_record_fields_of_a_bare_record() -> None:
    record = logging.LogRecord("x", logging.INFO, "/src/f.py", 12, "m %d", (1,), None, func="f")
    assert record_fields(record, "ident") == [
        ("MESSAGE", "m 1"),
        ("PRIORITY", "6"),
        ("SYSLOG_IDENTIFIER", "ident"),
        ("CODE_FILE", "/src/f.py"),
        ("CODE_LINE", "12"),
        ("CODE_FUNC", "f"),
        ("LOGGER", "x"),
    ]


# ---------------------------------------------------------------------------------------------- journald_wanted


def _stream_id(fd: int) -> str:
    st = os.fstat(fd)
    return f"{st.st_dev}:{st.st_ino}"


def test_journald_wanted_only_when_stderr_is_the_journal_stream(journal: Journal, tmp_path: Path) -> None:
    stream_a, stream_b = socket.socketpair()
    with stream_a, stream_b:
        fd = stream_a.fileno()
        sock = str(journal.path)
        assert journald_wanted({"JOURNAL_STREAM": _stream_id(fd)}, stderr_fd=fd, socket_path=sock)
        # inherited from a parent whose stderr was the journal, ours is not
        assert not journald_wanted({"JOURNAL_STREAM": _stream_id(stream_b.fileno())}, stderr_fd=fd, socket_path=sock)
        assert not journald_wanted({}, stderr_fd=fd, socket_path=sock)
        assert not journald_wanted({"JOURNAL_STREAM": "garbage"}, stderr_fd=fd, socket_path=sock)
        assert not journald_wanted({"JOURNAL_STREAM": "x:y"}, stderr_fd=fd, socket_path=sock)
        # the stream matches but there is no native socket to talk to (a regular file is not one)
        not_a_socket = tmp_path / "file"
        not_a_socket.touch()
        env = {"JOURNAL_STREAM": _stream_id(fd)}
        assert not journald_wanted(env, stderr_fd=fd, socket_path=str(not_a_socket))
        assert not journald_wanted(env, stderr_fd=fd, socket_path=str(tmp_path / "missing"))
