"""A quality step's rules are checked at load: each error names its key and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers.pipeline import QUALITY_RULES, quality_pipeline

from foss_supervisor.pipeline.errors import PipelineConfigError
from foss_supervisor.pipeline.spec import load_pipeline


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        ({"columns": {"id": ["not_nul"]}}, "steps.check.params.columns.id", "rules are not_null"),
        ({"columns": {"id": [{"accepted_values": []}]}}, "steps.check.params.columns.id", "non-empty list"),
        ({"columns": {"id": [{"pattern": "(["}]}}, "steps.check.params.columns.id", "not a regular expression"),
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
