"""The quick first step's budget holds by construction: every explicit example count in tests/unit goes through
``helpers.properties.examples``, and ``examples`` gives all of them at full strength and the same quarter (at
least 10, never more than asked) under the quick profile."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import REPO, examples
from helpers.properties import FULL_EXAMPLES, QUICK_EXAMPLES
from hypothesis import settings

UNIT = REPO / "tests" / "unit"


def counts_not_scaled(path: Path) -> Iterator[str]:
    """``file:line`` of each ``settings(max_examples=...)`` whose count is not a call of ``examples(...)``."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "settings"):
            continue
        for kw in node.keywords:
            value = kw.value
            scaled = isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "examples"
            if kw.arg == "max_examples" and not scaled:
                yield f"{path.relative_to(REPO)}:{value.lineno}"


def test_every_explicit_example_count_in_the_unit_tier_is_scaled() -> None:
    assert [where for path in sorted(UNIT.rglob("*.py")) for where in counts_not_scaled(path)] == []


@pytest.fixture
def profile() -> Iterator[None]:
    """Whatever a test loads, the run's own profile is loaded again after it."""
    before = settings.default
    yield
    settings.register_profile("_restored", before)
    settings.load_profile("_restored")


def test_examples_follow_the_loaded_profile(profile: None) -> None:
    settings.register_profile("_full", max_examples=FULL_EXAMPLES)
    settings.load_profile("_full")
    assert [examples(n) for n in (5, 12, 200, 400)] == [5, 12, 200, 400]
    settings.register_profile("_quick", max_examples=QUICK_EXAMPLES)
    settings.load_profile("_quick")
    assert [examples(n) for n in (5, 12, 40, 200, 400)] == [5, 10, 10, 50, 100]
