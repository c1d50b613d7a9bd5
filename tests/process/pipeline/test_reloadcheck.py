"""A reload's SQL check in its own child (reloadcheck.py, pipeline/worker/validatechild.py): real child processes,
no daemon.

User code at import only ends the check's child and is reported for its pipeline; a step file changed
between two checks is imported afresh; a check that cannot finish is a problem saying why, within its
bound, its child's group gone."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import psutil

from foss_supervisor.config import Config
from foss_supervisor.config.loader import load_config
from foss_supervisor.pipeline.engine.reloadcheck import CHECK_MODULE, MAX_CHECKS, sql_problems

PY_YAML = """name: {name}
folders: {{landing: land, reference: ref_{name}, warehouse: w.duckdb}}
schemas: [{name}_meta]
steps:
  - name: go
    kind: python
    callable: "{name}.py:{func}"
"""

SQL_YAML = """name: {name}
folders: {{landing: land, reference: ref_{name}, warehouse: w.duckdb}}
schemas: [{name}_meta, {name}_ref]
steps:
  - {{name: z, sql: {name}.sql}}
"""


def python_pipeline(tmp_path: Path, name: str, module: str, func: str = "f") -> None:
    (tmp_path / f"ref_{name}").mkdir(exist_ok=True)
    (tmp_path / f"{name}.yaml").write_text(PY_YAML.format(name=name, func=func))
    (tmp_path / f"{name}.py").write_text(module)


def config_of(tmp_path: Path, *names: str) -> Config:
    lines = "".join(f"  {n}: {{file: {tmp_path / n}.yaml, on_new_files: false}}\n" for n in names)
    path = tmp_path / "cfg.yaml"
    path.write_text(f"state_dir: {tmp_path / 'state'}\npipelines:\n{lines}")
    return load_config(path, {})


STEP = "def f(ctx):\n    return {'rows_in': 0, 'rows_out': 0}\n"


def test_user_code_at_import_ends_only_the_check_and_a_changed_file_is_imported_afresh(tmp_path: Path) -> None:
    python_pipeline(tmp_path, "good", STEP, func="g")
    python_pipeline(tmp_path, "quits", f"raise SystemExit(3)\n{STEP}")
    config = config_of(tmp_path, "good", "quits")
    problems = asyncio.run(sql_problems(config, ["good", "quits"]))
    assert len(problems) == 2, problems
    assert problems[0].startswith(f"good: step go: {tmp_path / 'good.yaml'}:5: cannot import") and "'g'" in problems[0]
    assert problems[1].startswith(f"quits: step go: {tmp_path / 'quits.yaml'}:5: cannot import")
    assert problems[1].endswith("SystemExit: 3")

    # the function is added to the file the first check imported: a fresh check finds it
    (tmp_path / "good.py").write_text(STEP + "def g(ctx):\n    return f(ctx)\n")
    assert asyncio.run(sql_problems(config, ["good"])) == []

    python_pipeline(tmp_path, "dies", f"import os\nos._exit(0)\n{STEP}")
    [why] = asyncio.run(sql_problems(config_of(tmp_path, "good", "dies"), ["good", "dies"]))
    assert why.startswith("the SQL check of pipeline dies ended (exit code 0) without a reply"), why
    assert "exits or crashes at import" in why


def fifo_pipeline(tmp_path: Path) -> None:
    (tmp_path / "ref_fifo").mkdir()
    os.mkfifo(tmp_path / "ref_fifo" / "zones.csv")  # never written: reading it never ends
    (tmp_path / "fifo.yaml").write_text(SQL_YAML.format(name="fifo"))
    (tmp_path / "fifo.sql").write_text(
        "CREATE SCHEMA IF NOT EXISTS fifo_ref;\nCREATE OR REPLACE TABLE fifo_ref.z AS SELECT * FROM"
        " read_csv(getvariable('reference_dir') || '/zones.csv', columns={'zone': 'VARCHAR'});\n"
        "SELECT 1 AS rows_in, 1 AS rows_out;\n"
    )


def checks_running() -> int:
    """Check processes alive now (one that ends while it is looked at, a zombie or gone, is not counted)."""
    count = 0
    for p in psutil.Process().children(recursive=True):
        try:
            count += CHECK_MODULE in " ".join(p.cmdline())
        except psutil.Error:
            continue
    return count


def test_a_check_that_cannot_finish_is_refused_within_its_bound_and_its_group_ends(tmp_path: Path) -> None:
    fifo_pipeline(tmp_path)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    started = time.monotonic()
    [why] = asyncio.run(sql_problems(config_of(tmp_path, "fifo"), ["fifo"], timeout_s=3.0))
    took = time.monotonic() - started
    assert why.startswith("the SQL check of pipeline fifo did not finish within 3 s and was stopped"), why
    assert "FIFO" in why
    assert took < 3.0 + 10.0, took  # the timeout plus the child's stop and drain, never the read's
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before


def test_checks_at_once_are_bounded_and_the_rest_wait_their_turn(tmp_path: Path) -> None:
    fifo_pipeline(tmp_path)
    config = config_of(tmp_path, "fifo")

    async def main() -> tuple[list[list[str]], int]:
        checks = asyncio.gather(*(sql_problems(config, ["fifo"], timeout_s=1.5) for _ in range(MAX_CHECKS + 1)))
        most = 0
        while not checks.done():
            most = max(most, checks_running())
            await asyncio.sleep(0.05)
        return await checks, most

    found, most = asyncio.run(main())
    assert all(len(f) == 1 and "did not finish within 1.5 s" in f[0] for f in found), found
    assert 1 <= most <= MAX_CHECKS
