"""What a step may touch: the schemas its pipeline owns, the inputs it declares, and no file writes.

Why a statement guard on top of DuckDB's own sandbox: the worker's DuckDB already refuses files outside the
landing and reference folders (``allowed_directories``, ``enable_external_access=false``,
``lock_configuration=true``), but DuckDB grants read AND write to an allowed folder and knows nothing of
pipelines, since they all share one warehouse file. So before each statement of a step runs, the worker
reads it with DuckDB's own tokenizer and refuses:

- any write to a file (``COPY ... TO``, ``EXPORT DATABASE``): landing and reference are read-only inputs;
- statements that would leave the step's sandbox or transaction (``ATTACH``, ``DETACH``, ``USE``, ``SET``
  other than ``SET VARIABLE``, ``INSTALL``/``LOAD``, ``PRAGMA``, ``IMPORT DATABASE``, ``BEGIN``/``COMMIT``)
  and the ``query()``/``query_table()`` table functions, whose table names are strings the check cannot see;
- a write (INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, TRUNCATE, MERGE, COPY FROM) into a schema the
  pipeline does not own, and a read of a qualified table outside its own schemas and declared ``inputs``.

Names without a schema resolve to temporary tables, CTEs and DuckDB's ``main`` schema: that scratch space
(``main``, ``temp``) belongs to no pipeline and is not checked, so durable tables belong in owned schemas.
A refusal raises :class:`AccessDenied` naming the statement's first line and the rule.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from typing import Any

import duckdb

__all__ = ["Access", "AccessDenied", "GuardedCursor", "StatementRefs", "scan_statement"]

#: schemas every step may read (DuckDB's catalogs and scratch space)
SYSTEM_SCHEMAS = frozenset({"main", "temp", "information_schema", "pg_catalog"})
#: schemas that unqualified names resolve to: scratch space no pipeline owns, not checked
_SCRATCH = frozenset({"main", "temp"})
_REFUSED_TYPES = {
    "ATTACH": "ATTACH",
    "DETACH": "DETACH",
    "TRANSACTION": "transaction control (each step already runs in one transaction)",
    "LOAD": "INSTALL/LOAD of extensions",
    "EXPORT": "EXPORT DATABASE (writes files)",
    "PRAGMA": "PRAGMA/IMPORT DATABASE",
}
#: keywords after which a (qualified) name is a table, view, macro or sequence
_NAME_AFTER = {
    "FROM",
    "JOIN",
    "INTO",
    "UPDATE",
    "TABLE",
    "VIEW",
    "USING",
    "EXISTS",
    "MACRO",
    "FUNCTION",
    "SEQUENCE",
    "TRUNCATE",
    "COPY",
    *("PIVOT", "UNPIVOT", "PIVOT_WIDER", "PIVOT_LONGER", "SUMMARIZE", "DESCRIBE", "SHOW"),  # read the name after
}
#: keywords after which a name is read, whatever statement they are in (a CREATE ... AS PIVOT x reads x)
_READ_AFTER = frozenset({"FROM", "JOIN", "USING", "PIVOT", "UNPIVOT", "PIVOT_WIDER", "PIVOT_LONGER", "SUMMARIZE"})
_READ_AFTER |= {"DESCRIBE", "SHOW"}
#: keywords that end a FROM list at their depth
_FROM_END = {
    "WHERE",
    "GROUP",
    "ORDER",
    "HAVING",
    "QUALIFY",
    "LIMIT",
    "WINDOW",
    "UNION",
    "EXCEPT",
    "INTERSECT",
    "ON",
    "USING",
    "SELECT",
    "SET",
    "RETURNING",
    "VALUES",
    "TO",
}
#: table functions that take a table name or a query as a string, so the check could not see what they read
_HIDDEN_NAMES = {"query", "query_table"}
#: functions whose argument syntax uses FROM for something that is not a table
_FROM_FUNCTIONS = {"EXTRACT", "SUBSTRING", "TRIM", "OVERLAY", "POSITION", "SUBSTR"}


class AccessDenied(Exception):
    """A statement of a step is outside what its pipeline may do; the message says which rule."""


@dataclasses.dataclass(frozen=True, slots=True)
class StatementRefs:
    """What one statement touches: ``schema.table`` names (lower case) written and read, schemas created or
    dropped, whether it writes a file, and, when refused outright, why."""

    writes: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    schemas: tuple[str, ...] = ()
    writes_file: bool = False
    refused: str | None = None


def _tokens(sql: str) -> list[tuple[str, str]]:
    """(text, kind) of every token except comments; kind is keyword, identifier, operator, string, ..."""
    raw = duckdb.tokenize(sql)
    out = []
    for i, (pos, typ) in enumerate(raw):
        end = raw[i + 1][0] if i + 1 < len(raw) else len(sql)
        kind = str(typ).rsplit(".", 1)[-1]
        if kind == "comment":
            continue
        out.append((sql[pos:end].strip(), kind))
    return out


def _name(text: str) -> str:
    return text[1:-1].replace('""', '"').lower() if text.startswith('"') else text.lower()


def scan_statement(sql: str) -> StatementRefs:
    """Read one statement (as ``duckdb.extract_statements`` splits them) with DuckDB's tokenizer."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error:
        return StatementRefs()  # DuckDB itself reports the syntax error when the statement runs
    if len(statements) != 1:
        refs = [scan_statement(s.query) for s in statements]
        return StatementRefs(
            writes=tuple(w for r in refs for w in r.writes),
            reads=tuple(x for r in refs for x in r.reads),
            schemas=tuple(s for r in refs for s in r.schemas),
            writes_file=any(r.writes_file for r in refs),
            refused=next((r.refused for r in refs if r.refused), None),
        )
    stype = statements[0].type.name
    toks = _tokens(statements[0].query)
    for (text, kind), nxt in itertools.pairwise(toks):
        if kind == "identifier" and _name(text) in _HIDDEN_NAMES and nxt[0].startswith("("):
            return StatementRefs(refused=f"{_name(text)}() (it hides the tables it reads)")
    words = [t.upper() if k == "keyword" else "" for t, k in toks]
    lead = words[0] if words else ""
    if stype in _REFUSED_TYPES:
        return StatementRefs(refused=_REFUSED_TYPES[stype])
    if stype == "SET" and not (lead in ("SET", "RESET") and len(words) > 1 and words[1] == "VARIABLE"):
        return StatementRefs(refused="USE, SET and RESET of settings (only SET VARIABLE)")

    writes: list[str] = []
    reads: list[str] = []
    copy_target: str | None = None
    temp = any(w in ("TEMP", "TEMPORARY") for w in words[:4])
    write_next = False  # the name being expected is written (INSERT INTO x, DELETE FROM x, CREATE TABLE x, ...)
    depth = 0
    in_from: dict[int, bool] = {}
    fn_at: dict[int, str] = {}
    writes_file = False
    copy_from = False
    schema_ddl: list[str] = []
    expect_name = False
    i = 0
    while i < len(toks):
        text, kind = toks[i]
        word = words[i]
        if kind == "operator":
            for ch in text:
                if ch == "(":
                    prev = words[i - 1] or toks[i - 1][0].upper() if i else ""
                    depth += 1
                    fn_at[depth] = prev
                    in_from[depth] = False
                elif ch == ")":
                    in_from.pop(depth, None)
                    fn_at.pop(depth, None)
                    depth = max(0, depth - 1)
            expect_name = text == "," and bool(in_from.get(depth))
            i += 1
            continue
        if lead == "COPY" and depth == 0 and word in ("TO", "FROM") and not writes_file and not copy_from:
            writes_file = word == "TO"
            copy_from = word == "FROM"
        # a (possibly dotted) name: identifier, or keyword used as a name before a dot
        if kind == "identifier" or (kind == "keyword" and i + 1 < len(toks) and toks[i + 1][0] == "."):
            parts = [_name(text)]
            while i + 2 < len(toks) and toks[i + 1][0] == "." and toks[i + 2][1] in ("identifier", "keyword"):
                parts.append(_name(toks[i + 2][0]))
                i += 2
            is_call = i + 1 < len(toks) and toks[i + 1][0].startswith("(")
            if expect_name and len(parts) >= 2 and not (is_call and parts[0] in SYSTEM_SCHEMAS):
                name = ".".join(parts[-2:])
                if lead == "COPY" and copy_target is None and depth == 0:
                    copy_target = name  # written by COPY x FROM, read by COPY x TO
                elif write_next and not temp:
                    writes.append(name)
                else:
                    reads.append(name)
            elif expect_name and len(parts) == 1 and "SCHEMA" in words[: i + 1] and not (writes or reads):
                schema_ddl.append(parts[0])
            expect_name = write_next = False
            i += 1
            continue
        if word in _NAME_AFTER:
            prev = words[i - 1] if i else ""
            not_table = word == "FROM" and (
                fn_at.get(depth) in _FROM_FUNCTIONS or (prev == "DISTINCT" and i >= 2 and words[i - 2] in ("IS", "NOT"))
            )
            expect_name = not not_table
            write_next = (
                word in ("INTO", "UPDATE", "TRUNCATE")
                or (word == "FROM" and prev == "DELETE")
                or (word == "TABLE" and prev == "TRUNCATE")
                or (lead in ("CREATE", "DROP", "ALTER") and not writes and word not in _READ_AFTER)
            )
            if word in ("FROM", "JOIN") and not not_table:
                in_from[depth] = True
        elif word == "SCHEMA" or (word in ("IF", "NOT") and expect_name):
            expect_name = True
        else:
            expect_name = write_next = False
        if word in _FROM_END:
            in_from[depth] = False
        i += 1

    if copy_target is not None:
        (writes if copy_from else reads).append(copy_target)
    is_schema_ddl = lead in ("CREATE", "DROP", "ALTER") and "SCHEMA" in words[:6] and not (writes or reads)
    schema_ddl = schema_ddl[:1] if is_schema_ddl else []
    if stype == "EXPORT":
        writes_file = True
    return StatementRefs(writes=tuple(writes), reads=tuple(reads), schemas=tuple(schema_ddl), writes_file=writes_file)


