"""The partition key and the choice of partitions to backfill (pipeline/engine/partition.py, backfill.py), as pure
logic.

Properties over the whole input class: any ``partition:`` value gives a PartitionSpec or a PipelineConfigError
at ``partition[.key]`` (never another exception); any file name maps to no partition or to a bounded value; any
``--from``/``--to`` text is a value, no bound, or a ValueError naming the option; a selection over any set of
dates and bounds is sorted, within the bounds, bounded in size, and ``only_failed`` keeps exactly the failed.
"""

from __future__ import annotations

import datetime as dt
import re
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from foss_supervisor.base.pipelinestates import RunMode, RunStatus
from foss_supervisor.pipeline.engine.backfill import last_partition_runs
from foss_supervisor.pipeline.engine.history import RunRecord
from foss_supervisor.pipeline.engine.partition import (
    FAILED_STATUSES,
    MAX_BACKFILL,
    MAX_VALUE,
    PartitionSpec,
    load_partition,
    parse_bound,
    partitions_of,
    select_partitions,
)
from foss_supervisor.pipeline.engine.spec import load_pipeline
from foss_supervisor.pipeline.errors import PipelineConfigError

HYPOTHESIS = settings(max_examples=examples(200), deadline=None)
DAY = PartitionSpec("day", r"sales_(?P<day>\d{8})\.csv", "%Y%m%d")
VALUE = re.compile(rf"[A-Za-z0-9_.:+-]{{1,{MAX_VALUE}}}")

hostile = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=40)
    | st.text(alphabet="\x00\n\r\t ", max_size=5)
    | st.just("x" * 2000)
    | st.lists(st.text(max_size=5), max_size=3)
)
regexes = st.sampled_from(
    [
        r"(?P<day>\d{4}-\d{2}-\d{2})",
        r"^x_(?P<day>\d{8})\.csv$",
        r"(?P<other>\d+)",
        r"(?=look)(?P<day>x)",
        r"(?P<day>(a|aa)+)$",
        r"(unclosed",
        r"(?P<day>.*)",
        r"(?P<day>[^_]+)_(?P<region>[a-z]+)",
    ]
) | st.text(max_size=30)
date_formats = st.sampled_from(["%Y-%m-%d", "%Y%m%d", "%d.%m.%Y", "%Y", "%H:%M", "%Q", "", "%Y-%j"]) | st.text(
    alphabet="%YmdHjb-_ ", max_size=10
)
declarations = (
    st.fixed_dictionaries(
        {"key": st.sampled_from(["day", "region", "Day", "1x", ""]) | hostile, "from_file": regexes | hostile},
        optional={"date_format": date_formats | hostile, "other": hostile},
    )
    | hostile
)
names = st.text(max_size=300) | st.builds(
    lambda d, s: f"sales_{d:%Y%m%d}{s}", st.dates(), st.sampled_from([".csv", ".csv.gz", "", "x.csv"])
)


@HYPOTHESIS
@given(declarations, st.lists(names, max_size=5))
def test_any_declaration_is_a_partition_key_or_a_clear_error(raw: Any, files: list[str]) -> None:
    try:
        spec = load_partition(raw, "p.yaml")
    except PipelineConfigError as exc:
        assert exc.key == "partition" or exc.key.startswith("partition.")
        assert exc.reason
        return
    if raw is None:
        assert spec is None
        return
    assert spec is not None and isinstance(raw, dict)
    assert spec.key == raw["key"] and spec.from_file == raw["from_file"]
    for name in files:
        value = spec.value_of(name)
        assert value is None or VALUE.fullmatch(value)
        if value is not None and spec.date_format is not None:
            assert dt.date.fromisoformat(value).isoformat() == value


@HYPOTHESIS
@given(st.dates(min_value=dt.date(1000, 1, 1)), st.integers(min_value=0, max_value=99))
def test_a_date_in_the_declared_format_is_its_iso_day(day: dt.date, n: int) -> None:
    name = f"sales_{day:%Y%m%d}.csv"
    assert DAY.value_of(name) == day.isoformat()
    assert DAY.value_of(f"sales_{day:%Y}{13 + n % 87:02d}01.csv") is None  # month 13..99: not a date
    found, none = partitions_of(DAY, [Path(name), Path("readme.txt")])
    assert found == {day.isoformat(): [Path(name)]} and none == [Path("readme.txt")]


