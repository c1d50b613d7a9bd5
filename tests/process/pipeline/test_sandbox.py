"""What a pipeline's SQL may touch, decided before it runs: two pipelines cannot own one schema, the statement
scan finds targets and sources, and access refuses what leaves the sandbox (DuckDB's own tokenizer, no
database; isolation on a real warehouse: tests/process/pipeline/test_isolation.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from helpers.pipeline import events_yaml, orders_spec

from foss_supervisor.pipeline.engine.runner import PipelineRunner
from foss_supervisor.pipeline.engine.spec import load_pipeline
from foss_supervisor.pipeline.errors import PipelineConfigError
from foss_supervisor.pipeline.worker.sandbox import Access, AccessDenied, scan_statement


async def test_two_pipelines_cannot_own_one_schema(tmp_path: Path, workspace: dict[str, Path]) -> None:
    ws = workspace
    clash = events_yaml(tmp_path, ws, schemas=["events_meta", "events_bronze", "events_gold", "gold"])
    with pytest.raises(PipelineConfigError, match="schema 'gold' is also owned by pipeline 'orders'"):
        PipelineRunner([orders_spec(ws), load_pipeline(clash)], state_dir=ws["state"])


@pytest.mark.parametrize(
    ("sql", "writes", "reads"),
    [
        ("INSERT INTO a.b SELECT * FROM c.d JOIN e.f ON c.d.x = e.f.x", ["a.b"], ["c.d", "e.f"]),
        ("CREATE OR REPLACE TABLE w.y AS SELECT * FROM c.d x, e.f AS y WHERE x.k = y.k", ["w.y"], ["c.d", "e.f"]),
        ("CREATE TEMP TABLE t AS SELECT * FROM c.d", [], ["c.d"]),
        ("DELETE FROM a.b WHERE x IN (SELECT x FROM c.d)", ["a.b"], ["c.d"]),
        ("UPDATE a.b SET x = 1 FROM c.d WHERE a.b.k = c.d.k", ["a.b"], ["c.d"]),
        ("TRUNCATE a.b", ["a.b"], []),
        ("TRUNCATE TABLE a.b", ["a.b"], []),
        ("WITH q AS (SELECT * FROM c.d) INSERT INTO a.b SELECT * FROM q", ["a.b"], ["c.d"]),
        ("WITH q AS (SELECT 1) DELETE FROM a.b WHERE k IN (SELECT * FROM q)", ["a.b"], []),
        ("MERGE INTO a.b USING c.d ON a.b.k = c.d.k WHEN MATCHED THEN DELETE", ["a.b"], ["c.d"]),
        ("COPY (SELECT * FROM c.d) TO '/tmp/x.csv'", [], ["c.d"]),
        ("DROP TABLE IF EXISTS a.b", ["a.b"], []),
        ("CREATE OR REPLACE MACRO work.f(x) AS x + 1", ["work.f"], []),
        ('SELECT EXTRACT(year FROM r.ts), r.x IS DISTINCT FROM s.y FROM "Q"."R" r, s.t s', [], ["q.r", "s.t"]),
        ("SET VARIABLE v = (SELECT max(x) FROM w.t)", [], ["w.t"]),
        ("COPY a.b FROM '/x.csv'", ["a.b"], []),
        ("SELECT * FROM read_csv('/x.csv') WITH ORDINALITY AS t(line, n)", [], []),
    ],
)
def test_statement_scan_finds_targets_and_sources(sql: str, writes: list[str], reads: list[str]) -> None:
    refs = scan_statement(sql)
    assert list(refs.writes) == writes and sorted(refs.reads) == reads and refs.refused is None


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("COPY (SELECT 1) TO '/tmp/x.csv'", "may not write files"),
        ("COPY a.b TO '/tmp/x.parquet' (FORMAT parquet)", "may not write files"),
        ("EXPORT DATABASE '/tmp/dump'", "EXPORT"),
        ("ATTACH '/tmp/x.duckdb' AS x", "ATTACH"),
        ("USE gold", "USE, SET and RESET"),
        ("SET search_path = 'gold'", "USE, SET and RESET"),
        ("COMMIT", "transaction control"),
        ("CREATE SCHEMA gold", "schema 'gold' is not one of"),
        ("INSERT INTO gold.t VALUES (1)", "may not write gold.t"),
        ("SELECT * FROM gold.t", "may not read gold.t"),
        ("SELECT * FROM query_table('gold.t')", "hides the tables"),
        ("SELECT * FROM query('SELECT * FROM gold.t')", "hides the tables"),
        # a declared input is read-only, whatever the statement starts with
        ("WITH q AS (SELECT 1 AS x) INSERT INTO gold.t SELECT * FROM q", "may not write gold.t"),
        ("WITH q AS (SELECT 1 AS x) DELETE FROM gold.t", "may not write gold.t"),
    ],
)
def test_access_refuses_what_leaves_the_sandbox(sql: str, reason: str) -> None:
    access = Access(
        "p", owned=frozenset({"p_meta", "p_gold"}), inputs=frozenset({"gold.t"}) if "WITH" in sql else frozenset()
    )
    with pytest.raises(AccessDenied, match=reason.replace("(", r"\(")):
        access.check(sql)
    access.check("CREATE SCHEMA IF NOT EXISTS p_gold")
    access.check("CREATE TABLE p_gold.t AS SELECT * FROM main.scratch")
    access.check("SET VARIABLE x = 1")


#: every place DuckDB lets a statement read a table, with {t} for the table as spelled below; each template
#: is run by DuckDB first (so it is a statement that really reads it), then must be refused by the sandbox
_READS = [
    "SELECT * FROM {t}",
    "FROM {t}",
    "FROM {t} SELECT id",
    "TABLE {t}",
    "SELECT * FROM p_gold.mine JOIN {t} USING (id)",
    "SELECT * FROM p_gold.mine, {t}",
    "SELECT * FROM (SELECT * FROM {t}) s",
    "WITH c AS (SELECT * FROM {t}) SELECT * FROM c",
    "SELECT 1 UNION ALL SELECT id FROM {t}",
    "SELECT * FROM p_gold.mine WHERE id IN (SELECT id FROM {t})",
    "SELECT EXISTS (SELECT 1 FROM {t})",
    "SELECT (SELECT max(id) FROM {t})",
    "SELECT * FROM p_gold.mine, LATERAL (SELECT * FROM {t}) l",
    "PIVOT {t} ON s USING count(*)",
    "UNPIVOT {t} ON s INTO NAME k VALUE v",
    "PIVOT_WIDER {t} ON s USING count(*)",
    "SELECT * FROM (PIVOT {t} ON s USING count(*))",
    "SELECT * FROM {t} PIVOT (count(*) FOR s IN ('a'))",
    "SUMMARIZE {t}",
    "DESCRIBE {t}",
    "SHOW {t}",
    "CREATE TABLE p_gold.copy AS SELECT * FROM {t}",
    "CREATE TABLE p_gold.copy AS PIVOT {t} ON s USING count(*)",
    "CREATE TABLE p_gold.copy AS UNPIVOT {t} ON s INTO NAME k VALUE v",
    "CREATE TABLE p_gold.copy AS SUMMARIZE {t}",
    "CREATE TEMP TABLE scratch AS PIVOT {t} ON s USING count(*)",
    "INSERT INTO p_gold.mine SELECT id, s FROM {t}",
    "DELETE FROM p_gold.mine USING {t} WHERE p_gold.mine.id = {t}.id",
    "UPDATE p_gold.mine SET s = o.s FROM {t} o WHERE o.id = p_gold.mine.id",
]
_SPELLINGS = ["other.t", '"other"."t"', "OTHER.T", "memory.other.t", "other . t", "other/* x */.t", "other\n.t"]


@pytest.fixture(scope="module")
def other_warehouse() -> Iterator[duckdb.DuckDBPyConnection]:
    """One in-memory warehouse with another pipeline's table (other.t) and one of pipeline p (p_gold.mine)."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA other; CREATE TABLE other.t (id INT, s VARCHAR); INSERT INTO other.t VALUES (1, 'a')")
    con.execute("CREATE SCHEMA p_gold; CREATE TABLE p_gold.mine (id INT, s VARCHAR)")
    yield con
    con.close()


@pytest.mark.parametrize("template", _READS)
def test_a_table_of_another_pipeline_is_refused_wherever_a_statement_reads_it(
    template: str, other_warehouse: duckdb.DuckDBPyConnection
) -> None:
    """The sandbox refuses a read of a table outside the pipeline's schemas and inputs in every syntactic
    place DuckDB reads one (PIVOT, SUMMARIZE and DESCRIBE once got through), however the name is spelled:
    every place with every spelling (the whole finite class, not a sample of it)."""
    for spelling in _SPELLINGS:
        sql = template.format(t=spelling)
        other_warehouse.execute("BEGIN TRANSACTION")
        try:
            other_warehouse.execute(sql)  # a real statement, and it reads other.t
        finally:
            other_warehouse.execute("ROLLBACK")  # what it wrote (a copy, a scratch table) is gone for the next one
        with pytest.raises(AccessDenied, match=r"may not read other\.t"):
            Access("p", owned=frozenset({"p_gold"})).check(sql)