@dataclasses.dataclass(frozen=True, slots=True)
class Access:
    """The schemas a pipeline owns (may create, write and read) and the inputs it may read.

    ``inputs`` holds schema names or ``schema.table`` names of other pipelines, as declared.
    """

    pipeline: str
    owned: frozenset[str]
    inputs: frozenset[str] = frozenset()

    def may_read(self, table: str) -> bool:
        """True for a ``schema.table`` this pipeline owns or declared as input."""
        schema = table.split(".", 1)[0]
        return schema in self.owned or schema in SYSTEM_SCHEMAS or schema in self.inputs or table in self.inputs

    def check(self, sql: str) -> None:
        """Raise AccessDenied when the statement ``sql`` is outside this pipeline's sandbox."""
        refs = scan_statement(sql)
        first = next((ln.strip() for ln in sql.strip().splitlines() if ln.strip()), "")[:120]
        if refs.refused:
            raise AccessDenied(f"{refs.refused} is not allowed in a step: {first}")
        if refs.writes_file:
            raise AccessDenied(f"a step may not write files (landing and reference are read-only): {first}")
        for schema in refs.schemas:
            if schema not in self.owned:
                raise AccessDenied(
                    f"schema {schema!r} is not one of pipeline {self.pipeline!r}'s schemas "
                    f"({', '.join(sorted(self.owned))}): {first}"
                )
        for table in refs.writes:
            if table.split(".", 1)[0] not in self.owned | _SCRATCH:
                raise AccessDenied(
                    f"pipeline {self.pipeline!r} may not write {table} (its schemas: "
                    f"{', '.join(sorted(self.owned))}): {first}"
                )
        for table in refs.reads:
            if not self.may_read(table):
                raise AccessDenied(
                    f"pipeline {self.pipeline!r} may not read {table}: declare it (or its schema) under inputs: {first}"
                )


