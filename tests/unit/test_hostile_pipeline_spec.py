"""Property-based tests of the pipeline spec loader: any YAML gives a spec or a clear error, never a traceback.

Three kinds of input: random text, random YAML documents built from the loader's own keys, and the
shipped ``trips`` pipeline with one value anywhere replaced by junk (the closest to a real typo).
A clear error is a :class:`PipelineConfigError` whose message starts ``<file>:<line>: <key>:``.
"""

from __future__ import annotations

import copy
import itertools
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import REPO, examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.pipeline.engine.spec import _FOLDER_KEYS, _STEP_KEYS, _TOP_KEYS, PipelineSpec, load_pipeline
from foss_supervisor.pipeline.errors import PipelineConfigError

SHIPPED = REPO / "configs" / "pipelines"
HYPOTHESIS = settings(
    max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
KEYS = sorted(_TOP_KEYS | _STEP_KEYS | _FOLDER_KEYS)

TRICKY = ["trips/clean.sql", "../../x", "/etc/passwd", "a == b", "*.csv", "x.y == 1 + z.w"]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(TRICKY)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=25,
)
documents = st.dictionaries(st.sampled_from(KEYS), values, max_size=8)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the shipped trips pipeline's folder (its SQL files), where each example writes its YAML."""
    root = tmp_path_factory.mktemp("specs")
    shutil.copytree(SHIPPED / "trips", root / "trips")
    yield root


_names = itertools.count()


def loads_or_says_where(home: Path, text: str) -> PipelineSpec | None:
    path = home / f"p{next(_names)}.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        return load_pipeline(path)
    except PipelineConfigError as exc:
        message = str(exc)
        located = re.escape(str(path)) + r":\d+: \S"  # file:line: key: reason; several: one such line each
        several = re.fullmatch(r"(\d+) errors:\n((?:  .*(?:\n|$))+)", message)
        if several:
            lines = several[2].rstrip("\n").split("\n  ")
            assert int(several[1]) == len(lines) >= 2 and all(re.match(located, ln.strip()) for ln in lines), message
        else:
            assert re.match(located, message), message
        assert exc.reason and "Traceback" not in message
        return None
    finally:
        path.unlink()


@given(st.text(max_size=400))
@HYPOTHESIS
def test_random_text_is_a_spec_or_a_located_error(home: Path, text: str) -> None:
    loads_or_says_where(home, text)


@given(documents)
@HYPOTHESIS
def test_random_documents_of_the_loaders_own_keys_are_a_spec_or_a_located_error(home: Path, doc: Any) -> None:
    loads_or_says_where(home, yaml.safe_dump(doc, allow_unicode=True))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a nested document (dict keys and list indexes), the root excluded."""
    out = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in items:
        out.append((*prefix, key))
        out += _paths(child, (*prefix, key))
    return out


TRIPS = yaml.safe_load((SHIPPED / "trips.yaml").read_text(encoding="utf-8"))
TRIPS_PATHS = _paths(TRIPS)


def trips_doc() -> dict[str, Any]:
    """A fresh copy of the shipped trips pipeline, its folders relative to where the test writes it."""
    doc = copy.deepcopy(TRIPS)
    doc["folders"] = {
        "landing": "landing",
        "reference": "trips/reference",
        "warehouse": "w.duckdb",
        "reports": "reports",
    }
    return doc  # type: ignore[no-any-return]


@given(st.sampled_from(TRIPS_PATHS), values)
@HYPOTHESIS
def test_the_shipped_pipeline_with_one_value_replaced_is_a_spec_or_a_located_error(
    home: Path, where: tuple[Any, ...], junk: Any
) -> None:
    doc = trips_doc()
    target = doc
    for key in where[:-1]:
        if not isinstance(target, dict | list) or (isinstance(target, list) and key >= len(target)):
            return  # the folders were replaced above: this place no longer exists
        target = target[key]
    if isinstance(target, dict) or (isinstance(target, list) and where[-1] < len(target)):
        target[where[-1]] = junk
    loads_or_says_where(home, yaml.safe_dump(doc, allow_unicode=True))


def test_the_unchanged_shipped_pipeline_loads(home: Path) -> None:
    doc = trips_doc()
    spec = loads_or_says_where(home, yaml.safe_dump(doc))
    assert spec is not None and spec.name == "trips"  # the mutation test starts from a valid document
