"""Gates of text: strings, paths, names, choices, signals, argv, environments, URLs, hosts and patterns."""

from __future__ import annotations

import datetime
import ipaddress
import math
import os
import re
import signal
from collections.abc import Collection
from typing import Any

from foss_supervisor.config.gates.base import (
    MAX_ARG_BYTES,
    MAX_ARGV_BYTES,
    MAX_NAME_BYTES,
    MAX_PATH_BYTES,
    Gate,
    GateError,
    shown,
)

__all__ = [
    "MAX_REGEX",
    "argv",
    "boolean",
    "choice",
    "column_types",
    "cron",
    "env_map",
    "glob",
    "host",
    "name",
    "names",
    "path",
    "regex",
    "secrets",
    "signal_name",
    "text",
    "url",
]


def _no_nul(value: str, what: str) -> str:
    if "\x00" in value:
        raise GateError(f"{what} must not contain a NUL byte")
    return value


def _text(value: Any, what: str, max_bytes: int) -> str:
    if not isinstance(value, str) or not value:
        raise GateError(f"must be a non-empty {what}, got {shown(value)}")
    _no_nul(value, what)
    if len(value) > max_bytes or len(os.fsencode(value)) > max_bytes:
        raise GateError(f"{what} must be at most {max_bytes} bytes, got {len(os.fsencode(value))}")
    return value


def text(max_bytes: int = MAX_ARG_BYTES) -> Gate[str]:
    """A non-empty string without NUL, at most ``max_bytes`` bytes in UTF-8."""
    return Gate(
        "text", f"1 to {max_bytes} bytes, no NUL", lambda v: _text(v, "string", max_bytes), bounds=(1, max_bytes)
    )


def path() -> Gate[str]:
    """A file or folder name as written (the loader resolves it): at most 4,095 bytes, 255 per component."""

    def convert(value: Any) -> str:
        p = _text(value, "path", MAX_PATH_BYTES)
        for part in p.split("/"):
            if len(os.fsencode(part)) > MAX_NAME_BYTES:
                raise GateError(f"a path component must be at most {MAX_NAME_BYTES} bytes, got {shown(part)}")
        return p

    return Gate("path", f"1 to {MAX_PATH_BYTES} bytes, {MAX_NAME_BYTES} per component, no NUL", convert)


def name(pattern: str, what: str) -> Gate[str]:
    """A name in one namespace: text matching ``pattern`` (a fullmatch), described to the user as ``what``."""
    compiled = re.compile(pattern)

    def convert(value: Any) -> str:
        if not isinstance(value, str) or not compiled.fullmatch(value):
            raise GateError(f"must be a name of {what}, got {shown(value)}")
        return value

    return Gate("name", what, convert, pattern=pattern)


def names(item: Gate[str]) -> Gate[tuple[str, ...]]:
    """One name or a list of them (each through ``item``), at most 1,000."""

    def convert(value: Any) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or len(items) > 1000:
            raise GateError(f"must be a name ({item.range}) or a list of at most 1000 of them, got {shown(value)}")
        out = []
        for i, v in enumerate(items):
            try:
                out.append(item(v))
            except GateError as exc:
                raise GateError(exc.reason, f"[{i}]" if isinstance(value, list) else "") from None
        return tuple(out)

    return Gate("names", f"one or a list of at most 1000 ({item.range})", convert, item=item)


def choice(options: Collection[str]) -> Gate[str]:
    """One of ``options``, written exactly."""
    listed = ", ".join(options)

    def convert(value: Any) -> str:
        if not isinstance(value, str) or value not in options:
            raise GateError(f"must be one of {listed}, got {shown(value)}")
        return value

    return Gate("choice", listed, convert, options=tuple(options))


def boolean() -> Gate[bool]:
    """``true`` or ``false``."""

    def convert(value: Any) -> bool:
        if not isinstance(value, bool):
            raise GateError(f"must be true or false, got {shown(value)}")
        return value

    return Gate("bool", "true or false", convert)


_JOB_CONTROL = {"SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGCONT", "SIGCHLD"}


