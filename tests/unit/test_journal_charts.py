"""The 24 h and 7 d charts' rollup of the journal (:mod:`foss_supervisor.web.journalcharts`): real files in a temp
folder, written as the daemon's journal writes them, on a fixed clock."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import pytest
from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from foss_supervisor.web.journalcharts import BUCKET_S, FINE_S, MAX_POINTS, JournalCharts

NOW = 1_780_000_000.0  # a fixed clock: 2026-05-28, mid-day UTC
DAY = 86400.0


def sample(at: float, cpu: Any = 10.0, programs: dict[str, tuple[Any, Any]] | None = None) -> dict[str, Any]:
    """One ResourcesSampled event as the journal keeps it: program -> (cpu %, rss bytes)."""
    trees = [
        {"name": n, "pid": 100, "processes": 1, "cpu_percent": c, "rss_bytes": r}
        for n, (c, r) in (programs or {}).items()
    ]
    host = {"cpu_percent": cpu, "memory_percent": 40.0, "disk_percent": 50.0}
    return {
        "at": at,
        "type": "ResourcesSampled",
        "seq": 1,
        "boot": "b",
        "programs": trees,
        "services": [],
        "daemon": {"pid": 1, "rss_bytes": 40 << 20},
        "worker": None,
        "host": host,
    }


def write(folder: Path, events: list[dict[str, Any]], raw: str = "") -> None:
    """Append events to their UTC day's file (and ``raw`` text to today's), as the writer does."""
    folder.mkdir(exist_ok=True)
    for e in events:
        day = dt.datetime.fromtimestamp(e["at"], dt.UTC).date()
        path = folder / f"events-{day.isoformat()}.jsonl"
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(e, separators=(",", ":"), allow_nan=True) + "\n")
    if raw:
        today = dt.datetime.fromtimestamp(NOW, dt.UTC).date()
        with (folder / f"events-{today.isoformat()}.jsonl").open("a", encoding="utf-8") as f:
            f.write(raw)


def charts(folder: Path | None, **kw: Any) -> JournalCharts:
    return JournalCharts(folder, clock=lambda: NOW, **kw)


def points(answer: dict[str, Any], key: str = "cpu") -> dict[float, Any]:
    """Bucket start -> value, only where a bucket holds samples."""
    return {t: v for t, v in zip(answer["t"], answer[key], strict=True) if v is not None}


def test_a_week_ago_is_on_the_7d_chart_and_not_on_the_24h_one(tmp_path: Path) -> None:
    h = tmp_path / "history"
    write(h, [sample(NOW - 5 * DAY, cpu=30.0), sample(NOW - 5 * DAY + 60, cpu=50.0), sample(NOW - 600, cpu=70.0)])
    week = charts(h).chart("7d")
    assert len(week["t"]) == MAX_POINTS and week["bucket_s"] == BUCKET_S["7d"] and week["complete"]
    assert week["t"][-1] <= NOW < week["t"][-1] + BUCKET_S["7d"]
    assert sorted(points(week).values()) == [40.0, 70.0]
    assert sorted(points(week, "cpu_min").values()) == [30.0, 70.0]
    assert sorted(points(week, "cpu_max").values()) == [50.0, 70.0]
    day = charts(h).chart("24h")
    assert list(points(day).values()) == [70.0] and day["bucket_s"] == FINE_S
    assert list(points(day, "rss").values()) == [40.0]  # the daemon's tree, MiB


def test_programs_each_have_their_series_and_one_can_be_asked_for(tmp_path: Path) -> None:
    h = tmp_path / "history"
    write(h, [sample(NOW - 3600, programs={"api": (5.0, 100 << 20), "db": (1.0, 10 << 20)})])
    week = charts(h).chart("7d")
    assert set(week["programs"]) == {"api", "db"} and "cpu_max" not in week["programs"]["api"]
    assert list(points(week["programs"]["api"] | {"t": week["t"]}, "rss").values()) == [100.0]
    one = charts(h).chart("7d", program="db")
    assert set(one["programs"]) == {"db"} and set(one["programs"]["db"]) == {
        "cpu",
        "rss",
        "cpu_min",
        "cpu_max",
        "rss_min",
        "rss_max",
    }
    assert charts(h).chart("7d", program="gone")["programs"] == {}
    assert list(points(week, "running").values()) == [2.0]


def test_only_new_whole_lines_are_read_and_nothing_twice(tmp_path: Path) -> None:
    h = tmp_path / "history"
    write(h, [sample(NOW - 60, cpu=10.0)], raw='{"at":1780000000,"type":"ResourcesSampled","ho')
    c = charts(h)
    assert list(points(c.chart("24h")).values()) == [10.0]
    write(h, [], raw='st":{"cpu_percent":30.0}}\n')  # the writer finished its line
    assert list(points(c.chart("24h")).values()) == [20.0]
    assert list(points(c.chart("24h")).values()) == [20.0]  # asked again: nothing counted twice


def test_a_refresh_out_of_time_answers_and_the_next_one_reads_on(tmp_path: Path) -> None:
    h = tmp_path / "history"
    write(h, [sample(NOW - d * DAY, cpu=float(d)) for d in range(6, 0, -1)])
    c = charts(h, budget_s=-1.0)  # past its deadline at once: one line a file at most, then stops
    first = c.chart("7d")
    assert not first["complete"]
    seen = []
    for _ in range(10):
        answer = c.chart("7d")
        seen.append(answer["complete"])
        if answer["complete"]:
            break
    assert seen[-1] and sorted(points(answer).values()) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_a_line_longer_than_the_bound_is_skipped_in_pieces(tmp_path: Path) -> None:
    h = tmp_path / "history"
    huge = json.dumps({**sample(NOW - 120, cpu=99.0), "pad": "x" * 1000}, separators=(",", ":"))
    write(h, [sample(NOW - 60, cpu=10.0)], raw=huge + "\n")
    write(h, [sample(NOW - 30, cpu=30.0)])
    assert list(points(charts(h).chart("24h")).values()) == [46.3]  # under the default bound: all three
    bounded = charts(h, max_line_bytes=600)  # each sample fits, the padded one does not
    assert list(points(bounded.chart("24h")).values()) == [20.0]  # skipped in pieces, the next one read


def test_no_journal_is_empty_charts(tmp_path: Path) -> None:
    for folder in (None, tmp_path / "missing"):
        answer = charts(folder).chart("7d")
        assert answer["complete"] and answer["programs"] == {} and points(answer) == {}


def test_old_days_beyond_the_week_are_not_read(tmp_path: Path) -> None:
    h = tmp_path / "history"
    write(h, [sample(NOW - 20 * DAY, cpu=99.0), sample(NOW - 60, cpu=1.0)])
    assert list(points(charts(h).chart("7d")).values()) == [1.0]


VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.integers(-(10**6), 10**6),
    st.none(),
    st.booleans(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=examples(60), deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 7 * 86400 - 1), VALUES), max_size=30),
    st.lists(st.text(max_size=40), max_size=3),
)
def test_every_bucket_is_the_min_max_and_mean_of_its_finite_numbers(
    tmp_path_factory: Any, cpus: list[tuple[int, Any]], junk: list[str]
) -> None:
    """Whatever a line holds (NaN, infinities, text, booleans, lists, cut or foreign lines), a bucket's
    figures are those of the finite numbers that fell in it, and nothing raises."""
    h = tmp_path_factory.mktemp("j") / "history"
    events = [sample(NOW - ago, cpu=v) for ago, v in cpus]
    write(h, events, raw="".join(j.replace("\n", " ") + "\n" for j in junk))
    answer = charts(h).chart("7d")
    width = BUCKET_S["7d"]
    expected: dict[float, list[float]] = {}
    for e in events:
        v = e["host"]["cpu_percent"]
        if type(v) in (int, float) and math.isfinite(v):
            expected.setdefault(float(e["at"] // width * width), []).append(float(v))
    expected = {t: vs for t, vs in expected.items() if t >= answer["t"][0]}
    assert set(points(answer)) == set(expected)
    for t, vs in expected.items():
        assert points(answer)[t] == pytest.approx(sum(vs) / len(vs), rel=1e-9, abs=0.051)  # shown to 0.1
        assert points(answer, "cpu_min")[t] == round(min(vs), 1)
        assert points(answer, "cpu_max")[t] == round(max(vs), 1)