class GuardedCursor:
    """A DuckDB cursor whose execute/sql/query first check each statement against the pipeline's Access.

    Python steps get this instead of the bare cursor, so the shipped steps (and any step written with
    the cursor) stay inside their pipeline's schemas and write no files.
    """

    def __init__(self, cursor: Any, access: Access, checkpoint: Callable[[], None] = lambda: None) -> None:
        """``checkpoint`` runs before every statement (the worker's cancel check; it raises to stop the step)."""
        self._cursor = cursor
        self._access = access
        self._checkpoint = checkpoint

    def _check(self, sql: str) -> None:
        self._checkpoint()
        for stmt in duckdb.extract_statements(sql):
            self._access.check(stmt.query)

    def execute(self, query: str, parameters: Any = None) -> GuardedCursor:
        """Check, then run ``query`` (returns self, so ``.fetchall()`` chains as on a cursor)."""
        self._check(query)
        self._cursor.execute(query, parameters)
        return self

    def executemany(self, query: str, parameters: Any = None) -> GuardedCursor:
        """Check, then run ``query`` once per parameter set."""
        self._check(query)
        self._cursor.executemany(query, parameters)
        return self

    def sql(self, query: str, **kwargs: Any) -> Any:
        """Check, then return DuckDB's relation for ``query``."""
        self._check(query)
        return self._cursor.sql(query, **kwargs)

    query = sql

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)