def signal_name() -> Gate[signal.Signals]:
    """A signal by name (``TERM``, ``SIGINT``); not one that pauses, resumes or only reports (STOP, CONT, CHLD)."""
    range_text = "a signal name like TERM, INT, QUIT, HUP, USR1, KILL (not STOP, TSTP, TTIN, TTOU, CONT, CHLD)"

    def convert(value: Any) -> signal.Signals:
        if not isinstance(value, str) or len(value) > 16:
            raise GateError(f"must be {range_text}, got {shown(value)}")
        upper = value.strip().upper()
        upper = upper if upper.startswith("SIG") else f"SIG{upper}"
        if upper in _JOB_CONTROL or upper not in signal.Signals.__members__:
            raise GateError(f"must be {range_text}, got {shown(value)}")
        return signal.Signals[upper]

    return Gate("signal", range_text, convert)


def argv() -> Gate[tuple[str, ...]]:
    """An argv: a list of arguments (strings or numbers), or a string split like a POSIX shell (no shell runs).

    A string's single quotes keep their text literal, as ``sh`` does; see :mod:`foss_supervisor.config.shellwords`.
    """
    from foss_supervisor.config.shellwords import split_command

    range_text = f"1 to 4096 arguments, each at most {MAX_ARG_BYTES} bytes, {MAX_ARGV_BYTES} together"

    def convert(value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            try:
                items: list[Any] = split_command(value)
            except ValueError as exc:
                raise GateError(f"cannot split command: {exc}") from None
        elif isinstance(value, list):
            items = value
        else:
            raise GateError(f"must be a list of arguments or a string, got {shown(value)}")
        if not items or len(items) > 4096:
            raise GateError(f"must have {range_text}, got {len(items)} arguments")
        out = []
        for i, item in enumerate(items):
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                raise GateError(f"an argument must be a string or a number, got {shown(item)}", f"[{i}]")
            if isinstance(item, float) and not math.isfinite(item):
                raise GateError(f"an argument must be a finite number or a string, got {shown(item)}", f"[{i}]")
            arg = str(item)
            if "\x00" in arg or len(os.fsencode(arg)) > MAX_ARG_BYTES:
                raise GateError(f"an argument must hold no NUL byte and at most {MAX_ARG_BYTES} bytes", f"[{i}]")
            out.append(arg)
        if sum(len(os.fsencode(a)) + 1 for a in out) > MAX_ARGV_BYTES:
            raise GateError(f"the arguments must be at most {MAX_ARGV_BYTES} bytes together")
        return tuple(out)

    return Gate("argv", range_text, convert)


def env_map() -> Gate[dict[str, str]]:
    """Environment variables: names without ``=`` or NUL to strings or finite numbers, each at most 128 KiB."""
    range_text = f"names without '=' to strings or numbers, each variable at most {MAX_ARG_BYTES} bytes"

    def convert(value: Any) -> dict[str, str]:
        if not isinstance(value, dict) or len(value) > 4096:
            raise GateError(f"must be a mapping of at most 4096 names to values, got {shown(value)}")
        out: dict[str, str] = {}
        refused: list[GateError] = []
        for k, v in value.items():
            key = str(k)
            if not key or "=" in key or "\x00" in key:
                refused.append(
                    GateError(f"a variable name must be non-empty, without '=' or NUL, got {shown(key)}", f".{key}")
                )
            elif isinstance(v, bool) or not isinstance(v, str | int | float):
                refused.append(GateError(f"must be a string or a number, got {shown(v)}", f".{key}"))
            elif isinstance(v, float) and not math.isfinite(v):
                refused.append(GateError(f"must be a finite number or a string, got {shown(v)}", f".{key}"))
            elif "\x00" in (item := str(v)) or len(os.fsencode(f"{key}={item}")) > MAX_ARG_BYTES:
                refused.append(GateError(f"must hold no NUL byte and be at most {MAX_ARG_BYTES} bytes", f".{key}"))
            else:
                out[key] = item
        if refused:  # every bad variable at once
            raise GateError.of(refused)
        return out

    return Gate("env", range_text, convert)


#: a column's name as a contract writes it, and a DuckDB type name (``VARCHAR``, ``DECIMAL(18, 2)``, ``INTEGER[]``)
_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_TYPE = re.compile(
    r"[A-Za-z][A-Za-z0-9_]{0,30}(?: [A-Za-z][A-Za-z0-9_]{0,30}){0,3}(?:\(\d{1,3}(?:, ?\d{1,3})?\))?(?:\[\])*"
)
MAX_CONTRACT_COLUMNS = 1000


def column_types() -> Gate[dict[str, str]]:
    """A table's contract: 1 to 1,000 column names (letters, digits, _; at most 63) to DuckDB type names
    (``VARCHAR``, ``DECIMAL(18, 2)``, ``TIMESTAMP WITH TIME ZONE``, ``VARCHAR[]``; at most 127 characters)."""
    what = f"1 to {MAX_CONTRACT_COLUMNS} column names to DuckDB type names ('VARCHAR', 'DECIMAL(18, 2)')"

    def convert(value: Any) -> dict[str, str]:
        if not isinstance(value, dict) or not 1 <= len(value) <= MAX_CONTRACT_COLUMNS:
            raise GateError(f"must be a mapping of {what}, got {shown(value)}")
        out: dict[str, str] = {}
        refused: list[GateError] = []
        for k, v in value.items():
            if not isinstance(k, str) or not _COLUMN.fullmatch(k):
                refused.append(GateError(f"a column name is letters, digits and _ (at most 63), got {shown(k)}"))
            elif k.lower() in out:
                refused.append(GateError(f"column {k!r} is declared twice (names compare in lower case)", f".{k}"))
            elif not isinstance(v, str) or len(v) > 127 or not _TYPE.fullmatch(v.strip()):
                refused.append(
                    GateError(f"must be a DuckDB type name like VARCHAR or DECIMAL(18, 2), got {shown(v)}", f".{k}")
                )
            else:
                out[k.lower()] = " ".join(v.split()).upper()
        if refused:
            raise GateError.of(refused)
        return out

    return Gate("column types", what, convert)


def url() -> Gate[str]:
    """An ``http://`` or ``https://`` URL with a host (and a port from 1, if any), no space, control, format
    (bidi, zero-width) or separator character, at most 2,048 characters."""
    from urllib.parse import urlsplit

    def convert(value: Any) -> str:
        u = _text(value, "URL", 2048)
        try:
            parts = urlsplit(u)
            port = parts.port  # raises ValueError for a port out of range
        except ValueError as exc:
            raise GateError(f"must be an http:// or https:// URL: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
            raise GateError(f"must be an http:// or https:// URL with a host, got {shown(value)}")
        if not u.isprintable() or re.search(r"\s", u):  # C0 and C1 controls, bidi and zero-width marks, spaces
            raise GateError(f"a URL holds no space, control, format or separator character, got {shown(value)}")
        return u

    return Gate("url", "http:// or https:// with a host, at most 2048 characters", convert)


_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def host() -> Gate[str]:
    """An IPv4 or IPv6 address, or a DNS name of labels (letters, digits, '-'), at most 253 characters."""

    def convert(value: Any) -> str:
        h = _text(value, "host", 253)
        try:
            ipaddress.ip_address(h)
            return h
        except ValueError:
            pass
        if not all(_LABEL.fullmatch(label) for label in h.removesuffix(".").split(".")):
            raise GateError(f"must be an IP address or a host name, got {shown(value)}")
        return h

    return Gate("host", "an IP address or a host name of at most 253 characters", convert)


def glob() -> Gate[str]:
    """A file name pattern (``*.csv``): no ``/`` or NUL, at most 255 characters."""

    def convert(value: Any) -> str:
        g = _text(value, "file name pattern", MAX_NAME_BYTES)
        if "/" in g:
            raise GateError(f"must be a file name pattern without '/', got {shown(value)}")
        return g

    return Gate("glob", "a file name pattern like '*.csv', no '/'", convert)


MAX_REGEX = 1000


def regex() -> Gate[str]:
    """A regular expression as DuckDB runs it (RE2: no look-around, no back-references), at most 1,000 characters.

    Checked by RE2 itself (google-re2), the library inside DuckDB's ``regexp_matches``: Python's ``re``
    accepts look-arounds that would fail only when a run reaches them.
    """

    def convert(value: Any) -> str:
        pattern = _text(value, "regular expression", MAX_REGEX)
        import re2  # type: ignore[import-not-found,import-untyped,unused-ignore]  # only specs with patterns

        options = re2.Options()
        options.log_errors = False  # the reason goes into our error, not to stderr
        try:
            re2.compile(pattern, options)
        except re2.error as exc:
            reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
            raise GateError(f"{shown(value)} is not a regular expression DuckDB runs (RE2): {reason}") from None
        return pattern

    return Gate("regex", f"an RE2 regular expression of at most {MAX_REGEX} characters", convert)


_ONE_VALUE_RANGE = re.compile(r"(?<![\d/-])(\d+)-\1(?![\d/-])")


def cron() -> Gate[str]:
    """A cron expression of five fields (or six, seconds last), as croniter reads it; at most 100 characters."""

    def convert(value: Any) -> str:
        expr = _text(value, "cron expression", 100)
        from croniter import CroniterBadDateError, croniter  # only configs with a schedule pay for the import

        # croniter reads a one-value range (``31-31``) as the whole field: written as the value it names
        expr = _ONE_VALUE_RANGE.sub(r"\1", expr)
        if not croniter.is_valid(expr):
            raise GateError(f"{shown(value)} is not a cron expression like '*/15 * * * *' (5 fields, or 6)")
        try:  # valid field by field, but a date that never comes (Feb 30, Apr 31) would never run
            croniter(expr, datetime.datetime(2000, 1, 1)).get_next(datetime.datetime)
        except CroniterBadDateError:
            raise GateError(f"{shown(value)} names a date that never occurs (like 30 February)") from None
        return expr

    return Gate("cron", "five cron fields (or six, seconds last)", convert)


def secrets(min_chars: int, max_chars: int) -> Gate[tuple[str, ...]]:
    """A list of secret values (each ``min_chars`` to ``max_chars`` characters once stripped, not only ``*``,
    no NUL), at most 1,000. An error says which item and why, never what it holds."""
    range_text = f"a list of at most 1000 strings of {min_chars} to {max_chars} characters"

    def convert(value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or len(value) > 1000:
            raise GateError(f"must be {range_text}, got a {type(value).__name__}")
        out = []
        for i, item in enumerate(value):
            text_ = item.strip() if isinstance(item, str) else None
            if text_ is None or not min_chars <= len(text_) <= max_chars or not text_.strip("*") or "\x00" in text_:
                what = type(item).__name__ if text_ is None else f"{len(text_)} characters"
                raise GateError(
                    f"must be a string of {min_chars} to {max_chars} characters (not only '*', no NUL), got {what}",
                    f"[{i}]",
                )
            out.append(text_)
        return tuple(out)

    return Gate("secrets", range_text, convert, bounds=(min_chars, max_chars))


#: an HTTP header name (RFC 9110 token)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")
#: headers the HTTP client sets from the request itself: one given by a hook would change how the receiver,
#: or a proxy before it, reads where the request ends or whom it is for
_FRAMING_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "host", "connection", "keep-alive", "upgrade", "te", "trailer", "expect"}
)
MAX_HEADER_VALUE_BYTES = 8192


def _header_value_refusal(text: str) -> str:
    """Why ``text`` cannot be a header's value ("" when it can)."""
    if any(not (c == "\t" or c.isprintable()) or "\ud800" <= c <= "\udfff" for c in text):
        return "a header value holds no CR, LF, NUL or other control character"
    if len(text.encode("utf-8", "surrogatepass")) > MAX_HEADER_VALUE_BYTES:
        return f"must be at most {MAX_HEADER_VALUE_BYTES} bytes"
    return ""


def http_headers() -> Gate[dict[str, str]]:
    """HTTP request headers a hook sends: token names (no colon, space or control character), not one that
    frames the request (Content-Length, Transfer-Encoding, Host, Connection...), to values without CR, LF, NUL
    or other control characters, at most 8 KiB each, at most 64 headers."""
    range_text = "header names (RFC 9110 tokens, not Content-Length, Transfer-Encoding, Host, Connection...) to values"
    range_text += f" without control characters, at most {MAX_HEADER_VALUE_BYTES} bytes each"

    def convert(value: Any) -> dict[str, str]:
        if not isinstance(value, dict) or len(value) > 64:
            raise GateError(f"must be a mapping of at most 64 header names to values, got {shown(value)}")
        out: dict[str, str] = {}
        refused: list[GateError] = []
        for k, v in value.items():
            key = str(k)
            if not _HEADER_NAME.fullmatch(key):
                refused.append(GateError(f"a header name is a token (letters, digits, -), got {shown(key)}", f".{key}"))
            elif key.lower() in _FRAMING_HEADERS:
                refused.append(GateError(f"{key} is set by the HTTP client from the request itself", f".{key}"))
            elif isinstance(v, bool) or not isinstance(v, str | int):
                refused.append(GateError(f"must be a string or an integer, got {shown(v)}", f".{key}"))
            elif why := _header_value_refusal(str(v)):
                refused.append(GateError(why, f".{key}"))
            else:
                out[key] = str(v)
        if refused:
            raise GateError.of(refused)
        return out

    return Gate("headers", range_text, convert)
