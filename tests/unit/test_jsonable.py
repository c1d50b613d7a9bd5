"""The one JSON converter (:mod:`foss_supervisor.base.jsonable`): every kind of value the house holds becomes
strict JSON, and no module converts on its own any more."""

from __future__ import annotations

import ast
import collections
import dataclasses
import datetime as dt
import decimal
import enum
import json
import signal
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

from helpers.sources import package_sources
from hypothesis import given
from hypothesis import strategies as st

from foss_supervisor.base.jsonable import MAX_SAFE_INTEGER, dataclass_to_json, jsonable
from foss_supervisor.base.pipelinestates import StepState
from foss_supervisor.base.processstates import DaemonPhase, ProcessState

PACKAGE = Path(__file__).resolve().parents[2] / "foss_supervisor"
PLAIN = (dict, list, str, int, float, bool, type(None))


class Level(enum.IntEnum):
    LOW = 1


@dataclasses.dataclass(frozen=True)
class Box:
    label: str
    inner: Any
    tags: tuple[str, ...] = ()


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and infinities included
    st.text(max_size=20),
    st.binary(max_size=20),
    st.decimals(),  # NaN, sNaN and infinities included
    st.datetimes(),
    st.dates(),
    st.times(),
    st.timedeltas(),
    st.uuids(),
    st.sampled_from([*ProcessState, *StepState, *DaemonPhase, Level.LOW, signal.SIGTERM, signal.SIGKILL]),
    st.builds(PurePosixPath, st.text("abc/.", max_size=10)),
)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    keys = st.one_of(st.text(max_size=8), st.integers(), st.none(), st.booleans(), st.sampled_from(list(StepState)))
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.lists(children, max_size=4).map(collections.deque),
        st.frozensets(st.one_of(st.integers(), st.text(max_size=5)), max_size=4),  # mixed kinds: still sorted
        st.dictionaries(keys, children, max_size=4),
        st.builds(Box, st.text(max_size=5), children, st.lists(st.text(max_size=3), max_size=2).map(tuple)),
    )


VALUES = st.recursive(SCALARS, _containers, max_leaves=20)


def _only_plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(type(k) is str and _only_plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_only_plain(v) for v in value)
    return type(value) in PLAIN


@given(VALUES, st.booleans())
def test_every_value_becomes_strict_json_and_stays_what_it_became(value: Any, exact: bool) -> None:
    out = jsonable(value, exact)
    assert _only_plain(out)
    text = json.dumps(out, allow_nan=False)  # strict JSON: no NaN or Infinity tokens
    assert json.loads(text) == out  # nothing lost on the wire
    assert jsonable(out, exact) == out  # plain data is a fixed point
    json.dumps(value, default=jsonable)  # as json's hook it never hands json something it cannot write


@given(st.integers())
def test_exact_keeps_every_digit_of_big_integers(n: int) -> None:
    assert jsonable(n) == n
    assert jsonable(n, exact=True) == (str(n) if abs(n) > MAX_SAFE_INTEGER else n)


def test_each_kind_becomes_what_the_table_says() -> None:
    assert jsonable(ProcessState.RUNNING) == "RUNNING" and type(jsonable(ProcessState.RUNNING)) is str
    assert jsonable(signal.SIGTERM) == "SIGTERM"  # operators read signal names, not numbers
    assert jsonable(Level.LOW) == 1
    assert jsonable(decimal.Decimal("952.70")) == 952.7
    assert jsonable(decimal.Decimal("952.70"), exact=True) == "952.70"
    assert jsonable(decimal.Decimal("sNaN")) == jsonable(decimal.Decimal("NaN"), exact=True) == "nan"
    assert jsonable(float("nan")) == "nan" and jsonable(float("-inf")) == "-inf"
    assert jsonable(dt.datetime(2025, 1, 2, 3, 4, 5)) == "2025-01-02T03:04:05"
    assert jsonable(dt.timedelta(minutes=1)) == 60.0
    assert jsonable(b"\x00\xff") == "AP8="
    assert jsonable(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert jsonable({None: 1, True: 2, 3: 4, StepState.FAILED: 5}) == {"null": 1, "true": 2, "3": 4, "failed": 5}
    assert jsonable({3, 1, 2}) == [1, 2, 3]
    assert jsonable(Box("b", Path("/x"), ("t",))) == {"label": "b", "inner": "/x", "tags": ["t"]}
    assert jsonable(object).startswith("<class")  # anything else: its text


def test_dataclass_to_json_takes_only_dataclass_instances() -> None:
    assert dataclass_to_json(Box("b", 1)) == {"label": "b", "inner": 1, "tags": []}
    for wrong in (Box, {"label": "b"}, None):
        try:
            dataclass_to_json(wrong)
        except TypeError:
            continue
        raise AssertionError(f"{wrong!r} was taken")


def test_no_module_converts_on_its_own() -> None:
    """``dataclasses.asdict``, ``json.dumps(..., default=str)`` and hand-written enum-to-value loops were the four
    other ways; each conversion now goes through :mod:`foss_supervisor.base.jsonable`."""
    found = []
    for source in package_sources():
        path = source.path
        if path.name == "jsonable.py":
            continue
        for node in source.nodes:
            if isinstance(node, ast.Attribute) and node.attr in ("asdict", "astuple"):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} dataclasses.{node.attr}")
            if isinstance(node, ast.keyword) and node.arg == "default" and ast.unparse(node.value) in ("str", "repr"):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} default={ast.unparse(node.value)}")
            if isinstance(node, ast.FunctionDef) and node.name.lstrip("_") in ("plain", "to_jsonable", "plain_config"):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} def {node.name}")
    assert not found, "convert with base.jsonable: " + "; ".join(found)
