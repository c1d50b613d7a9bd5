"""A pipeline's partition key, taken from its landing files' names, and the choice of partitions to backfill.

A pipeline that declares ``partition:`` has one partition per distinct value its ``from_file`` regex (RE2,
the regex engine DuckDB runs, so no pattern can backtrack for ever) captures in a landing file's name, in the
named group ``key``. With ``date_format`` (strptime directives, e.g. ``%Y%m%d``) the captured text must be a
date, and the value is that date written ``YYYY-MM-DD``, so values sort by date. A value is at most
:data:`MAX_VALUE` characters of letters, digits and ``_ . : + -``; a file whose name does not match, or whose
captured text is not such a value, belongs to no partition (:func:`partitions_of` counts it).

This module is pure (no DuckDB, no I/O besides the landing folder's listing): the daemon lists partitions,
the worker's ingest picks a partition's files, and both read the same :class:`PartitionSpec`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from foss_supervisor.base.pipelinestates import RUN_FAILED, RunStatus
from foss_supervisor.config.gates import Gate, GateError
from foss_supervisor.config.schema import PARTITION
from foss_supervisor.pipeline.errors import PipelineConfigError

__all__ = [
    "FAILED_STATUSES",
    "MAX_BACKFILL",
    "MAX_VALUE",
    "PartitionSpec",
    "load_partition",
    "parse_bound",
    "partitions_of",
    "select_partitions",
]

#: the longest partition value, in characters
MAX_VALUE = 64
#: the most partitions one backfill may run (a wider range is refused: narrow it)
MAX_BACKFILL = 1000
#: what a partition's last run ended as for ``--only-failed`` to pick it again
FAILED_STATUSES = frozenset({*RUN_FAILED, RunStatus.CANCELLED})
_VALUE = re.compile(rf"[A-Za-z0-9_.:+-]{{1,{MAX_VALUE}}}")
_KEYS = tuple(PARTITION)


@dataclasses.dataclass(frozen=True, slots=True)
class PartitionSpec:
    """``partition:`` as declared: ``key`` names the regex group, ``from_file`` is searched in a landing file's
    name, ``date_format`` (strptime) makes the value a date, written ``YYYY-MM-DD``."""

    key: str
    from_file: str
    date_format: str | None = None

    def value_of(self, file_name: str) -> str | None:
        """The partition of a landing file named ``file_name`` (a name, not a path), or None when it has none."""
        if len(file_name) > 255:
            return None
        match = _compiled(self.from_file).search(file_name)
        if match is None:
            return None
        text = match.group(self.key)
        if not isinstance(text, str):
            return None
        if self.date_format is not None:
            try:
                return dt.datetime.strptime(text, self.date_format).date().isoformat()
            except ValueError:
                return None
        return text if _VALUE.fullmatch(text) else None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form (what the worker receives)."""
        return {"key": self.key, "from_file": self.from_file, "date_format": self.date_format}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PartitionSpec:
        """Inverse of to_json."""
        return cls(str(data["key"]), str(data["from_file"]), data.get("date_format"))

    @classmethod
    def of_access(cls, access: Any) -> PartitionSpec | None:
        """The ``partition_key`` of a step request's ``access`` (runstate.access_payload), None when absent."""
        raw = access.get("partition_key") if isinstance(access, Mapping) else None
        return cls.from_json(raw) if isinstance(raw, Mapping) else None


_CACHE: dict[str, Any] = {}


def _compiled(pattern: str) -> Any:
    """The RE2 pattern, compiled once per process (google-re2: linear time in the name's length); the cache
    holds at most 64 patterns (one per partitioned pipeline, and what reloads brought)."""
    found = _CACHE.get(pattern)
    if found is None:
        if len(_CACHE) >= 64:
            _CACHE.clear()
        import re2  # type: ignore[import-not-found,import-untyped,unused-ignore]

        options = re2.Options()
        options.log_errors = False
        found = _CACHE[pattern] = re2.compile(pattern, options)
    return found


