"""Where a line of generated SQL comes from, so its errors speak of the YAML the author wrote.

A ``kind: quality`` block is compiled to SQL (quality.py). Each piece of that SQL that stems from one
declaration carries a marker comment at the end of its line, written by :func:`mark` with the declaration's
dotted key (``steps[2].params.columns.dep_delay``) and what it is (``rule dep_delay:accepted_range``); the
block's first line carries the block's own. Once the file is loaded, :func:`place` rewrites each marker with
the YAML file and line of its key and the step's name (``flights.yaml:41 steps.check.params.columns.dep_delay``).
When DuckDB refuses a statement of that SQL, :func:`explain` finds the line it points at (its ``LINE n``, or
the statement's first line) and returns the marker of that line, else the block's: the error then names the
file, the line, the block and the check instead of ``<sql>:10``.

A SQL file the author wrote has no markers: its error names that file and the line of the failing statement
(DuckDB's ``LINE n`` counted from the statement's first line in the file, else the statement's first line of
code), then who runs it and where the YAML declares it (``steps.enrich (orders.yaml:99)``, ``setup
(orders.yaml:14)``). :func:`sql_failure` is the one function that words an error of SQL, generated or not:
the worker's runs (worker/steps.py) and ``pipeline validate`` (worker/validate.py) both go through it
(worker/sqlrun.py runs the statements).

Also here, because the loader needs it: :func:`located`, a config error of a pipeline file with its line;
:func:`named_lines` and :func:`yaml_at`, the YAML line of a dotted key once the file is loaded.

A quality rule is an item of its column's list, so its key has an index (``columns.dep_delay[1]``): that key
finds the item's own YAML line, then :func:`author_key` spells it as the author wrote the rule
(``columns.dep_delay.accepted_range``) for every message: a config error (:func:`located`), a SQL error of the
compiled block (:func:`place`) and a rule's threshold (spec.load_pipeline).
Stdlib only: the daemon, the worker and ``pipeline validate`` use it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from foss_supervisor.config.schema import STEP_NAME
from foss_supervisor.pipeline.errors import PipelineConfigError

__all__ = [
    "author_key",
    "error_line",
    "explain",
    "located",
    "mark",
    "named_lines",
    "place",
    "sql_failure",
    "statement_lines",
    "yaml_at",
]

_MARK = "-- @origin "
_UNSAFE = re.compile(r"[|\r\n]")
_MARKED = re.compile(re.escape(_MARK) + r"(.+) \| ([^|\n]*)$")  # key, or "file:LINE key" once placed


def mark(key: str, what: str) -> str:
    """The marker to end a line of generated SQL with: ``key`` (dotted, as the loader spells it before
    :func:`place`) and ``what`` (``rule x:not_null``, ``test name``; no line break)."""
    return f"  {_MARK}{key} | {_UNSAFE.sub(' ', what)}"


def _key_line(key: str, lines: Mapping[str, int]) -> int | None:
    probe = key
    while probe:
        if probe in lines:
            return lines[probe]
        probe = probe.rpartition(".")[0] if "." in probe else probe.rpartition("[")[0]
    return None


_RULE_ITEM = re.compile(r"^steps(?:\[(\d+)\]|\.([A-Za-z_][\w-]*))\.params\.columns\.([^.\[\]]+)\[(\d+)\](\.[^.\[\]]+)?")


def _rule_name(rule: Any) -> str | None:
    if isinstance(rule, str):
        return rule
    return str(next(iter(rule))) if isinstance(rule, dict) and len(rule) == 1 else None


def author_key(key: str, raw: Mapping[str, Any]) -> str:
    """``key`` with a quality rule's index spelled as the rule the author wrote (``raw``: the pipeline YAML):
    ``steps.check.params.columns.dep_delay[1]`` (or ``[1].accepted_range``) is
    ``steps.check.params.columns.dep_delay.accepted_range``; any other key, or a rule item that is not
    ``name`` or ``{name: argument}``, as it is."""
    m = _RULE_ITEM.match(key)
    found = raw.get("steps")
    if m is None or not isinstance(found, list):
        return key
    names = [s.get("name") if isinstance(s, dict) else None for s in found]
    i = int(m[1]) if m[1] is not None else names.index(m[2]) if m[2] in names else len(found)
    step = found[i] if i < len(found) else None
    params = step.get("params") if isinstance(step, dict) else None
    columns = params.get("columns") if isinstance(params, dict) else None
    rules = columns.get(m[3]) if isinstance(columns, dict) else None
    rule = rules[int(m[4])] if isinstance(rules, list) and int(m[4]) < len(rules) else None
    name = _rule_name(rule)
    if name is None:
        return key
    head = key[: m.start(4) - 1]
    rest = key[m.end(4) + 1 :]
    return head + (rest if rest == f".{name}" or rest.startswith(f".{name}.") else f".{name}{rest}")


def place(
    sql: str, file: str, lines: Mapping[str, int], step_names: Sequence[Any], raw: Mapping[str, Any] | None = None
) -> str:
    """``sql`` with each marker's key resolved: ``file:LINE`` of the key in the YAML (``lines``, as load_yaml
    gives them), ``steps[i]`` spelled ``steps.<name>`` (``step_names`` in file order) and a rule as the author
    wrote it (:func:`author_key` of ``raw``, the YAML)."""

    def resolve(m: re.Match[str]) -> str:
        key = m[1]
        line = _key_line(key, lines)
        key = author_key(key, raw or {})
        step = re.match(r"^steps\[(\d+)\]", key)
        if step and int(step[1]) < len(step_names) and isinstance(step_names[int(step[1])], str):
            key = f"steps.{step_names[int(step[1])]}{key[step.end() :]}"
        return f"{_MARK}{file}:{line if line is not None else 1} {key} | {m[2]}"

    return "\n".join(_MARKED.sub(resolve, text) for text in sql.split("\n"))


def statement_lines(text: str, query: str, start: int) -> tuple[int, int, int]:
    """Where statement ``query`` is in ``text``, searched from offset ``start``: (line of the query's first
    character, which DuckDB's ``LINE n`` counts from; line of its first code past comments; offset to search
    the next statement from)."""
    needle = query.strip()
    pos = text.find(needle, start) if needle else -1
    if pos < 0:
        return 1, 1, start
    stripped_line = text.count("\n", 0, pos) + 1
    lead = re.match(r"(?:\s*--[^\n]*\n|\s+)*", needle)
    code_line = text.count("\n", 0, pos + (lead.end() if lead else 0)) + 1
    base = stripped_line - query[: len(query) - len(query.lstrip())].count("\n")
    return base, code_line, pos + len(needle)


def error_line(message: str, base: int, code_line: int) -> int:
    """The line of the SQL text a DuckDB error points at: its ``LINE n`` counted from ``base``, else the
    statement's first line of code."""
    m = re.search(r"LINE (\d+):", message)
    return base + int(m[1]) - 1 if m else code_line


