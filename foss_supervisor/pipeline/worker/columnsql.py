"""The sqlglot side of column lineage (:mod:`foss_supervisor.pipeline.worker.columns`): table names, types, qualifying a
query, resolving a column to its source. Worker only (it imports DuckDB for type names)."""

from __future__ import annotations

from typing import Any

import duckdb
from sqlglot import exp
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope

__all__ = [
    "TEMP",
    "canonical_type",
    "leaves",
    "qualified",
    "reading",
    "source_of",
    "table_name",
    "type_of",
    "type_sql",
]

TEMP = "__temp"  # the schema temporary tables are read under (a name no pipeline may use: it is not lower-case data)


def table_name(table: exp.Table, temps: set[str]) -> str:
    """``schema.table``, a temporary table as ``__temp.name``; "" for a table function (a file read)."""
    if not isinstance(table.this, exp.Identifier):
        return ""
    db = table.db.lower()
    name = table.name.lower()
    if not db:
        return f"{TEMP}.{name}" if name in temps else name
    return f"{db}.{name}"


def canonical_type(written: str) -> str:
    """DuckDB's own name of a type (``TEXT`` -> ``VARCHAR``, ``DECIMAL(18, 2)`` -> ``DECIMAL(18,2)``); the text
    upper-cased when DuckDB does not know it."""
    try:
        return str(duckdb.sqltype(written))
    except (duckdb.Error, ValueError, TypeError):
        return written.upper()


def type_sql(node: exp.DataType | None) -> str | None:
    return canonical_type(node.sql("duckdb")) if node is not None else None


def type_of(node: exp.Expr) -> str | None:
    inner = node.this if isinstance(node, exp.Alias) else node
    if isinstance(inner, exp.Cast | exp.TryCast):
        return type_sql(inner.to)
    return None


#: how each try qualifies a query: all of it, then without reading output aliases inside the query (a name that
#: is both an alias and a column of a file read), then tables only (columns resolved here, or unknown)
_TRIES = ((True, True), (False, True), (False, False))  # (expand_alias_refs, qualify_columns and expand_stars)


def qualified(query: exp.Expr, schema: dict[str, object]) -> exp.Expr:
    """``query`` with its tables and columns qualified as far as sqlglot can (see :data:`_TRIES`)."""
    for i, (alias_refs, columns) in enumerate(_TRIES):
        try:
            return qualify(
                query.copy(),
                schema=schema,
                dialect="duckdb",
                expand_alias_refs=alias_refs,
                qualify_columns=columns,
                expand_stars=columns,
                validate_qualify_columns=False,
                identify=False,
                quote_identifiers=False,
            )
        except OptimizeError:
            if i == len(_TRIES) - 1:
                raise
    raise AssertionError("unreachable")


def source_of(scope: Scope, column: exp.Column) -> Any:
    """What a column is read from in its scope: a table, a subquery's or CTE's scope, or None. A column without
    a table name in a query of one source is that source's."""
    if not column.table and len(scope.sources) == 1:
        return next(iter(scope.sources.values()))
    return scope.sources.get(column.table)


def leaves(scope: Scope) -> list[Scope]:
    """The SELECT scopes whose output a query's columns are: a UNION's every branch, an EXCEPT's or
    INTERSECT's first (its rows come from there)."""
    if not isinstance(scope.expression, exp.SetOperation):
        return [scope]
    branches = list(scope.set_operation_scopes)
    if isinstance(scope.expression, exp.Except | exp.Intersect):
        branches = branches[:1]
    return [leaf for branch in branches for leaf in leaves(branch)]


def reading(statement: exp.Delete | exp.Update) -> exp.Select:
    """A SELECT that reads what a DELETE or UPDATE reads: its target (the SET columns too) and other sources."""
    target = statement.this.copy()
    others: list[exp.Expr] = []
    if isinstance(statement, exp.Update):
        name = target.alias_or_name
        sets = [eq for eq in statement.expressions if isinstance(eq, exp.EQ)]
        projections = [exp.column(eq.this.name, table=name) for eq in sets if isinstance(eq.this, exp.Column)]
        projections += [eq.expression.copy() for eq in sets]
        source = statement.args.get("from_") or statement.args.get("from")
        others = [source.this.copy()] if isinstance(source, exp.From) else []
    else:
        projections = []
        using = statement.args.get("using")
        others = [t.copy() for t in using] if isinstance(using, list) else []
    where = statement.args.get("where")
    return exp.Select(
        expressions=projections or [exp.Literal.number(1)],
        from_=exp.From(this=target),
        joins=[exp.Join(this=other) for other in others],
        where=where.copy() if where is not None else None,
    )