def load_partition(raw: Any, file: str) -> PartitionSpec | None:
    """``partition:`` of a pipeline file (None when absent), through the schema's gates.

    Raises PipelineConfigError naming ``partition.<key>`` and the reason: not a mapping, an unknown key, a key
    that is not a lower-case identifier, a regex RE2 refuses or without the named group ``(?P<key>...)``, a
    date format that cannot write and read back a date.
    """
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise PipelineConfigError(file, "partition", "must be a mapping with key, from_file and date_format")
    for k in raw:
        if k not in _KEYS:
            raise PipelineConfigError(file, f"partition.{k}", f"unknown key (allowed: {', '.join(_KEYS)})")
    if raw.get("key") is None:
        raise PipelineConfigError(file, "partition.key", "is required: a lower-case identifier like 'day'")
    key = _gated("key", raw["key"], file)
    if raw.get("from_file") is None:
        raise PipelineConfigError(file, "partition.from_file", f"is required: a regex with the group (?P<{key}>...)")
    pattern = _gated("from_file", raw["from_file"], file)
    date_format = None
    if raw.get("date_format") is not None:
        date_format = _gated("date_format", raw["date_format"], file)
    if key not in _compiled(pattern).groupindex:
        raise PipelineConfigError(file, "partition.from_file", f"has no named group (?P<{key}>...) for the key")
    if date_format is not None:
        _check_date_format(date_format, file)
    return PartitionSpec(key, pattern, date_format)


def _gated(key: str, value: Any, file: str) -> str:
    gate = PARTITION[key]
    assert isinstance(gate, Gate)
    try:
        return str(gate(value))
    except GateError as exc:
        raise PipelineConfigError(file, f"partition.{key}" + exc.at, exc.reason) from None


def _check_date_format(fmt: str, file: str) -> None:
    """A date format must write a date and read the same date back (so it holds year, month and day)."""
    sample = dt.date(2031, 12, 25)
    try:
        back = dt.datetime.strptime(sample.strftime(fmt), fmt).date()
    except ValueError as exc:
        reason = f"{fmt!r} cannot read the dates it writes: {exc}"
        raise PipelineConfigError(file, "partition.date_format", reason) from None
    if back != sample:
        raise PipelineConfigError(
            file, "partition.date_format", f"{fmt!r} must hold the year, month and day (like %Y-%m-%d or %Y%m%d)"
        )


def partitions_of(spec: PartitionSpec, files: Iterable[Path]) -> tuple[dict[str, list[Path]], list[Path]]:
    """Landing files by partition value (values sorted, files in the given order), and the files of none."""
    found: dict[str, list[Path]] = {}
    none: list[Path] = []
    for p in files:
        value = spec.value_of(p.name)
        if value is None:
            none.append(p)
        else:
            found.setdefault(value, []).append(p)
    return dict(sorted(found.items())), none


def parse_bound(spec: PartitionSpec, text: str, which: str) -> str | None:
    """A ``--from``/``--to`` bound as a partition value; ``""`` is no bound (None). A date partition takes an
    ISO date (``2026-01-31``) or a date in the pipeline's own ``date_format``.

    Raises ValueError naming ``which`` and the accepted form.
    """
    if text == "":
        return None
    if len(text) > MAX_VALUE:
        raise ValueError(f"{which}: at most {MAX_VALUE} characters")
    if spec.date_format is not None:
        for fmt in ("%Y-%m-%d", spec.date_format):
            try:
                return dt.datetime.strptime(text, fmt).date().isoformat()
            except ValueError:
                continue
        raise ValueError(f"{which}: {text!r} is not a date (YYYY-MM-DD or {spec.date_format})")
    if not _VALUE.fullmatch(text):
        raise ValueError(f"{which}: {text!r} is not a partition value (letters, digits, _ . : + -)")
    return text


def select_partitions(
    values: Iterable[str],
    lo: str | None,
    hi: str | None,
    *,
    only_failed: bool = False,
    last_status: Mapping[str, str] | None = None,
) -> list[str]:
    """The partitions a backfill runs, sorted: ``values`` in ``[lo, hi]`` (inclusive, a None bound is open),
    with ``only_failed`` just those whose last partition run (``last_status``: value -> run status) is one of
    FAILED_STATUSES; a partition never run is not failed.

    Raises ValueError when ``lo > hi`` or more than MAX_BACKFILL partitions are chosen.
    """
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"--from {lo} is after --to {hi}")
    chosen = sorted({v for v in values if (lo is None or v >= lo) and (hi is None or v <= hi)})
    if only_failed:
        statuses = last_status or {}
        chosen = [v for v in chosen if statuses.get(v) in FAILED_STATUSES]
    if len(chosen) > MAX_BACKFILL:
        raise ValueError(f"{len(chosen)} partitions chosen, at most {MAX_BACKFILL} per backfill: narrow --from/--to")
    return chosen
