"""A logging handler that speaks journald's native protocol, so structlog key/values become journal fields.

Under systemd, stderr already reaches the journal, but as one opaque string per line. Sent natively
(``man systemd.journal-fields``; https://systemd.io/JOURNAL_NATIVE_PROTOCOL/), every key/value is a field
that ``journalctl -o json`` shows and that filters match: ``journalctl -u foss-supervisor PROGRAM=api``.

Wiring (in logsetup, replacing the stderr handler, which would log everything twice)::

    if journald_wanted():
        root.addHandler(JournalHandler())

No formatter is needed: ``MESSAGE`` is rendered as ``event key=value ...``; if a formatter is set, its
output is used as ``MESSAGE`` instead. The handler never blocks the event loop: when journald's queue is
full the record is dropped and counted (it is still in the daemon's own log file).
"""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import socket
import stat
import struct
import sys
import traceback
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Final

from foss_supervisor.base.jsonable import jsonable

__all__ = [
    "DEFAULT_SOCKET",
    "IDENTIFIER",
    "JournalHandler",
    "encode_fields",
    "field_name",
    "journald_wanted",
    "priority_of",
    "record_fields",
]

DEFAULT_SOCKET: Final = "/run/systemd/journal/socket"
IDENTIFIER: Final = "foss-supervisor"

# Fields the handler sets itself; an event key that maps to one of them is kept as FIELD_<NAME>.
_OWN_FIELDS: Final = frozenset({"MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE", "CODE_FUNC"})
# Event keys that are not data: structlog's internals and exception plumbing (rendered into MESSAGE).
_SKIP_KEYS: Final = frozenset({"exc_info", "stack_info"})
# Keys the default MESSAGE leaves out because the journal records them anyway.
_MESSAGE_SKIP: Final = frozenset({"event", "level", "logger", "timestamp", *_SKIP_KEYS})
_NOT_FIELD_CHAR: Final = re.compile(r"[^A-Z0-9_]")
_SIMPLE_VALUE: Final = re.compile(r"[^\s=\"]+")
_STRUCTLOG_FRAME: Final = f"{os.sep}structlog{os.sep}"

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def journald_wanted(
    environ: Mapping[str, str] | None = None, *, stderr_fd: int | None = None, socket_path: str = DEFAULT_SOCKET
) -> bool:
    """True when stderr is journald's stream for us (``JOURNAL_STREAM`` = its ``st_dev:st_ino``).

    The check is the one ``man systemd.exec`` prescribes: a ``JOURNAL_STREAM`` inherited from a parent, or a
    stderr redirected elsewhere, must not switch the daemon to the journal. The native socket must exist too.
    """
    env = os.environ if environ is None else environ
    dev, sep, ino = env.get("JOURNAL_STREAM", "").partition(":")
    if not sep:
        return False
    try:
        fd = sys.stderr.fileno() if stderr_fd is None else stderr_fd
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (int(dev), int(ino)):
            return False
        return stat.S_ISSOCK(os.stat(socket_path).st_mode)
    except (OSError, ValueError, AttributeError):
        return False


