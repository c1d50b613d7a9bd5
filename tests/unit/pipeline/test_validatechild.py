"""The SQL check's request (pipeline/worker/validatechild.py), the gate a reload's check passes: any request is answered
with reports or refused with ValueError (the check replies ``ok: false``), never another exception; a
pipeline that does not load, or whose check fails, is that pipeline's ``error``, not the request's. And the
daemon's reading of what the check printed (reloadcheck.py): any output gives problems or says why the check
did not finish, never an exception."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from foss_supervisor.pipeline.engine.reloadcheck import Output, final_problems, read_output
from foss_supervisor.pipeline.engine.spec import default_pipelines_dir
from foss_supervisor.pipeline.worker.validatechild import validate_pipelines

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
item = st.fixed_dictionaries(
    {},
    optional={k: json_values for k in ("file", "name", "landing", "reference", "data_dir", "standalone")},
)


@settings(max_examples=examples(300), deadline=None)
@given(message=st.one_of(json_values, st.fixed_dictionaries({"pipelines": st.lists(item | json_values, max_size=3)})))
def test_any_request_gets_reports_or_a_value_error(message: Any) -> None:
    try:
        reply = validate_pipelines(message if isinstance(message, dict) else {"pipelines": message})
    except ValueError:
        return
    for verdict in reply["pipelines"].values():
        assert set(verdict) == {"reports", "error"}
        keys = {"step", "status", "where", "message", "metrics"}
        assert verdict["error"] or all(set(r) == keys for r in verdict["reports"])


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


def test_many_pipelines_are_each_answered_and_a_malformed_one_refuses_the_request_before_any_check(
    tmp_path: Path,
) -> None:
    base = {"landing": str(tmp_path / "land"), "reference": None, "data_dir": str(tmp_path)}
    items = [{"file": str(tmp_path / f"p{i}.yaml"), "name": f"p{i}", **base} for i in range(300)]
    started: list[str] = []
    reply = validate_pipelines({"pipelines": items}, started.append)["pipelines"]
    assert len(reply) == 300 == len(started) and all(v["error"] and v["reports"] == [] for v in reply.values())
    started.clear()
    with pytest.raises(ValueError, match="needs a name"):
        validate_pipelines({"pipelines": [*items, {"file": "x"}]}, started.append)
    assert started == []


def test_an_ingest_declaration_that_cannot_make_its_bronze_is_an_error_of_the_step(tmp_path: Path) -> None:
    (tmp_path / "setup.sql").write_text("CREATE SCHEMA IF NOT EXISTS ev_bronze;\n")
    ingest = "foss_supervisor.pipeline.worker.ingest:ingest"
    (tmp_path / "ev.yaml").write_text(
        "name: ev\nfolders: {landing: land, reference: ., warehouse: w.duckdb}\nschemas: [ev_meta, ev_bronze]\n"
        "setup: setup.sql\nsteps:\n"
        "  - {name: discover, kind: python, callable: 'foss_supervisor.pipeline.worker.ledger:discover'}\n"
        f"  - name: ingest\n    kind: python\n    callable: '{ingest}'\n    depends_on: [discover]\n"
        "    params: {table: ev_bronze.raw, columns: [event_id, _batch_id]}\n"
    )
    base = {"landing": str(tmp_path / "land"), "reference": None, "data_dir": str(tmp_path)}
    verdict = validate_pipelines({"pipelines": [{"file": str(tmp_path / "ev.yaml"), "name": "ev", **base}]})
    [report] = [r for r in verdict["pipelines"]["ev"]["reports"] if r["status"] == "error"]
    assert report["step"] == "ingest" and report["where"] == f"{tmp_path / 'ev.yaml'}:7"
    assert "_batch_id" in report["message"]


output_lines = st.one_of(
    st.binary(max_size=40),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"checking": st.text(max_size=8)}).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"ok": json_values, "result": json_values, "error": json_values}).map(
        lambda v: json.dumps(v).encode()
    ),
    st.fixed_dictionaries(
        {
            "ok": st.just(True),
            "result": st.fixed_dictionaries({"pipelines": st.dictionaries(st.text(max_size=5), json_values)}),
        }
    ).map(lambda v: json.dumps(v).encode()),
)


@settings(max_examples=examples(300), deadline=None)
@given(lines=st.lists(output_lines, max_size=4), err=st.binary(max_size=50))
def test_any_output_of_the_check_gives_problems_or_says_why_not(lines: list[bytes], err: bytes) -> None:
    output = Output()
    output(1, b"\n".join(lines))
    output(2, err)
    checking, final, unreadable = read_output(output)
    assert isinstance(checking, str) and isinstance(unreadable, str)
    if final is not None and not unreadable:
        try:
            problems = final_problems(final)
        except ValueError as exc:
            assert str(exc)
        else:
            assert all(isinstance(p, str) and p for p in problems)
