"""A rollback gives back each table as it was, not only its rows (issue 18, red-team): its CREATE TABLE text
(keys, NOT NULL, DEFAULT, CHECK, UNIQUE, FOREIGN KEYs, ENUM and STRUCT types) and its rows in order, across
the whole class of changes made after the snapshot (rows only, a column added, a constraint gone, a type
changed, a table added or dropped, FOREIGN KEYs between the tables), and the CREATE TABLE text a manifest
holds is run only when it is exactly one CREATE TABLE of that very table. Real DuckDB warehouse files with the
worker's functions (helpers.snapshots)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import duckdb
import pytest
from helpers.snapshots import Warehouse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.pipeline.errors import SnapshotError
from foss_supervisor.pipeline.worker.restore import checked_ddl, restore_tables

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

PARENT = (
    "CREATE TABLE s.parent (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL DEFAULT 'none',"
    " qty INTEGER CHECK (qty >= 0), code VARCHAR UNIQUE)"
)
CHILD = "CREATE TABLE s.child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES s.parent (id), note VARCHAR)"
ROWS = (
    "INSERT INTO s.parent VALUES (1, 'a', 1, 'x'), (2, 'b', 2, 'y');"
    " INSERT INTO s.child VALUES (10, 1, 'n'), (20, 2, NULL)"
)
# what a run may do to the tables after a snapshot (DuckDB refuses an ALTER of a table a FOREIGN KEY references,
# and some changes need a table or row an earlier one dropped: such a change is not made)
CHANGES = {
    "rows": "INSERT INTO s.parent (id, name, qty, code) VALUES (3, 'c', 3, 'z');"
    " UPDATE s.child SET note = 'm' WHERE id = 20",
    "delete_rows": "DELETE FROM s.child WHERE id = 10",
    "parent_column": "ALTER TABLE s.parent ADD COLUMN extra DOUBLE",
    "child_column": "ALTER TABLE s.child ADD COLUMN extra DOUBLE DEFAULT 1.5",
    "child_dropped": "DROP TABLE s.child",
    "grandchild": "CREATE TABLE s.grandchild (id INTEGER PRIMARY KEY, child_id INTEGER REFERENCES s.child (id));"
    " INSERT INTO s.grandchild VALUES (100, 10)",
    "constraint_gone": "ALTER TABLE s.parent ALTER COLUMN name DROP NOT NULL;"
    " INSERT INTO s.parent (id, name, qty, code) VALUES (4, NULL, 0, 'w')",
    "retyped": "ALTER TABLE s.child ALTER COLUMN note TYPE ENUM ('n', 'm')",
    "table_added": "CREATE TABLE s.other (k INTEGER); INSERT INTO s.other VALUES (1)",
}


@SETTINGS
@given(changes=st.lists(st.sampled_from(sorted(CHANGES)), max_size=3, unique=True), fk=st.booleans())
def test_a_rollback_gives_back_every_table_with_its_constraints_and_rows(
    tmp_path_factory: Any, changes: list[str], fk: bool
) -> None:
    """After any changes, a rollback leaves every table as the snapshot saw it: the same CREATE TABLE text (so
    its keys, checks, defaults and FOREIGN KEYs) and the same rows in order; with and without a FOREIGN KEY
    between the tables; and a second rollback to the later snapshot gives the later state back."""
    warehouse = Warehouse(tmp_path_factory.mktemp("restore"))
    try:
        warehouse.con.execute(PARENT)
        warehouse.con.execute(CHILD if fk else CHILD.replace(" REFERENCES s.parent (id)", ""))
        warehouse.con.execute(ROWS)
        first, before = warehouse.snapshot(), warehouse.state()
        for change in changes:
            with contextlib.suppress(duckdb.DependencyException, duckdb.CatalogException, duckdb.ConstraintException):
                warehouse.con.execute(CHANGES[change])
        second, after = warehouse.snapshot(), warehouse.state()
        warehouse.restore(first)
        assert warehouse.state() == before
        warehouse.restore(second)
        assert warehouse.state() == after
    finally:
        warehouse.close()


# the schema change of tables a FOREIGN KEY links, as DuckDB lets a step make it: both tables built anew
REBUILT = """
CREATE TEMP TABLE kc AS FROM s.child; DROP TABLE s.child; CREATE TEMP TABLE kp AS FROM s.parent; DROP TABLE s.parent;
CREATE TABLE s.parent (id BIGINT PRIMARY KEY, name VARCHAR, qty INTEGER, code VARCHAR, extra DOUBLE);
INSERT INTO s.parent SELECT *, 0.5 FROM kp;
CREATE TABLE s.child (id INTEGER PRIMARY KEY, parent_id BIGINT REFERENCES s.parent (id), note VARCHAR, x INTEGER);
INSERT INTO s.child SELECT *, 7 FROM kc; INSERT INTO s.parent VALUES (9, NULL, -1, NULL, 1.0)
"""


def test_tables_a_foreign_key_links_roll_back_across_their_rebuild(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path)
    try:
        warehouse.con.execute(f"{PARENT}; {CHILD}; {ROWS}")
        first, before = warehouse.snapshot(), warehouse.state()
        warehouse.con.execute(REBUILT)
        second, after = warehouse.snapshot(), warehouse.state()
        assert after != before
        warehouse.restore(first)
        assert warehouse.state() == before
        with pytest.raises(duckdb.ConstraintException):  # the FOREIGN KEY is back
            warehouse.con.execute("INSERT INTO s.child VALUES (30, 99, NULL)")
        warehouse.restore(second)
        assert warehouse.state() == after
    finally:
        warehouse.close()


def test_after_a_rollback_across_a_schema_change_keys_work_and_the_next_snapshot_records_the_key(
    tmp_path: Path,
) -> None:
    """The red-team's case: the PRIMARY KEY was lost, a duplicate id was accepted, ON CONFLICT (id) failed."""
    warehouse = Warehouse(tmp_path)
    try:
        warehouse.con.execute("CREATE TABLE s.x (id INTEGER PRIMARY KEY, v INTEGER NOT NULL DEFAULT 0)")
        warehouse.con.execute("INSERT INTO s.x VALUES (1, 1), (2, 2)")
        first = warehouse.snapshot()
        warehouse.con.execute("ALTER TABLE s.x ADD COLUMN w INTEGER; INSERT INTO s.x VALUES (3, 3, 3)")
        warehouse.snapshot()
        warehouse.restore(first)
        with pytest.raises(duckdb.ConstraintException):
            warehouse.con.execute("INSERT INTO s.x VALUES (1, 99)")
        warehouse.con.execute("INSERT INTO s.x (id) VALUES (5) ON CONFLICT (id) DO UPDATE SET v = excluded.v")
        assert warehouse.con.execute("SELECT * FROM s.x ORDER BY id").fetchall() == [(1, 1), (2, 2), (5, 0)]
        assert warehouse.manifest(warehouse.snapshot())["tables"]["s.x"]["key"] == ["id"]
    finally:
        warehouse.close()