def priority_of(levelno: int) -> int:
    """syslog priority of a logging level (journald's ``PRIORITY``: 2 crit ... 7 debug)."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def field_name(key: str) -> str | None:
    """A journal field name for ``key``: upper case, ``[A-Z0-9_]``, no leading ``_`` or digit, <= 64 chars.

    None for structlog internals (keys starting with ``_``), which journald would refuse as trusted fields.
    """
    if key.startswith("_"):
        return None
    name = _NOT_FIELD_CHAR.sub("_", key.upper()).lstrip("_0123456789")[:64]
    return name or None


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    try:
        return json.dumps(value, default=jsonable, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def _exc_info(value: Any) -> ExcInfo | None:
    """structlog passes ``exc_info=True`` (meaning: the exception being handled), an exception, or a tuple."""
    if value is True:
        value = sys.exc_info()
    if isinstance(value, BaseException):
        return type(value), value, value.__traceback__
    if isinstance(value, tuple) and len(value) == 3 and value[1] is not None:
        return value
    return None


def record_fields(
    record: logging.LogRecord, identifier: str = IDENTIFIER, message: str | None = None
) -> list[tuple[str, str]]:
    """The journal fields of one record: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, CODE_*, LOGGER, then every key."""
    event: dict[str, Any] = dict(record.msg) if isinstance(record.msg, dict) else {}
    exc = _exc_info(event.get("exc_info")) or (record.exc_info if record.exc_info and record.exc_info[1] else None)
    if message is None:
        if event:
            parts = [str(event.get("event", ""))]
            parts += [
                f"{k}={_quoted(v)}"
                for k, v in event.items()
                if k not in _MESSAGE_SKIP and not k.startswith("_") and v is not None
            ]
            message = " ".join(p for p in parts if p)
        else:
            message = record.getMessage()
        if exc is not None:
            message += "\n" + "".join(traceback.format_exception(*exc)).rstrip("\n")
        if record.stack_info:
            message += "\n" + record.stack_info
    fields: dict[str, str] = {
        "MESSAGE": message,
        "PRIORITY": str(priority_of(record.levelno)),
        "SYSLOG_IDENTIFIER": identifier,
    }
    if _STRUCTLOG_FRAME not in record.pathname:  # a logger not made by structlog's factory sees its frames
        fields.update(CODE_FILE=record.pathname, CODE_LINE=str(record.lineno), CODE_FUNC=record.funcName)
    fields["LOGGER"] = record.name
    if exc is not None:
        fields["EXCEPTION"] = f"{exc[0].__name__}: {exc[1]}"
    for key, value in event.items():
        name = field_name(key)
        if name is None or key in _SKIP_KEYS or value is None:
            continue
        fields[f"FIELD_{name}" if name in _OWN_FIELDS else name] = _text(value)
    return list(fields.items())


def _quoted(value: Any) -> str:
    text = _text(value)
    return text if _SIMPLE_VALUE.fullmatch(text) else json.dumps(text, ensure_ascii=False)


def encode_fields(fields: Iterable[tuple[str, str]]) -> bytes:
    """The native datagram: ``NAME=value\\n``, or ``NAME\\n<le64 length><bytes>\\n`` for values with newlines."""
    out = bytearray()
    for name, value in fields:
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += name.encode() + b"=" + data + b"\n"
    return bytes(out)


class JournalHandler(logging.Handler):
    """Sends each record to journald as one native-protocol datagram (a sealed memfd when it is too large)."""

    def __init__(
        self, level: int = logging.NOTSET, *, identifier: str = IDENTIFIER, socket_path: str = DEFAULT_SOCKET
    ) -> None:
        super().__init__(level)
        self.identifier = identifier
        self.socket_path = socket_path
        self.dropped = 0  # journald's queue was full
        self.failed = 0  # journald was not there, or refused the entry
        self._sock: socket.socket | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record) if self.formatter is not None else None
            data = encode_fields(record_fields(record, self.identifier, message))
        except Exception:
            self.handleError(record)
            return
        try:
            self._send(data)
        except BlockingIOError:
            self.dropped += 1
        except OSError:
            self.failed += 1
            if self.failed == 1:  # report once on stderr (itself the journal), never once per record
                self.handleError(record)

    def _send(self, data: bytes) -> None:
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setblocking(False)
            self._sock = sock
        try:
            self._sock.sendto(data, self.socket_path)
        except OSError as exc:
            if exc.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                raise
            self._send_memfd(data)

    def _send_memfd(self, data: bytes) -> None:
        """journald takes an entry larger than a datagram as a sealed memfd passed with SCM_RIGHTS."""
        assert self._sock is not None
        fd = os.memfd_create("journal-entry", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
            self._sock.sendmsg([], rights, 0, self.socket_path)
        finally:
            os.close(fd)

    def close(self) -> None:
        with self.lock or contextlib.nullcontext():
            if self._sock is not None:
                self._sock.close()
                self._sock = None
        super().close()
