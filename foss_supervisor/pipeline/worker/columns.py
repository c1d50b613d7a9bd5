"""Worker side of column-level lineage: which columns each step writes, where each comes from, what it reads.

Why sqlglot and not DuckDB's own parser: DuckDB serializes only SELECT statements to JSON
(``json_serialize_sql``), and most steps are ``INSERT ... SELECT`` or ``CREATE ... AS``; sqlglot (pure
Python, no native code) parses the DuckDB dialect's whole statements, expands ``*`` and ``* EXCLUDE (...)``
against the columns it knows, and resolves each column to its table through aliases, subqueries and CTEs.

The columns known are learnt in script order, as a run would create them: ``CREATE TABLE`` with column
definitions (their declared types), ``CREATE ... AS SELECT`` (the SELECT's output), ``ALTER TABLE ... ADD
COLUMN``; a temporary table (``CREATE TEMP TABLE _x AS ...``) carries its own columns' sources, so what a
step inserts from it is traced back to the warehouse tables it came from. Scripts are read setups first,
then steps in their pipeline's order (the caller's order).

What is derived, per script (``"setup:P"`` or ``"step:P/S"``)::

    {"writes": {"schema.table": {"columns": [{"name", "type", "from": ["schema.table.column", ...],
                                               "unknown": ""}], "unknown": ""}},
     "reads": {"schema.table": {"columns": ["column", ...], "unknown": ""}},
     "unknown": ["why a statement could not be read", ...]}

``type`` is the declared type of an INSERT's target column or of a top-level ``CAST``; for a table a
``CREATE ... AS`` makes from warehouse tables only, the types DuckDB binds for its query against the warehouse
as it is (``DESCRIBE``, in a rolled-back transaction, when the worker passes ``describe``; no row is read);
a column copied as is keeps its source's known type; else None (not derivable here).

``unknown`` is never a guess: a table's ``unknown`` says its column list is incomplete (``*`` over a table
whose columns are not known, ``COLUMNS(...)`` over one), a column's that its sources are (a function of a
table whose columns are not known), a script's which statements sqlglot could not read. Python steps have
no SQL: they are not here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.scope import Scope, build_scope

from foss_supervisor.pipeline.worker.columnsql import (
    TEMP,
    leaves,
    qualified,
    reading,
    source_of,
    table_name,
    type_of,
    type_sql,
)

__all__ = ["Describe", "column_lineage"]

_Col = dict[str, Any]  # {"name", "type", "from", "unknown"}
_UNNAMED = re.compile(r"_col_\d+")  # how sqlglot names an output without AS
_NO_NAME = "_no_name"  # set (while reading) on such an output


#: ``DESCRIBE`` of a query against the warehouse: its columns' (name, DuckDB type), or None when it cannot be
Describe = Callable[[str], "list[tuple[str, str]] | None"]


class _Catalog:
    """The columns known so far: ``schema.table`` (temporary tables under :data:`TEMP`) -> name -> column."""

    def __init__(self, describe: Describe | None = None) -> None:
        self.describe = describe
        self.tables: dict[str, dict[str, _Col]] = {}
        self.partial: dict[str, str] = {}  # table -> why its column list is incomplete

    def schema(self) -> dict[str, object]:
        out: dict[str, Any] = {}
        for table, cols in self.tables.items():
            if table in self.partial:
                continue  # a star over it stays a star: never expanded to a part of its columns
            db, _, name = table.partition(".")
            out.setdefault(db, {})[name] = {c: (v["type"] or "UNKNOWN") for c, v in cols.items()}
        return out

    def set(self, table: str, cols: list[_Col], partial: str) -> None:
        self.tables[table] = {c["name"]: c for c in cols}
        if partial:
            self.partial[table] = partial
        else:
            self.partial.pop(table, None)


class _Reader:
    def __init__(self, catalog: _Catalog) -> None:
        self.catalog = catalog
        self.writes: dict[str, dict[str, Any]] = {}
        self.reads: dict[str, dict[str, Any]] = {}
        self.unknown: list[str] = []

    @property
    def temps(self) -> set[str]:
        return {t.removeprefix(f"{TEMP}.") for t in self.catalog.tables if t.startswith(f"{TEMP}.")}

    def read(self, table: str, column: str | None, why: str = "") -> None:
        if table.startswith(f"{TEMP}.") or "." not in table:
            return  # scratch space: what it holds was read when it was filled
        entry = self.reads.setdefault(table, {"columns": [], "unknown": ""})
        if column is not None and column not in entry["columns"]:
            entry["columns"].append(column)
        if why and not entry["unknown"]:
            entry["unknown"] = why

    # ------------------------------------------------------------------ one SELECT's output columns

    def select(self, query: exp.Expr) -> tuple[list[_Col], str]:
        """The output columns of a query (each with its sources) and why the list is incomplete ("")."""
        temps = self.temps
        query = query.copy()
        for table in query.find_all(exp.Table):
            if not table.db and table.name.lower() in temps:
                table.set("db", exp.to_identifier(TEMP))
        done = qualified(query, self.catalog.schema())
        root = build_scope(done)
        if root is None:
            return [], "no query"
        for scope in root.traverse():
            self._scope_reads(scope)
        return self._outputs(root)

    def _scope_reads(self, scope: Scope) -> None:
        for column in scope.columns:
            source = source_of(scope, column)
            if isinstance(source, exp.Table):
                self.read(table_name(source, set()), column.name.lower())
        for star in scope.expression.find_all(exp.Star, exp.Columns):
            parent = star.parent
            if isinstance(star, exp.Star) and not isinstance(parent, exp.Select | exp.Column):
                continue  # count(*) counts rows: it reads no column
            alias = parent.table if isinstance(parent, exp.Column) else ""
            sources = [scope.sources.get(alias)] if alias else list(scope.sources.values())
            for source in sources:
                if isinstance(source, exp.Table):
                    self.read(table_name(source, set()), None, "all its columns (*): its columns are not known")

    def _outputs(self, scope: Scope) -> tuple[list[_Col], str]:
        node = scope.expression
        if isinstance(node, exp.SetOperation):  # a union's columns are its first branch's, sources from all
            branches = leaves(scope)
            first, why = self._outputs(branches[0])
            for other in branches[1:]:
                more, why_more = self._outputs(other)
                why = why or why_more
                for col, extra in zip(first, more, strict=False):
                    col["from"] = sorted(set(col["from"]) | set(extra["from"]))
            return first, why
        if not isinstance(node, exp.Select):
            return [], f"a {node.key} is not a SELECT"
        out: list[_Col] = []
        why = ""
        for projection in node.expressions:
            star = isinstance(projection, exp.Star) or isinstance(projection.this, exp.Star)
            if star or projection.find(exp.Columns):  # left as it was: its table's columns are not known
                why = "a * or COLUMNS(...) over a table whose columns are not known"
                continue
            name = projection.alias_or_name.lower()
            sources, unknown = self._sources(scope, projection)
            ctype = type_of(projection)
            if ctype is None and isinstance(projection, exp.Alias | exp.Column):
                ctype = self._copied_type(scope, projection)
            col = {"name": name, "type": ctype, "from": sorted(sources), "unknown": unknown}
            if _UNNAMED.fullmatch(name):  # sqlglot's name for an expression without AS; DuckDB names it otherwise
                col[_NO_NAME] = True
            out.append(col)
        return out, why

    def _copied_type(self, scope: Scope, projection: exp.Expr) -> str | None:
        inner = projection.this if isinstance(projection, exp.Alias) else projection
        if not isinstance(inner, exp.Column):
            return None
        source = source_of(scope, inner)
        if isinstance(source, exp.Table):
            col = self.catalog.tables.get(table_name(source, set()), {}).get(inner.name.lower())
            return col["type"] if col else None
        if isinstance(source, Scope):
            for p in source.expression.selects if isinstance(source.expression, exp.Select) else ():
                if p.alias_or_name.lower() == inner.name.lower():
                    return type_of(p) or self._copied_type(source, p)
        return None

    def _sources(self, scope: Scope, node: exp.Expr) -> tuple[set[str], str]:
        found: set[str] = set()
        unknown = ""
        for column in node.find_all(exp.Column):
            source = source_of(scope, column)
            name = column.name.lower()
            if isinstance(source, exp.Table):
                table = table_name(source, set())
                if not table:
                    continue  # a file read (read_csv(...)): no table of the warehouse
                if table.startswith(f"{TEMP}."):
                    col = self.catalog.tables.get(table, {}).get(name)
                    if col is None:
                        unknown = unknown or f"{table.removeprefix(TEMP + '.')}.{name} is not known"
                    else:
                        found |= set(col["from"])
                        unknown = unknown or col["unknown"]
                else:
                    found.add(f"{table}.{name}")
            elif isinstance(source, Scope):  # a subquery or CTE: its column of that name, in each branch
                for leaf in leaves(source):
                    selects = leaf.expression.selects if isinstance(leaf.expression, exp.Select) else []
                    match = [p for p in selects if p.alias_or_name.lower() == name]
                    if not match:
                        unknown = unknown or f"{column.sql('duckdb')} is not known"
                    for p in match:
                        more, why = self._sources(leaf, p)
                        found |= more
                        unknown = unknown or why
            elif column.table or len(scope.sources) != 0:
                unknown = unknown or f"{column.sql('duckdb')} is not resolved to a table"
        return found, unknown

    # ------------------------------------------------------------------ statements

    def statement(self, statement: exp.Expr) -> None:
        temps = self.temps
        if isinstance(statement, exp.Create) and str(statement.args.get("kind", "")).upper() in ("TABLE", "VIEW"):
            self._create(statement, temps)
        elif isinstance(statement, exp.Insert) and isinstance(statement.this, exp.Table | exp.Schema):
            self._insert(statement, temps)
        elif isinstance(statement, exp.Alter):
            self._alter(statement, temps)
        elif isinstance(statement, exp.Delete | exp.Update) and isinstance(statement.this, exp.Table):
            self.select(reading(statement))  # the columns its WHERE, USING, FROM and SET use
        else:
            for query in statement.find_all(exp.Select):
                if not isinstance(query.parent, exp.Select | exp.SetOperation | exp.Subquery):
                    self.select(query)

    def _create(self, statement: exp.Create, temps: set[str]) -> None:
        target = statement.this
        temporary = statement.find(exp.TemporaryProperty) is not None
        schema = target if isinstance(target, exp.Schema) else None
        table_node = schema.this if schema is not None else target
        if not isinstance(table_node, exp.Table):
            return
        table = table_name(table_node, temps | ({table_node.name.lower()} if temporary else set()))
        if temporary and not table.startswith(f"{TEMP}."):
            table = f"{TEMP}.{table_node.name.lower()}"
        if statement.args.get("exists") and table in self.catalog.tables and table not in self.catalog.partial:
            if statement.expression is not None:  # IF NOT EXISTS ... AS: reads, but the table stays as it was
                self.select(statement.expression)
            self._wrote(table, list(self.catalog.tables[table].values()), "")
            return
        if statement.expression is not None:
            cols, why = self.select(statement.expression)
            if not temporary and not why:
                self._described(statement.expression, cols)
            cols, why = self._named(cols, why)
        elif schema is not None:
            cols = [
                {"name": d.name.lower(), "type": type_sql(d.kind), "from": [], "unknown": ""}
                for d in schema.expressions
                if isinstance(d, exp.ColumnDef)
            ]
            why = ""
        else:
            return
        self.catalog.set(table, cols, why)
        self._wrote(table, cols, why)

    def _described(self, query: exp.Expr, cols: list[_Col]) -> None:
        """The types DuckDB binds for a CREATE ... AS query over warehouse tables only (no temporary table, no
        file read), set on ``cols`` when its columns are the ones read here, by name and position (and the name
        DuckDB gives an expression without ``AS``)."""
        ctes = {c.alias_or_name.lower() for c in query.find_all(exp.CTE)}
        tables = list(query.find_all(exp.Table))
        if self.catalog.describe is None or not all(
            isinstance(t.this, exp.Identifier) and (t.db or t.name.lower() in ctes) for t in tables
        ):
            return
        found = self.catalog.describe(query.sql(dialect="duckdb"))
        if found is None or len(found) != len(cols):
            return
        if all(c.get(_NO_NAME) or c["name"] == n for c, (n, _) in zip(cols, found, strict=True)):
            for col, (name, ctype) in zip(cols, found, strict=True):  # DuckDB names an expression without AS
                col.update(name=name, type=ctype)
                col.pop(_NO_NAME, None)

    @staticmethod
    def _named(cols: list[_Col], why: str) -> tuple[list[_Col], str]:
        """The columns whose names are known (an expression without ``AS`` is named by DuckDB from its text)."""
        named = [c for c in cols if not c.get(_NO_NAME)]
        if len(named) < len(cols):
            why = why or "an expression without a name (AS ...) is not listed: DuckDB names it from its text"
        return named, why

    def _insert(self, statement: exp.Insert, temps: set[str]) -> None:
        target = statement.this
        named = [c.name.lower() for c in target.expressions] if isinstance(target, exp.Schema) else []
        table_node = target.this if isinstance(target, exp.Schema) else target
        table = table_name(table_node, temps)
        query = statement.expression
        if query is None:
            return
        cols, why = self.select(query)
        known = self.catalog.tables.get(table)
        if named:
            cols = [dict(c, name=n) for c, n in zip(cols, named, strict=False)]
            cols = [{k: v for k, v in c.items() if k != _NO_NAME} for c in cols]
        elif statement.args.get("by_name"):
            cols, why = self._named(cols, why)
        elif known is not None and table not in self.catalog.partial:  # by position onto the table's columns
            if why:  # which of the SELECT's columns lands where is not known
                cols = [{"name": c["name"], "type": c["type"], "from": [], "unknown": why} for c in known.values()]
                why = ""
            else:
                cols = [
                    {k: v for k, v in c.items() if k != _NO_NAME} | {"name": n}
                    for c, n in zip(cols, known, strict=False)
                ]
        else:  # by position into a table whose columns are not known: which column is which is not known
            cols, why = [], "inserted by position into a table whose columns are not known"
        for col in cols:  # an insert does not change the table's types: its declared ones stand
            declared = (known or {}).get(col["name"])
            if declared is not None and declared["type"]:
                col["type"] = declared["type"]
        if known is None:
            self.catalog.set(table, cols, why)
        self._wrote(table, cols, why)

    def _alter(self, statement: exp.Alter, temps: set[str]) -> None:
        if not isinstance(statement.this, exp.Table):
            return
        table = table_name(statement.this, temps)
        for action in statement.args.get("actions") or ():
            if isinstance(action, exp.ColumnDef) and table in self.catalog.tables:
                ctype = type_sql(action.kind)
                col: _Col = {"name": action.name.lower(), "type": ctype, "from": [], "unknown": ""}
                self.catalog.tables[table][action.name.lower()] = col
                self._wrote(table, [col], "")

    def _wrote(self, table: str, cols: list[_Col], why: str) -> None:
        if table.startswith(f"{TEMP}.") or "." not in table:
            return
        entry = self.writes.setdefault(table, {"columns": [], "unknown": ""})
        by_name = {c["name"]: c for c in entry["columns"]}
        for col in cols:
            if col["name"] in by_name:
                known = by_name[col["name"]]
                known["from"] = sorted(set(known["from"]) | set(col["from"]))
                known["type"] = known["type"] or col["type"]
                known["unknown"] = known["unknown"] or col["unknown"]
            else:
                by_name[col["name"]] = dict(col)
                entry["columns"].append(by_name[col["name"]])
        entry["unknown"] = entry["unknown"] or why


def _script(sql: str, catalog: _Catalog) -> dict[str, Any]:
    """One script's column lineage; each statement is split by DuckDB's own splitter, then read by sqlglot."""
    reader = _Reader(catalog)
    try:
        texts = [s.query for s in duckdb.extract_statements(sql)]
    except duckdb.Error as exc:
        return {"writes": {}, "reads": {}, "unknown": [f"not split by DuckDB: {str(exc).splitlines()[0][:300]}"]}
    for text in texts:
        try:
            statement = sqlglot.parse_one(text, dialect="duckdb")
            reader.statement(statement)
        except (SqlglotError, RecursionError, ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
            # whatever a statement does to the reader, that statement is unknown: never the whole request
            first = " ".join(text.split())[:80]
            why = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
            reader.unknown.append(f"not read by sqlglot: {first}: {why}")
    for temp in [t for t in catalog.tables if t.startswith(f"{TEMP}.")]:  # a step's scratch ends with it
        catalog.tables.pop(temp)
        catalog.partial.pop(temp, None)
    return {"writes": reader.writes, "reads": reader.reads, "unknown": reader.unknown}


def column_lineage(scripts: Mapping[str, str], describe: Describe | None = None) -> dict[str, dict[str, Any]]:
    """Each script's column lineage (the module's shape), the scripts read setups first, then in the order
    given. ``describe``: the warehouse's types of a query (the worker's, in a rolled-back transaction), for
    the tables a ``CREATE ... AS`` makes from warehouse tables. Never raises for SQL it cannot read: that
    script's ``unknown`` says why."""
    catalog = _Catalog(describe)
    order = [k for k in scripts if k.startswith("setup:")] + [k for k in scripts if not k.startswith("setup:")]
    return {key: _script(scripts[key], catalog) for key in order}
