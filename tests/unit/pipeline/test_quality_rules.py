"""A quality step's rules are checked at load: each error names its key and line."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from helpers.pipeline import QUALITY_RULES, quality_pipeline
from hypothesis import given
from hypothesis import strategies as st

from foss_supervisor.pipeline.engine.spec import load_pipeline
from foss_supervisor.pipeline.errors import PipelineConfigError


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        ({"columns": {"id": ["not_nul"]}}, "steps.check.params.columns.id.not_nul", "rules are not_null"),
        (
            {"columns": {"id": [{"accepted_values": []}]}},
            "steps.check.params.columns.id.accepted_values",
            "non-empty list",
        ),
        ({"columns": {"id": [{"pattern": "(["}]}}, "steps.check.params.columns.id.pattern", "not a regular expression"),
        ({"valid": "ok"}, "steps.check.params.valid", "schema.table"),
        ({"tests": [{"name": "t", "expression": "1; DROP TABLE x"}]}, "steps.check.params.tests[0].expression", "';'"),
        (
            {"columns": {"id": [{"not_null": {"name": "Bad name"}}]}},
            "steps.check.params.columns.id.not_null.name",
            "lower-case identifier",
        ),
        (
            {"columns": {"id": [{"not_null": {"name": "x", "min": 1}}]}},
            "steps.check.params.columns.id.not_null",
            "takes only a name",
        ),
        ({"unparsed": {"column": "_parse_error"}}, "steps.check.params.unparsed", "{column: column_name, reason:"),
    ],
)
def test_rule_errors_name_the_key_and_line(
    tmp_path: Path, workspace: dict[str, Path], change: dict[str, Any], key: str, reason: str
) -> None:
    path = quality_pipeline(tmp_path, workspace, {**QUALITY_RULES, **change})
    with pytest.raises(PipelineConfigError) as info:
        load_pipeline(path)
    assert info.value.key == key and reason in info.value.reason and info.value.line is not None, info.value


#: rules that load, as a YAML flow item on one line (JSON is YAML)
GOOD_RULES = [
    "not_null",
    "unique",
    {"accepted_range": {"min_value": 0}},
    {"accepted_values": ["a", "b"]},
    {"not_null": {"name": "named_ok"}},
]
#: one mistake each, and the key after the rule as the author wrote it
MISTAKES: list[tuple[Any, str, str]] = [
    ("not_nul", "not_nul", "rules are not_null"),
    ({"acepted_range": {"min_value": 0}}, "acepted_range", "rules are not_null"),
    ({"accepted_values": []}, "accepted_values", "non-empty list"),
    ({"pattern": "(["}, "pattern", "not a regular expression"),
    ({"not_null": {"name": "Bad name"}}, "not_null.name", "lower-case identifier"),
    ({"not_null": {"severity": "fatal", "max_rejected": 3}}, "not_null.severity", "warn"),
    ({"accepted_range": {"min_value": 5, "max_value": 1}}, "accepted_range", "no value passes"),
]


def _block_head(valid: str = "silver.ok") -> list[str]:
    """The lines of a pipeline YAML up to its one quality block's params (its tables), one a line."""
    return [
        "name: q",
        "folders: {landing: land, reference: ., warehouse: w.duckdb}",
        "schemas: [work, silver]",
        "steps:",
        "  - name: check",
        "    kind: quality",
        "    params:",
        "      source: work.src",
        f"      valid: {valid}",
        "      rejected: silver.bad",
    ]


@given(
    before=st.lists(st.lists(st.sampled_from(GOOD_RULES), min_size=1, max_size=3), max_size=2),
    rules=st.lists(st.sampled_from(GOOD_RULES), max_size=3),
    position=st.integers(0, 3),
    mistake=st.sampled_from(MISTAKES),
)
def test_a_rule_mistake_is_told_at_the_rule_items_own_line_as_the_author_wrote_it(
    before: list[list[Any]], rules: list[Any], position: int, mistake: tuple[Any, str, str]
) -> None:
    """Issue 18 (a tester's find): a rule's mistake was told at its column's line (``columns.amount``), and a
    misspelt column's rule by its index (``[1]``). Any column, any position in its list, any kind of mistake:
    the rule item's own line, the key spelled block, column, rule."""
    bad, suffix, reason = mistake
    items = [*rules]
    items.insert(min(position, len(items)), bad)
    head = [*_block_head(), "      columns:"]
    for k, good in enumerate(before):
        head += [f"        c{k}:", *(f"          - {json.dumps(r)}" for r in good)]
    head.append("        amount:")
    line = len(head) + 1 + items.index(bad)
    head += [f"          - {json.dumps(r)}" for r in items]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "q.yaml"
        path.write_text("\n".join(head) + "\n")
        with pytest.raises(PipelineConfigError) as info:
            load_pipeline(path)
    err = info.value
    assert (err.line, err.key) == (line, f"steps.check.params.columns.amount.{suffix}"), (err, head)
    assert reason in err.reason and "[" not in err.key


#: a mistake of a ``tests`` item, and the key after ``tests[i]`` it is told at
TEST_MISTAKES: list[tuple[Any, str]] = [
    ({"name": "t", "expression": "1; DROP TABLE x"}, ".expression"),
    ({"name": "Bad Name", "expression": "true"}, ""),
    ({"expression": "true"}, ""),
    ({"name": "t", "expression": "true", "severity": "fatal", "max_rejected": 1}, ".severity"),
]


@given(
    columns=st.lists(
        st.lists(st.one_of(st.sampled_from(GOOD_RULES), st.sampled_from(MISTAKES)), min_size=1, max_size=4),
        min_size=1,
        max_size=4,
    ),
    tests=st.lists(st.one_of(st.just(None), st.sampled_from(TEST_MISTAKES)), max_size=3),
    bad_valid=st.booleans(),
    extra_key=st.booleans(),
)
def test_every_mistake_of_a_quality_block_is_told_at_once_each_at_its_line(
    columns: list[list[Any]], tests: list[Any], bad_valid: bool, extra_key: bool
) -> None:
    """Issue 18 (a tester's find): a quality block stopped at its first mistake, so an author fixed them one per
    try. Any mix of good and bad rules over several columns, bad tests, a bad table name and an unknown key:
    each mistake is told, once, at its own line and key."""
    lines = _block_head("Not A Table" if bad_valid else "silver.ok")
    block = "steps.check.params"
    expected: set[tuple[int, str]] = set()
    if bad_valid:
        expected.add((9, f"{block}.valid"))
    if extra_key:
        lines.append("      colums: {}")
        expected.add((len(lines), f"{block}.colums"))
    lines.append("      columns:")
    for k, rules in enumerate(columns):
        lines.append(f"        c{k}:")
        for rule in rules:
            lines.append(f"          - {json.dumps(rule[0] if rule in MISTAKES else rule)}")
            if rule in MISTAKES:
                expected.add((len(lines), f"{block}.columns.c{k}.{rule[1]}"))
    if tests:
        lines.append("      tests:")
    for i, test in enumerate(tests):
        lines.append(f"        - {json.dumps(test[0] if test else {'name': f'ok_{i}', 'expression': 'true'})}")
        if test:
            expected.add((len(lines), f"{block}.tests[{i}]{test[1]}"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "q.yaml"
        path.write_text("\n".join(lines) + "\n")
        if not expected:
            load_pipeline(path)
            return
        with pytest.raises(PipelineConfigError) as info:
            load_pipeline(path)
    told = {(e.line, e.key) for e in info.value.errors}
    assert told == expected, ("\n".join(lines), str(info.value))
