"""The worker's ``validate`` request (workervalidate.py), the gate a reload's SQL check passes: any request
is answered with reports or refused with ValueError (the worker replies ``bad_request``), never another
exception; a pipeline that does not load is an ``error``, not a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foss_supervisor.pipeline.spec import default_pipelines_dir
from foss_supervisor.pipeline.workervalidate import validate_pipelines

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
item = st.fixed_dictionaries(
    {},
    optional={k: json_values for k in ("file", "name", "landing", "reference", "data_dir")},
)


@settings(max_examples=300, deadline=None)
@given(message=st.one_of(json_values, st.fixed_dictionaries({"pipelines": st.lists(item | json_values, max_size=3)})))
def test_any_request_gets_reports_or_a_value_error(message: Any) -> None:
    try:
        reply = validate_pipelines(message if isinstance(message, dict) else {"pipelines": message})
    except ValueError:
        return
    for verdict in reply["pipelines"].values():
        assert set(verdict) == {"reports", "error"}
        assert verdict["error"] or all(set(r) == {"step", "status", "where", "message"} for r in verdict["reports"])


def test_a_shipped_pipeline_validates_and_one_that_does_not_load_is_an_error(tmp_path: Path) -> None:
    base = {"landing": str(tmp_path / "land"), "reference": None, "data_dir": str(tmp_path)}
    reply = validate_pipelines(
        {
            "pipelines": [
                {"file": str(default_pipelines_dir() / "orders.yaml"), "name": "orders", **base},
                {"file": str(tmp_path / "gone.yaml"), "name": "gone", **base},
                {"file": str(default_pipelines_dir() / "orders.yaml"), "name": "other", **base},
            ]
        }
    )["pipelines"]
    assert reply["orders"]["error"] == "" and {r["status"] for r in reply["orders"]["reports"]} == {"ok"}
    assert "gone.yaml" in reply["gone"]["error"] and reply["gone"]["reports"] == []
    assert "configured as 'other'" in reply["other"]["error"]


def test_a_request_over_the_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="at most"):
        validate_pipelines({"pipelines": [{}] * 257})
