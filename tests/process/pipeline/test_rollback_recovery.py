"""A rollback stopped after its restore committed (issue 18: "daemon kill leave every table and the ledger as
before"): its restore's transaction wrote the ledger's rollback row, so the next runner on the same warehouse and
history finishes the published set's switch and the snapshot, and records the rollback as it happened. The stop
is a cancel while the switch blocks on run 1's kept manifest, swapped for a FIFO (no sleep); the e2e test
(tests/e2e/test_pipeline_recovery_daemon.py) does the same with a SIGKILLed daemon."""

from __future__ import annotations

import asyncio
import json
import math
import os
from pathlib import Path

import duckdb
import pytest
from helpers import fifo_writer, wait_until
from helpers.pipeline import RunnerFactory
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_publish_delta import delta_pipeline, duckdb_rows

from foss_supervisor.base.pipelinestates import RunStatus
from foss_supervisor.pipeline.engine.publish import RUN_ID
from foss_supervisor.pipeline.engine.recovery import ROLLBACK_LEFT
from foss_supervisor.pipeline.engine.runner import PipelineRunner
from foss_supervisor.pipeline.engine.spec import PipelineSpec, load_pipeline


async def test_a_rollback_stopped_after_its_restore_committed_is_finished_by_the_next_runner(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    spec = load_pipeline(delta_pipeline(tmp_path, workspace, publish_format="parquet"))
    runner = await runners.open([spec], workspace["state"])
    folder = runner.publish_dir / "dl"
    first = await asyncio.wait_for(runner.run("dl"), 60)
    at_first = await duckdb_rows(runner)
    (workspace["reference"] / "size.csv").write_text("n\n70\n")
    second = await asyncio.wait_for(runner.run("dl"), 60)
    assert (first.status, second.status) == (RunStatus.SUCCEEDED, RunStatus.SUCCEEDED)
    kept = folder / "runs" / first.run_id / "_manifest.json"
    text = kept.read_bytes()
    kept.unlink()
    os.mkfifo(kept)

    task = asyncio.ensure_future(runner.rollback("dl", first.run_id, apply=True))
    writer = await wait_until(lambda: fifo_writer(kept), 60, "the switch reading run 1's manifest")
    try:
        [rollback] = runner.runs("dl", 1)
        assert rollback.reason == "rollback" and rollback.status is RunStatus.RUNNING
        row = (await runner.client.query(f"SELECT run_id, target FROM {spec.ledger}.rollbacks")).rows
        assert row == ((rollback.run_id, first.run_id),)  # written in the restore's own transaction
        assert await duckdb_rows(runner) == at_first
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        os.write(writer, b"not a manifest")  # the blocked reader goes on and fails: nothing it does is kept
        os.close(writer)
    kept.unlink()
    kept.write_bytes(text)
    assert json.loads((folder / "_manifest.json").read_text())["run_id"] == second.run_id
    await runner.aclose()

    again = await runners.open([spec], workspace["state"])  # its start() reads the ledger's rollback row
    [told] = again.runs("dl", 1)
    assert told.run_id == rollback.run_id and told.started_at == rollback.started_at
    assert told.status is RunStatus.SUCCEEDED_WITH_WARNINGS and told.error == ROLLBACK_LEFT, told
    assert told.note == f"rolled back to run {first.run_id}"
    assert json.loads((folder / "_manifest.json").read_text())["run_id"] == first.run_id
    assert again.snapshots("dl")[-1] == told.run_id
    assert await duckdb_rows(again) == at_first
    same = await again.diff(first.run_id, told.run_id)
    assert all((t["added"], t["removed"], t["changed"] or 0) == (0, 0, 0) for t in same["tables"])
    assert await again.recover_rollbacks() == []  # told once


_text = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=80)
_new = st.sampled_from(["20261205T000000Z-aaaaaa", "20991231T235959Z-ffffff"])  # run ids of no run ("RUN1": run 1)
_ids = st.one_of(_text, _new, st.sampled_from(["RUN1", "a;b'--", "20261205T000000Z-aaaaaa\n"]))


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    rid=st.one_of(_new, _new, _ids),
    target=st.one_of(st.just("RUN1"), st.just("RUN1"), _ids),
    started=st.one_of(
        st.just("after"), st.just("after"), st.just("before"), st.floats(allow_nan=True, allow_infinity=True)
    ),
)
def test_whatever_the_ledger_row_holds_the_next_start_never_fails_and_tells_only_a_rollback_it_can_name(
    tmp_path_factory: pytest.TempPathFactory, rid: str, target: str, started: float | str
) -> None:
    """Any row in ``<ledger>.rollbacks`` of a real warehouse (any text, NaN, a run id of no run or of a finished
    one): the next runner's start never raises, records a rollback only for a run id it cannot have recorded
    later, says why when the row names no run or one without a snapshot, and leaves the published set at run 1."""
    tmp = tmp_path_factory.mktemp("rb")
    ws = {"landing": tmp / "landing", "reference": tmp / "ref", "db": tmp / "w" / "w.duckdb", "state": tmp / "s"}
    for folder in ("landing", "reference", "state"):
        ws[folder].mkdir()
    spec = load_pipeline(delta_pipeline(tmp, ws, publish_format="parquet"))
    asyncio.run(_start_after_row(spec, ws, rid, target, started))


async def _start_after_row(spec: PipelineSpec, ws: dict[str, Path], rid: str, target: str, at: float | str) -> None:
    runner = PipelineRunner([spec], state_dir=ws["state"])
    try:
        await runner.start()
        first = await asyncio.wait_for(runner.run("dl"), 60)
    finally:
        await runner.aclose()
    assert first.status is RunStatus.SUCCEEDED, first.to_dict()
    rid, target = (first.run_id if t == "RUN1" else t for t in (rid, target))
    started = {"before": first.started_at - 1.0, "after": first.started_at + 1.0}.get(str(at), at)
    with duckdb.connect(str(ws["db"])) as con:
        con.execute(f"INSERT INTO {spec.ledger}.rollbacks VALUES (?, ?, ?)", [rid, target, started])
    runner = PipelineRunner([spec], state_dir=ws["state"])
    try:
        await runner.start()
        runs = runner.runs("dl")
        manifest = json.loads((runner.publish_dir / "dl" / "_manifest.json").read_text())
    finally:
        await runner.aclose()
    assert manifest["run_id"] == first.run_id
    ordered = isinstance(started, float) and math.isfinite(started) and started >= first.started_at
    if not (RUN_ID.fullmatch(rid) and rid != first.run_id and ordered):
        event("not told")
        assert runs == [first]
        return
    [told, kept] = runs
    assert kept == first and told.run_id == rid and told.reason == "rollback", runs
    assert told.status is RunStatus.SUCCEEDED_WITH_WARNINGS and told.error is not None
    event(f"told, target {'bad' if not RUN_ID.fullmatch(target) else target == first.run_id}")
    if not RUN_ID.fullmatch(target):
        assert told.error.endswith("but: its ledger row names no run, so the published set was left as it was")
    elif target != first.run_id:
        assert told.error.endswith(f"but: run {target} has no snapshot, so the published set was left as it was")
    else:
        assert told.error == ROLLBACK_LEFT and told.note == f"rolled back to run {first.run_id}"
