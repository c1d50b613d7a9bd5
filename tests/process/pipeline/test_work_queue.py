"""Rows validated by a run that failed later are finished by the next run with the reference values they were
validated with (validate copies the product spelling and the rate into each valid row), even when the
reference folder changed in between."""

from __future__ import annotations

import asyncio
from pathlib import Path

from golden_data import FILES_BATCH1, write_files
from helpers.pipeline import RunnerFactory, dump_tables, orders_spec, variant_yaml

from foss_supervisor.base.pipelinestates import RunStatus, StepState


async def test_pending_batch_keeps_its_reference_data(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    ws = workspace
    write_files(ws["landing"], FILES_BATCH1)

    # Uninterrupted, with the original reference data.
    ref_runner = await runners.open([orders_spec(ws, db=tmp_path / "ref" / "wh.duckdb")], tmp_path / "ref_state")
    assert (await asyncio.wait_for(ref_runner.run("orders"), 60)).status is RunStatus.SUCCEEDED
    expected = await dump_tables(ref_runner, skip=lambda t: t.startswith("meta."))
    await ref_runner.aclose()

    # quarantine fails after validate committed its verdicts: the valid rows wait, nothing is merged yet.
    failing = variant_yaml(
        tmp_path,
        "fail",
        step_overrides={"quarantine": {"retries": 0}},
        extra_sql={"quarantine": "SELECT error('injected failure');"},
    )
    runner = await runners.open([orders_spec(ws, yaml_path=failing)], ws["state"])
    rec = await asyncio.wait_for(runner.run("orders"), 60)
    assert rec.status is RunStatus.FAILED
    assert rec.step("quarantine").state is StepState.FAILED
    waiting = await runner.client.query(
        "SELECT (SELECT count(*) FROM silver.orders_valid),"
        " (SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'silver' AND table_name = 'orders')"
    )
    assert waiting.rows[0] == (15, 0)
    await runner.aclose()

    # The reference folder changes: every rate doubles.
    fx = ws["reference"] / "fx_rates.csv"
    lines = fx.read_text().splitlines()
    doubled = [f"{c},{float(r) * 2}" for c, r in (ln.split(",") for ln in lines[1:])]
    fx.write_text("\n".join([lines[0], *doubled]) + "\n")

    # The rerun finishes the pending batch with the rates it was validated with.
    rerun = await runners.open([orders_spec(ws)], ws["state"])
    rec2 = await asyncio.wait_for(rerun.run("orders"), 60)
    assert rec2.status is RunStatus.SUCCEEDED, rec2.to_dict()
    assert rec2.step("validate").rows_in == 0 and rec2.step("deduplicate").rows_in == 15
    assert rec2.step("deduplicate").metrics["kept"] == len(expected["silver.orders"])
    got = await dump_tables(rerun, skip=lambda t: t.startswith(("meta.", "ref.")))
    assert got == {k: v for k, v in expected.items() if not k.startswith("ref.")}
    unmerged = await rerun.client.query(
        "SELECT count(*) FROM silver.orders_valid WHERE _row_id NOT IN"
        " (SELECT _row_id FROM silver.orders UNION ALL SELECT _row_id FROM silver.orders_superseded)"
    )
    assert unmerged.rows[0][0] == 0
