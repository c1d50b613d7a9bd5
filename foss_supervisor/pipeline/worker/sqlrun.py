"""The statements of a SQL text run one by one, each error told in the author's terms: the one loop of the
worker's SQL steps and setup (steps.py) and of ``pipeline validate`` (validate.py).

Why one loop: where a statement sits in its file (its first line, DuckDB's ``LINE n`` counted from there) is
computed here and nowhere else, and :func:`origins.sql_failure` words the error, so a run and a validate of
the same mistake name the same ``file:line`` (a SQL file's, or the YAML's for generated SQL).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import duckdb

from foss_supervisor.pipeline.origins import error_line, sql_failure, statement_lines
from foss_supervisor.pipeline.worker.sandbox import Access, AccessDenied

__all__ = ["SqlFailed", "run_statements"]


class SqlFailed(Exception):
    """A statement failed: ``where`` (``FILE:LINE``), ``text`` (``WHO: message``), ``cause`` (the DuckDB error
    or AccessDenied, whose kind the caller may still need: transient, cancelled, no input)."""

    def __init__(self, where: str, text: str, cause: Exception) -> None:
        super().__init__(f"{where}: {text}")
        self.where, self.text, self.cause = where, text, cause


def run_statements(
    cursor: Any,
    sql: str,
    source: Mapping[str, Any],
    access: Access,
    checkpoint: Callable[[], None] = lambda: None,
) -> tuple[int, list[Any], list[tuple[Any, ...]]]:
    """Run each statement of ``sql`` (``source`` as origins.sql_failure takes it), ``checkpoint()`` and
    ``access`` checked before each; returns (line of the last statement's first code, its description, its
    rows; ``(1, [], [])`` for a text with no statement). Raises SqlFailed; what ``checkpoint`` raises passes."""
    try:
        statements = duckdb.extract_statements(sql) if sql.strip() else []
    except duckdb.Error as exc:  # a syntax error: DuckDB's LINE n counts from the text's first line
        raise SqlFailed(*sql_failure(sql, error_line(str(exc), 1, 1), str(exc), source), exc) from None
    offset, base, code_line = 0, 1, 1
    for stmt in statements:
        checkpoint()
        base, code_line, offset = statement_lines(sql, stmt.query, offset)
        try:
            access.check(stmt.query)
            cursor.execute(stmt.query)
        except (AccessDenied, duckdb.Error) as exc:
            raise SqlFailed(*sql_failure(sql, error_line(str(exc), base, code_line), str(exc), source), exc) from None
    if not statements:
        return code_line, [], []
    try:  # only the last statement's rows are read (its metrics): an earlier SELECT's are never fetched
        description = list(cursor.description or [])
        return code_line, description, cursor.fetchall() if description else []
    except duckdb.Error as exc:
        raise SqlFailed(*sql_failure(sql, error_line(str(exc), base, code_line), str(exc), source), exc) from None
