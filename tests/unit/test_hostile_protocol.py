"""Property-based tests of the control protocol: whatever bytes arrive, a clear ProtocolError or a request.

Pure functions: random bytes, random JSON, deep nesting, huge lines, the encode/decode round trip (the same
hostile lines against a real daemon's socket: tests/e2e/test_hostile_protocol_daemon.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from foss_supervisor.control.protocol import MAX_DEPTH, MAX_LINE_BYTES, VERSION, decode_request, encode
from foss_supervisor.errors import ProtocolError

# JSON values as json.loads gives them back (no NaN: it is not equal to itself)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


def decodes_or_refuses(line: bytes) -> tuple[Any, str, dict[str, Any]] | None:
    """decode_request's whole contract: a well-formed request, or ProtocolError (nothing else)."""
    try:
        req_id, cmd, args = decode_request(line)
    except ProtocolError as exc:
        assert str(exc)  # says what is wrong
        return None
    assert isinstance(cmd, str) and cmd and isinstance(args, dict)
    return req_id, cmd, args


@given(st.binary(max_size=2000))
@settings(max_examples=examples(400))
def test_random_bytes_are_refused_with_a_protocol_error(line: bytes) -> None:
    decodes_or_refuses(line)


@given(json_values)
@settings(max_examples=examples(300))
def test_any_json_document_is_a_request_or_a_protocol_error(value: Any) -> None:
    decodes_or_refuses(json.dumps(value).encode())


@given(
    st.one_of(st.none(), st.integers(), st.text(max_size=20)),
    st.text(min_size=1, max_size=40),
    st.dictionaries(st.text(max_size=10), json_values, max_size=5),
)
@settings(max_examples=examples(300))
def test_encode_then_decode_gives_the_request_back_on_one_line(req_id: Any, cmd: str, args: dict[str, Any]) -> None:
    line = encode({"v": VERSION, "id": req_id, "cmd": cmd, "args": args})
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # framing: one request, one line
    assert decode_request(line) == (req_id, cmd, args)


@given(st.integers(min_value=0, max_value=100_000), st.sampled_from(["[", '{"k":']))
@settings(max_examples=examples(100))
def test_nesting_is_refused_past_the_limit_at_any_depth(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    inner = opener * depth + "1" + closer * depth
    line = ('{"v":1,"cmd":"x","args":{"a":' + inner + "}}").encode()
    if len(line) > MAX_LINE_BYTES:
        with pytest.raises(ProtocolError, match="longer than"):
            decode_request(line)
    elif depth + 2 > MAX_DEPTH:  # the request object and args are two levels already
        with pytest.raises(ProtocolError, match="nested deeper"):
            decode_request(line)
    else:
        assert decode_request(line)[2] == {"a": json.loads(inner)}


@given(st.integers(min_value=1, max_value=3 * MAX_LINE_BYTES))
@settings(max_examples=examples(30))
def test_lines_over_the_limit_are_refused_before_parsing(size: int) -> None:
    padding = " " * max(0, size - 30)
    line = ('{"v":1,"cmd":"ping",' + padding + '"args":{}}').encode()
    if len(line) > MAX_LINE_BYTES:
        with pytest.raises(ProtocolError, match="longer than"):
            decode_request(line)
    else:
        assert decode_request(line)[1] == "ping"


# ------------------------------------------------------------------------------------------ a real daemon