def explain(sql: str, line: int, message: str) -> tuple[str, str] | None:
    """``("file:LINE", "steps.<name>.params.<key> (what): message")`` for an error at ``line`` (1-based) of
    generated ``sql``: the marker of that line, else the block's (the first marker); None when ``sql`` has
    no markers (a SQL file the author wrote). ``message`` is DuckDB's, its first line kept, the compiled
    query's alias spelled as what it is."""
    rows = sql.split("\n")
    found = _MARKED.search(rows[line - 1]) if 0 < line <= len(rows) else None
    if found is None:
        found = next((m for m in map(_MARKED.search, rows) if m), None)
    if found is None:
        return None
    where, _, key = found[1].rpartition(" ")
    first = message.split("\n", 1)[0].replace('Values list "s"', "the source")
    return where, f"{key} ({found[2]}): {first}"


def sql_failure(sql: str, line: int, message: str, source: Mapping[str, Any]) -> tuple[str, str]:
    """How an error at ``line`` (1-based) of ``sql`` is told: ``("FILE:LINE", "WHO: message")``.

    ``source`` says where ``sql`` comes from: ``{"file": the SQL file's path, or None for SQL the loader
    generated; "owner": who runs it and where the YAML declares it, like "steps.enrich (p.yaml:40)"}``.
    Generated SQL is told by its markers (:func:`explain`: the YAML key at fault); a SQL file by its own
    path and line. ``message`` is DuckDB's (or any one), its first line kept."""
    file, owner = source.get("file"), str(source.get("owner") or "")
    generated = explain(sql, line, message) if file is None else None
    if generated is not None:
        return generated
    first = message.split("\n", 1)[0]
    return f"{file or '<sql>'}:{line}", f"{owner}: {first}" if owner else first


def named_lines(lines: Mapping[str, int], step_names: Sequence[Any]) -> dict[str, int]:
    """``lines`` (as load_yaml gives them) with ``steps[i]`` keys spelled ``steps.<name>`` as well, for the
    steps whose name is a unique step name (``step_names`` in file order)."""
    out = dict(lines)
    for key, line in lines.items():
        m = re.match(r"^steps\[(\d+)\](.*)$", key)
        name = step_names[int(m[1])] if m and int(m[1]) < len(step_names) else None
        if m and isinstance(name, str) and step_names.count(name) == 1:
            out[f"steps.{name}{m[2]}"] = line
    return out


def yaml_at(file: str, key: str, lines: Mapping[str, int]) -> str:
    """``FILE:LINE`` of dotted ``key`` (or of the nearest key it is inside) in ``lines``; ``FILE`` alone
    when neither is there."""
    line = _key_line(key, lines)
    return f"{file}:{line}" if line is not None else file


def located(exc: PipelineConfigError, raw: Mapping[str, Any], lines: Mapping[str, int]) -> PipelineConfigError:
    """The same error with its line, and ``steps[i]`` spelled ``steps.<name>`` when the step has a name."""
    found = raw.get("steps")
    steps: Sequence[Any] = found if isinstance(found, list) else []
    names = [s.get("name") if isinstance(s, dict) else None for s in steps]
    names = [n if isinstance(n, str) and re.fullmatch(STEP_NAME.pattern, n) else None for n in names]
    key = index_key = exc.key
    m = re.match(r"^steps\[(\d+)\](.*)$", key)
    named = m and int(m[1]) < len(steps) and isinstance(names[int(m[1])], str) and names[int(m[1])]
    if m and named and names.count(names[int(m[1])]) == 1:
        key = f"steps.{names[int(m[1])]}{m[2]}"
    m = re.match(r"^steps\.([A-Za-z_][\w-]*)(.*)$", key)
    if m and m[1] in names:
        index_key = f"steps[{names.index(m[1])}]{m[2]}"
    line = _key_line(index_key, lines)
    shown = author_key(key, raw)  # a quality rule as the author wrote it, at its item's line
    return PipelineConfigError(exc.file, shown, exc.reason, line if line is not None else lines.get("", 1))