# types whose text holds quotes or names that are type words: restored from the table's CREATE TABLE text
TYPES = [
    ("ENUM('a', 'it''s')", "'it''s'", "'a'"),
    ("mood", "'sad'", "'ok'"),  # a user ENUM type, kept by DuckDB as its labels
    ('STRUCT("a-b" INTEGER, "x y" VARCHAR)', "{'a-b': 1, 'x y': 'p'}", "{'a-b': 2, 'x y': 'q'}"),
    ("STRUCT(hugeint INTEGER, timetz VARCHAR)", "{'hugeint': 1, 'timetz': 'x'}", "{'hugeint': 2, 'timetz': 'y'}"),
    ("ENUM('a', 'b')[]", "['a', 'b']", "['b']"),
    ("MAP(VARCHAR, ENUM('a', 'b'))", "MAP {'k': 'a'}", "MAP {'k': 'b'}"),
    ('UNION(i INTEGER, "s t" VARCHAR)', "union_value(i := 1)", "union_value(\"s t\" := 'v')"),
    ("BIT", "'101'::BIT", "'11'::BIT"),
    ("INTERVAL", "INTERVAL 1 MONTH", "INTERVAL 30 DAYS"),
    ("DECIMAL(38,0)", "12345678901234567890123456789012345678", "1"),
]


@pytest.mark.parametrize(("type_name", "value", "other"), TYPES)
def test_every_type_rolls_back_to_equal_rows_and_types(tmp_path: Path, type_name: str, value: str, other: str) -> None:
    warehouse = Warehouse(tmp_path)
    try:
        warehouse.con.execute("CREATE TYPE mood AS ENUM ('ok', 'sad')")
        warehouse.con.execute(f"CREATE TABLE s.t (k INTEGER PRIMARY KEY, v {type_name})")
        warehouse.con.execute(f"INSERT INTO s.t VALUES (1, {value}), (2, NULL)")
        first = warehouse.snapshot()
        typed = warehouse.con.execute("SELECT k, v, typeof(v) FROM s.t ORDER BY k").fetchall()
        before = warehouse.state()
        warehouse.con.execute(f"UPDATE s.t SET v = {other} WHERE k = 1")  # rows only: emptied and refilled
        warehouse.restore(first)
        assert warehouse.state() == before
        warehouse.con.execute("ALTER TABLE s.t ALTER COLUMN v TYPE VARCHAR")  # the type too: created again
        warehouse.restore(first)
        assert warehouse.state() == before
        assert warehouse.con.execute("SELECT k, v, typeof(v) FROM s.t ORDER BY k").fetchall() == typed
    finally:
        warehouse.close()