@HYPOTHESIS
@given(st.text(max_size=80) | st.dates().map(dt.date.isoformat) | st.dates().map(lambda d: f"{d:%Y%m%d}"))
def test_a_bound_is_a_value_no_bound_or_an_error_naming_the_option(text: str) -> None:
    plain = PartitionSpec("region", r"(?P<region>[a-z]+)")
    for spec in (DAY, plain):
        try:
            bound = parse_bound(spec, text, "from")
        except ValueError as exc:
            assert str(exc).startswith("from: ")
            continue
        if text == "":
            assert bound is None
        elif spec.date_format is not None:
            assert bound is not None and dt.date.fromisoformat(bound).isoformat() == bound
        else:
            assert bound == text and VALUE.fullmatch(text)


def _record(partition: str, status: RunStatus, i: int) -> RunRecord:
    return RunRecord(f"r{i}", "p", RunMode.RUN, "backfill", status, float(i), (), partition=partition)


statuses = st.sampled_from([s.value for s in RunStatus] + ["never"])


@HYPOTHESIS
@given(
    st.sets(st.dates(), max_size=60).map(lambda ds: [d.isoformat() for d in ds]),
    st.none() | st.dates().map(dt.date.isoformat),
    st.none() | st.dates().map(dt.date.isoformat),
    st.booleans(),
    st.data(),
)
def test_a_selection_is_sorted_within_bounds_and_only_failed_keeps_the_failed(
    values: list[str], lo: str | None, hi: str | None, only_failed: bool, data: st.DataObject
) -> None:
    last = {v: data.draw(statuses) for v in values}
    try:
        chosen = select_partitions(values, lo, hi, only_failed=only_failed, last_status=last)
    except ValueError as exc:
        assert lo is not None and hi is not None and lo > hi and "is after" in str(exc)
        return
    assert chosen == sorted(set(chosen)) and len(chosen) <= MAX_BACKFILL
    within = [v for v in sorted(values) if (lo is None or v >= lo) and (hi is None or v <= hi)]
    assert chosen == ([v for v in within if last[v] in FAILED_STATUSES] if only_failed else within)


def test_too_many_partitions_are_refused_with_the_way_out() -> None:
    values = [f"p{i:05d}" for i in range(MAX_BACKFILL + 1)]
    with pytest.raises(ValueError, match="narrow --from/--to"):
        select_partitions(values, None, None)
    assert len(select_partitions(values, None, values[-2])) == MAX_BACKFILL


def test_only_failed_reads_the_newest_run_of_each_partition() -> None:
    newest_first = [
        _record("2026-01-01", RunStatus.SUCCEEDED, 4),
        _record("2026-01-02", RunStatus.FAILED, 3),
        _record("2026-01-01", RunStatus.FAILED, 2),  # older: fixed since
        _record("2026-01-03", RunStatus.CANCELLED, 1),
    ]
    last = {v: r.status.value for v, r in last_partition_runs(newest_first).items()}
    assert last == {"2026-01-01": "succeeded", "2026-01-02": "failed", "2026-01-03": "cancelled"}
    values = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]
    assert select_partitions(values, None, None, only_failed=True, last_status=last) == ["2026-01-02", "2026-01-03"]


def test_the_loader_names_file_line_and_key_of_a_bad_partition(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("SELECT 1 AS rows_in, 1 AS rows_out;")
    doc = {
        "name": "p",
        "folders": {"landing": "land", "reference": "ref", "warehouse": "wh/w.duckdb"},
        "steps": [{"name": "a", "sql": "a.sql"}],
        "partition": {"key": "day", "from_file": r"sales_(?P<d>\d+)\.csv"},
    }
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(PipelineConfigError) as caught:
        load_pipeline(path)
    assert caught.value.key == "partition.from_file" and "(?P<day>" in caught.value.reason
    assert caught.value.line is not None and "from_file" in path.read_text().splitlines()[caught.value.line - 1]
    doc["partition"] = {"key": "day", "from_file": r"sales_(?P<day>\d{8})\.csv", "date_format": "%Y%m%d"}
    path.write_text(yaml.safe_dump(doc))
    assert load_pipeline(path).partition == PartitionSpec("day", r"sales_(?P<day>\d{8})\.csv", "%Y%m%d")


def test_a_value_outside_the_character_class_belongs_to_no_partition() -> None:
    spec = PartitionSpec("k", r"^(?P<k>.*)\.csv$")
    assert spec.value_of("a b.csv") is None and spec.value_of("é.csv") is None
    assert spec.value_of(("x" * (MAX_VALUE + 1)) + ".csv") is None
    assert spec.value_of("eu-west_1.csv") == "eu-west_1"
    assert all(spec.value_of(c + ".csv") is None for c in string.whitespace)
