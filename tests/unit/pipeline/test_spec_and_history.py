"""Pipeline specs and run history, pure: the shipped orders spec loads in dependency order, loader errors
name file, key and reason, cycles and bad YAML are reported, checks parse and evaluate, the step state
table, unfinished runs marked abandoned when the history is read again."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from helpers import examples
from helpers.pipeline import ORDERS_STEPS, ORDERS_YAML, base_doc, write_yaml
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from foss_supervisor.base.pipelinestates import STEP_TRANSITIONS, RunMode, RunStatus, StepState
from foss_supervisor.errors import IllegalTransitionError
from foss_supervisor.pipeline.engine.history import RunHistory, RunRecord, StepRecord
from foss_supervisor.pipeline.engine.spec import evaluate_check, load_pipeline, parse_check
from foss_supervisor.pipeline.errors import PipelineConfigError


def test_orders_yaml_loads_in_dependency_order() -> None:
    spec = load_pipeline(ORDERS_YAML)
    assert [s.name for s in spec.steps] == ORDERS_STEPS
    assert spec.step("discover").modes == frozenset({RunMode.RUN})
    assert spec.folders.reference.name == "reference" and spec.folders.reference.is_absolute()
    assert len(spec.checks) == 4


@pytest.mark.parametrize(
    ("mutate", "key", "reason"),
    [
        (lambda d: d.update(nme="x"), "nme", "unknown key"),
        (lambda d: d.pop("name"), "name", "is required"),
        (lambda d: d["steps"][0].update(sql="missing.sql"), "steps.a.sql", "cannot read SQL file"),
        (lambda d: d["steps"][0].update(depends_on=["nope"]), "steps.a.depends_on", "unknown step 'nope'"),
        (lambda d: d["steps"][0].update(kind="shell"), "steps.a.kind", "sql, python, quality, deduplicate"),
        (lambda d: d["steps"][0].update(timeout_s=-1), "steps.a.timeout_s", "must be a duration from 1ms to 1d"),
        (lambda d: d["steps"][0].update(retries="many"), "steps.a.retries", "must be an integer"),
        (lambda d: d["steps"][0].update(modes=["sometimes"]), "steps.a.modes[0]", "must be one of run, replay"),
        (lambda d: d["steps"].append({"name": "a", "sql": "a.sql"}), "steps[1].name", "duplicate step name"),
        (
            lambda d: d["steps"].append({"name": "b", "kind": "python", "callable": "no_such_mod:f"}),
            "steps.b.callable",
            "cannot be imported",
        ),
        (
            lambda d: d["steps"].append({"name": "b", "kind": "python", "callable": "not a callable"}),
            "steps.b.callable",
            "'package.module:function'",
        ),
        (
            lambda d: d["steps"].append(
                {"name": "b", "kind": "python", "callable": "foss_supervisor.pipeline.worker.ingest:ingest"}
            ),
            "steps.b.params",
            "ingest needs params.table",
        ),
        (
            lambda d: d["steps"].append(
                {
                    "name": "b",
                    "kind": "python",
                    "callable": "foss_supervisor.pipeline.worker.ingest:ingest",
                    "params": {"table": "b_raw.t", "columns": ["Order Id"]},
                }
            ),
            "steps.b.params.columns",
            "lower-case column names",
        ),
        (
            lambda d: d["steps"].append(
                {
                    "name": "b",
                    "kind": "python",
                    "callable": "foss_supervisor.pipeline.worker.ledger:discover",
                    "params": {"pattern": "*.csv"},
                }
            ),
            "steps.b.params.pattern",
            "unknown parameter",
        ),
        (lambda d: d.update(checks=["a.rows_in = a.rows_out"]), "checks[0]", "exactly one '=='"),
        (lambda d: d.update(checks=["zz.rows_in == a.rows_out"]), "checks[0]", "unknown step 'zz'"),
        (lambda d: d["folders"].pop("landing"), "folders.landing", "is required: a path"),
    ],
)
def test_loader_errors_name_file_key_and_reason(tmp_path: Path, mutate: object, key: str, reason: str) -> None:
    doc = base_doc(tmp_path)
    mutate(doc)  # type: ignore[operator]
    path = write_yaml(tmp_path, doc)
    with pytest.raises(PipelineConfigError) as info:
        load_pipeline(path)
    assert info.value.file == str(path)
    assert info.value.key == key
    assert reason in info.value.reason
    assert str(path) in str(info.value) and key in str(info.value)
    # the line is the one that holds the key (steps are named, not numbered)
    assert info.value.line is not None and f"{path}:{info.value.line}:" in str(info.value)
    leaf = key.rsplit(".", 1)[-1].split("[")[0]
    text = path.read_text().splitlines()[info.value.line - 1]
    assert leaf in text or key.endswith("]") or key in ("name", "folders.landing", "steps.b.params"), (key, text)


#: mistakes of one step each, independent of the others: (its field, a wrong value)
STEP_MISTAKES = {
    "timeout_s": -1,
    "retries": "many",
    "sql": "missing.sql",
    "kind": "shell",
    "modes": ["sometimes"],
    "layer": "platinum",
    "depends_on": ["nope"],
}
#: mistakes of the file's top level, independent of the steps: (its key, a wrong value)
TOP_MISTAKES = {
    "nme": "p",
    "snapshot_keep": "many",
    "description": ["not", "text"],
    "publish_format": "orc",  # the tester's: hidden behind other mistakes until they were fixed
    "publish_keep": 0,
}


@settings(max_examples=examples(40), deadline=None)
@example(mistakes=[{"layer", "depends_on"}], top=set(), bad_check=False)  # the tester's: one step, two mistakes
@example(mistakes=[{"kind"}], top={"nme"}, bad_check=False)  # a bad step and a bad top-level key
@given(
    mistakes=st.lists(st.sets(st.sampled_from(sorted(STEP_MISTAKES)), max_size=3), min_size=1, max_size=4),
    top=st.sets(st.sampled_from(sorted(TOP_MISTAKES))),
    bad_check=st.booleans(),
)
def test_independent_mistakes_are_all_reported_at_once(
    mistakes: list[set[str]], top: set[str], bad_check: bool
) -> None:
    """Each step's own mistakes (several of one step too: issue 18, a tester's find, a bad ``layer`` hid a
    bad ``depends_on``), each top-level key's and each check's are told in one error, in file order, each at
    its line (so an author fixes a file in one pass); a file with one mistake says just that one. A step's
    ``sql`` is read only once its ``kind`` says it has one: a bad kind hides a bad sql file."""
    assume(bad_check or top or any(mistakes))
    with tempfile.TemporaryDirectory() as tmp:
        doc = base_doc(Path(tmp))
        doc["steps"] = [
            {"name": f"s{i}", "sql": "a.sql", **{field: STEP_MISTAKES[field] for field in fields}}
            for i, fields in enumerate(mistakes)
        ]
        doc.update({key: TOP_MISTAKES[key] for key in top})
        doc["checks"] = ["s0.rows_in == s0.rows_out", *(["s0.rows_in = s0.rows_out"] if bad_check else [])]
        path = write_yaml(Path(tmp), doc)
        written = path.read_text().splitlines()
        with pytest.raises(PipelineConfigError) as info:
            load_pipeline(path)
    expected = [
        f"steps.s{i}.{field}"
        for i, fields in enumerate(mistakes)
        for field in fields
        if not (field == "sql" and "kind" in fields)
    ]
    keys = [e.key.split("[")[0] if e.key.startswith("steps") else e.key for e in info.value.errors]
    want = [*expected, *top, *(["checks[1]"] if bad_check else [])]
    assert sorted(keys) == sorted(want), str(info.value)
    assert all(isinstance(e.line, int) for e in info.value.errors)
    assert [e.line for e in info.value.errors] == sorted(e.line or 0 for e in info.value.errors)
    assert (f"{len(keys)} errors:" in str(info.value)) == (len(keys) > 1), str(info.value)
    for e in info.value.errors:  # each at its own key's line
        text = written[(e.line or 1) - 1]
        leaf = e.key.rsplit(".", 1)[-1].split("[")[0]
        assert leaf in text or e.key.endswith("]") or e.key.startswith("checks"), (e.located, text)


@settings(max_examples=examples(30), deadline=None)
@given(
    publish=st.sampled_from([["p_gold"], ["p_gold", "p_gold.nothere_schema_x"], ["nope"]]),
    partitions=st.lists(st.sampled_from(["p_gold.t.day", "other.t.day", "p_gold.t.day"]), max_size=3),
    patterns_bad=st.booleans(),
)
def test_what_needs_the_steps_whole_tells_each_mistake_at_once(
    publish: list[str], partitions: list[str], patterns_bad: bool
) -> None:
    """Once the steps load, the checks that need them whole (publish, its partition columns, patterns) tell
    every mistake in one error (the tester's: a bad ``publish`` hid a bad ``publish_partition_by``)."""
    with tempfile.TemporaryDirectory() as tmp:
        doc = base_doc(Path(tmp))
        doc.update({"schemas": ["p_gold"], "publish": publish, "publish_partition_by": partitions})
        if patterns_bad:
            doc["patterns"] = "*.csv"
        path = write_yaml(Path(tmp), doc)
        expected = set()
        if publish == ["nope"]:
            expected.add("publish")
        published = set(publish) if publish != ["nope"] else set()
        seen: set[str] = set()
        for i, dotted in enumerate(partitions):
            table = dotted.rpartition(".")[0]
            if (table not in published and table.split(".")[0] not in published) or dotted in seen:
                expected.add(f"publish_partition_by[{i}]")
            seen.add(dotted)
        if patterns_bad:
            expected.add("patterns")
        if not expected:
            load_pipeline(path)
            return
        with pytest.raises(PipelineConfigError) as info:
            load_pipeline(path)
    assert {e.key for e in info.value.errors} == expected, str(info.value)
    assert all(isinstance(e.line, int) for e in info.value.errors), str(info.value)


def test_a_check_naming_a_step_in_error_is_not_a_second_problem(tmp_path: Path) -> None:
    """One root cause is one problem: the step whose declaration is wrong (here not even a mapping, so its
    name is unknown) is the error, not also the check naming it."""
    doc = base_doc(tmp_path)
    doc["steps"] = [{"name": "a", "sql": "a.sql"}, ["clean"]]
    doc["checks"] = ["clean.rows_in == a.rows_out"]
    with pytest.raises(PipelineConfigError) as info:
        load_pipeline(write_yaml(tmp_path, doc))
    assert [(e.key, e.reason) for e in info.value.errors] == [("steps[1]", "must be a mapping")], str(info.value)


def test_cycle_is_reported(tmp_path: Path) -> None:
    doc = base_doc(tmp_path)
    doc["steps"] = [
        {"name": "a", "sql": "a.sql", "depends_on": ["b"]},
        {"name": "b", "sql": "a.sql", "depends_on": ["a"]},
    ]
    with pytest.raises(PipelineConfigError, match="dependency cycle among: a, b"):
        load_pipeline(write_yaml(tmp_path, doc))


def test_invalid_yaml_is_reported(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(PipelineConfigError, match="invalid YAML"):
        load_pipeline(p)


def test_checks_parse_and_evaluate() -> None:
    c = parse_check("validate.rows_in == validate.valid + validate.rejected")
    assert evaluate_check(c, {"validate": {"rows_in": 10, "valid": 7, "rejected": 3}})[0] is True
    ok, detail = evaluate_check(c, {"validate": {"rows_in": 10, "valid": 7, "rejected": 2}})
    assert ok is False and detail == "left=10 right=9"
    assert evaluate_check(c, {})[0] is None


def test_state_table() -> None:
    STEP_TRANSITIONS.check(StepState.PENDING, StepState.QUEUED)
    STEP_TRANSITIONS.check(StepState.RUNNING, StepState.RETRYING)
    STEP_TRANSITIONS.check(StepState.RETRYING, StepState.QUEUED)
    with pytest.raises(IllegalTransitionError, match="succeeded -> running"):
        STEP_TRANSITIONS.check(StepState.SUCCEEDED, StepState.RUNNING)
    with pytest.raises(IllegalTransitionError):
        STEP_TRANSITIONS.check(StepState.PENDING, StepState.SUCCEEDED)
    assert all(s.icon for s in StepState)
    assert StepState.SKIPPED.ok and not StepState.CRASHED.ok


def test_history_marks_unfinished_runs_abandoned(tmp_path: Path) -> None:
    h = RunHistory(tmp_path / "runs.jsonl")
    rec = RunRecord("r1", "p", RunMode.RUN, "manual", RunStatus.RUNNING, 1.0, (StepRecord("a"),))
    h.append(rec)
    with (tmp_path / "runs.jsonl").open("a") as f:
        f.write('{"torn": ')  # a crash mid-write
    again = RunHistory(tmp_path / "runs.jsonl")
    got = again.get("r1")
    assert got is not None and got.status is RunStatus.ABANDONED
    # finished when found (a last run like a failed one: card, status, /health), its duration unknown
    assert got.finished_at is not None and got.finished_at >= got.started_at and got.duration_s is None
    assert json.loads(json.dumps(got.to_dict()))["steps"][0]["state"] == "pending"