_DDL = (
    "CREATE TABLE s.\"t x\"(id INTEGER PRIMARY KEY, v VARCHAR DEFAULT('a)'), g INTEGER GENERATED ALWAYS AS((id * 2)));"
)
# what a manifest's CREATE TABLE text may have been edited into: other statements, other objects, other tables
_PREFIXES = ["", "CREATE OR REPLACE TABLE", "CREATE TEMP TABLE", "CREATE TABLE IF NOT EXISTS", "CREATE VIEW"]
_NAMES = ['s."t x"', "s.other", 's."t x"x', 'main."t x"', '"t x"', 'w.s."t x"', 's . "t x"']
_TAILS = [
    "",
    ";",
    "; DROP TABLE s.other;",
    " AS SELECT 1",
    " -- note",
    " /* note */",
    "; CREATE TABLE s.other2(a INTEGER);",
    "; COPY s.other TO '/tmp/x.csv'",
]
edits = st.one_of(
    st.tuples(st.sampled_from(_PREFIXES), st.sampled_from(_NAMES), st.sampled_from(_TAILS)).map(
        lambda p: (p[0] or "CREATE TABLE") + " " + p[1] + _DDL.split('"t x"', 1)[1].rstrip(";") + p[2]
    ),
    st.text(max_size=60).map(lambda t: _DDL[: len(_DDL) // 2] + t),
    st.text(max_size=80),
)


@SETTINGS
@given(ddl=edits)
def test_a_create_table_text_runs_only_when_it_is_one_create_table_of_that_table(
    tmp_path_factory: Any, ddl: str
) -> None:
    """Whatever the text became, it is refused naming the table, or running it alone in an empty database
    creates exactly the table ``s."t x"`` and nothing else."""
    try:
        checked_ddl("s.t x", ddl)
    except SnapshotError as refused:
        assert "s.t x" in str(refused)
        return
    con = duckdb.connect()
    try:
        con.execute("CREATE SCHEMA s")
        before = con.execute("SELECT count(*) FROM duckdb_views()").fetchone()
        try:
            con.execute(ddl)
        except duckdb.Error:  # it parses but does not bind (an unknown type): then it created nothing either
            assert con.execute("SELECT count(*) FROM duckdb_tables()").fetchone() == (0,)
            return
        tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()
        assert tables == [("s", "t x")]
        assert con.execute("SELECT count(*) FROM duckdb_views()").fetchone() == before
    finally:
        con.close()


def test_a_restore_with_an_edited_create_table_text_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path)
    try:
        warehouse.con.execute("CREATE TABLE s.t (k INTEGER); CREATE TABLE s.other (k INTEGER)")
        warehouse.con.execute("INSERT INTO s.t VALUES (1); INSERT INTO s.other VALUES (2)")
        tables = warehouse.manifest(warehouse.snapshot())["tables"]
        warehouse.con.execute("ALTER TABLE s.t ADD COLUMN w INTEGER")
        before = warehouse.state()
        tables["s.t"]["ddl"] += " DROP TABLE s.other;"
        with pytest.raises(SnapshotError, match=r"CREATE TABLE text of s\.t is refused"):
            restore_tables(warehouse.con.cursor(), {"schemas": ["s"], "tables": tables}, snapshot_dir=warehouse.root)
        assert warehouse.state() == before
    finally:
        warehouse.close()


def test_generated_columns_and_sequence_defaults_come_back_and_are_not_inserted_into(tmp_path: Path) -> None:
    """A generated column is in the snapshot's files but never inserted into (DuckDB refuses that): it is
    computed again; a DEFAULT nextval(...) keeps drawing from its sequence after the rollback."""
    warehouse = Warehouse(tmp_path)
    try:
        warehouse.con.execute(
            "CREATE SEQUENCE s.ids; CREATE TABLE s.t (id INTEGER DEFAULT nextval('s.ids') PRIMARY KEY,"
            " qty INTEGER, twice INTEGER GENERATED ALWAYS AS (qty * 2))"
        )
        warehouse.con.execute("INSERT INTO s.t (qty) VALUES (1), (2)")
        first, before = warehouse.snapshot(), warehouse.state()
        warehouse.con.execute("DROP TABLE s.t; CREATE TABLE s.t (id INTEGER, qty VARCHAR)")
        warehouse.restore(first)
        assert warehouse.state() == before
        warehouse.con.execute("INSERT INTO s.t (qty) VALUES (5)")
        assert warehouse.con.execute("SELECT id, twice FROM s.t ORDER BY id").fetchall() == [(1, 2), (2, 4), (3, 10)]
    finally:
        warehouse.close()
