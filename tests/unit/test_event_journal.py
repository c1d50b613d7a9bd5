"""The durable journal (core/eventjournal.py), the audit record's bounds and the ``events`` CLI's parsing."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from helpers import examples, wait_for
from hypothesis import given, settings
from hypothesis import strategies as st

from foss_supervisor.base.writefailures import WriteFailures
from foss_supervisor.cli.events import matches, parse_since
from foss_supervisor.commands.registry import AUDIT_ITEMS, AUDIT_TEXT, audit_args
from foss_supervisor.core.eventjournal import EventJournal, day_files, read_journal

DAY = 86400.0
NOON = dt.datetime(2026, 12, 4, 12, tzinfo=dt.UTC).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_events_land_in_the_days_file_in_order_and_only_the_owner_reads_it(tmp_path: Path) -> None:
    clock = Clock(NOON)
    journal = EventJournal(tmp_path / "history", clock=clock)
    journal.start()
    for seq in range(1, 501):
        journal.append({"type": "StateChanged", "seq": seq, "at": clock.now})
    journal.close()
    [(day, path)] = day_files(tmp_path / "history")
    assert day == dt.date(2026, 12, 4) and path.name == "events-2026-12-04.jsonl"
    assert [e["seq"] for e in _lines(path)] == list(range(1, 501))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "history").stat().st_mode) == 0o700
    assert journal.written == 500 and journal.dropped == 0


def test_a_new_day_starts_a_new_file_and_retention_trims_by_age_then_size(tmp_path: Path) -> None:
    folder = tmp_path / "history"
    folder.mkdir()
    for age in range(1, 11):  # ten earlier days of 1 KB each, and a file that is not the journal's
        day = dt.date(2026, 12, 4) - dt.timedelta(days=age)
        (folder / f"events-{day.isoformat()}.jsonl").write_bytes(b"x" * 1000)
    (folder / "notes.txt").write_text("kept")
    clock = Clock(NOON)
    journal = EventJournal(folder, retention_days=7, max_bytes=4500, clock=clock)
    journal.start()  # older than 7 days: 3 files go; then the oldest while > 4500 bytes: 3 more
    journal.append({"seq": 1})
    journal.close()
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "events-2026-11-30.jsonl",
        "events-2026-12-01.jsonl",
        "events-2026-12-02.jsonl",
        "events-2026-12-03.jsonl",
        "events-2026-12-04.jsonl",
        "notes.txt",
    ]
    clock.now += DAY  # the next day: a file of its own; today's is never trimmed, however large
    journal = EventJournal(folder, retention_days=7, max_bytes=1, clock=clock)
    journal.start()
    journal.append({"seq": 2})
    journal.close()
    assert [p.name for _, p in day_files(folder)] == ["events-2026-12-05.jsonl"]


def test_a_refused_write_is_reported_kept_and_written_once_the_disk_takes_it(tmp_path: Path) -> None:
    """A full disk (here: the folder replaced by a file) warns, never raises; once writable again the kept
    lines are written and the warning clears, without a new event to carry them."""
    failures = WriteFailures()
    folder = tmp_path / "history"
    journal = EventJournal(folder, clock=Clock(NOON), failures=failures, flush_interval_s=0.05)
    journal.start()
    folder.rmdir()
    folder.write_text("not a folder")
    journal.append({"seq": 1})
    wait_for(lambda: failures.problems, 10, "the failed write reported")
    assert any("cannot write journal" in p for p in failures.problems), failures.problems
    assert journal.written == 0 and journal.dropped == 0
    folder.unlink()
    folder.mkdir()
    wait_for(lambda: not failures.problems, 10, "the recovery reported")
    journal.close()
    assert failures.problems == [] and journal.written == 1
    assert [e["seq"] for _, path in day_files(folder) for e in _lines(path)] == [1]


def test_a_full_queue_drops_the_newest_and_counts_them(tmp_path: Path) -> None:
    journal = EventJournal(tmp_path / "history", clock=Clock(NOON), max_queue=3)  # not started: nothing drains
    for seq in range(5):
        journal.append({"seq": seq})
    assert journal.dropped == 2
    journal.append({"odd": object()})  # any value becomes JSON (base.jsonable); never an error
    assert journal.dropped == 3  # the queue is still full


#: texts around the cut, lists and objects around the item limit, nested deeper than a record keeps
LONG_TEXT = (
    st.integers(0, 2 * AUDIT_TEXT).map(lambda n: "x" * n)
    | st.text(max_size=8)
    | st.tuples(st.text(max_size=4), st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)).map("".join)
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | LONG_TEXT,
    lambda inner: (
        st.lists(inner, max_size=AUDIT_ITEMS + 5) | st.dictionaries(LONG_TEXT, inner, max_size=AUDIT_ITEMS + 5)
    ),
    max_leaves=20,
)


def _sizes_bounded(value: Any, depth: int) -> bool:
    if isinstance(value, str):
        return len(value) <= AUDIT_TEXT + 40
    if isinstance(value, dict):
        return len(value) <= AUDIT_ITEMS and all(
            len(k) <= AUDIT_TEXT + 40 and _sizes_bounded(v, depth + 1) for k, v in value.items()
        )
    if isinstance(value, list):
        return len(value) <= AUDIT_ITEMS and all(_sizes_bounded(v, depth + 1) for v in value)
    return True


@settings(max_examples=examples(60), deadline=None)
@given(st.dictionaries(LONG_TEXT, JSON, max_size=AUDIT_ITEMS + 5))
def test_an_audit_record_keeps_any_arguments_bounded_and_as_json(args: dict[str, Any]) -> None:
    kept = audit_args(args)
    json.dumps(kept, ensure_ascii=False).encode("utf-8")  # a refused command's lone surrogate is kept as "?"
    assert _sizes_bounded(kept, 0)
    short = {
        k: v
        for k, v in args.items()
        if isinstance(v, str) and len(v) <= AUDIT_TEXT and len(k) <= AUDIT_TEXT and (k + v).isascii()
    }
    for key, value in list(short.items())[: AUDIT_ITEMS // 2]:
        if key in kept:
            assert kept[key] == value  # what fits is kept as given


@given(st.floats(min_value=0, max_value=10_000), st.sampled_from(["s", "m", "h", "d"]))
def test_since_takes_a_span_ago_or_an_iso_time(amount: float, unit: str) -> None:
    span = amount * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    before = dt.datetime.now(dt.UTC).timestamp()
    when = parse_since(f"{amount!r}{unit}" if "e" not in repr(amount) else f"{int(amount)}{unit}")
    assert when <= before + 1 and when >= before - span - 86400
    assert parse_since("2026-12-04T12:00:00") == NOON == parse_since("2026-12-04T13:00:00+01:00")


@given(st.text(max_size=30).filter(lambda t: not t.strip()[:1].isdigit()))
def test_since_refuses_what_is_not_a_time(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a time"):
        parse_since(text)


def test_reading_the_journal_skips_a_line_cut_by_a_crash_and_filters_by_time_and_name(tmp_path: Path) -> None:
    (tmp_path / "events-2026-12-03.jsonl").write_text('{"at": 1, "name": "api", "seq": 1}\n')
    (tmp_path / "events-2026-12-04.jsonl").write_text(
        f'{{"at": {NOON}, "name": "api-0", "seq": 2}}\n{{"at": {NOON}, "pipeline": "orders"}}\n{{"at": 5, "na'
    )
    assert [e.get("seq") for e in read_journal(tmp_path)] == [1, 2, None]
    assert [e.get("seq") for e in read_journal(tmp_path, NOON - 1)] == [2, None]
    events = list(read_journal(tmp_path))
    assert [matches(e, ["api-*"]) for e in events] == [False, True, False]
    assert [matches(e, ["orders"]) for e in events] == [False, False, True]
    assert all(matches(e, []) for e in events)
    # an audit record is about what its command named (who stopped api-0?), nothing else of it counts
    stop = {"type": "CommandCompleted", "command": "stop", "args": {"names": ["api-0", "db"]}, "via": "web"}
    run = {"type": "CommandCompleted", "command": "pipeline_run", "args": {"name": "orders"}, "name": "x"}
    assert [matches(stop, ["api-*"]), matches(stop, ["web"]), matches(run, ["orders"])] == [True, False, True]


def test_reading_one_daemon_runs_events_from_the_journal(tmp_path: Path) -> None:
    def day(name: str, *events: dict[str, Any]) -> None:  # as the journal writes them: compact JSON lines
        (tmp_path / name).write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events))

    day("events-2026-12-03.jsonl", {"at": 1, "boot": "aa", "seq": 1})
    day(
        "events-2026-12-04.jsonl",
        {"at": NOON, "boot": "aa", "seq": 2},
        {"at": NOON, "boot": "bb", "seq": 1},
        {"at": NOON, "boot": "aa", "seq": 3, "cause": {"boot": "bb"}},  # another run's tag, not its boot
    )
    assert [e["seq"] for e in read_journal(tmp_path, boot="aa")] == [1, 2, 3]
    assert [e["seq"] for e in read_journal(tmp_path, NOON, boot="aa")] == [2, 3]
    assert [e["seq"] for e in read_journal(tmp_path, boot="bb")] == [1]
    assert list(read_journal(tmp_path / "missing")) == []


_ANY_TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()), max_size=12)


@settings(max_examples=examples(100), deadline=None)
@given(texts=st.lists(_ANY_TEXT, min_size=1, max_size=5))
def test_any_text_an_event_holds_is_written_and_the_writer_goes_on(texts: list[str], tmp_path_factory: Any) -> None:
    """Lone surrogates included (a client's JSON "\\udc80", an argv byte that did not decode): each event is
    one line of valid UTF-8 JSON, the writer thread lives on, and a later event is written too."""
    folder = tmp_path_factory.mktemp("j") / "history"
    clock = Clock(NOON)
    journal = EventJournal(folder, clock=clock)
    journal.start()
    for text in texts:
        journal.append({"type": "AuditRecord", "args": {text: text}})
    journal.append({"type": "StateChanged", "seq": 1})
    journal.close()
    [(_, path)] = day_files(folder)
    # strict UTF-8, lines split at \n only (U+2028 and kin are text inside a JSON string, as JSON lines readers take it)
    lines = [json.loads(line) for line in path.read_bytes().decode("utf-8").split("\n") if line]
    assert len(lines) == len(texts) + 1 and lines[-1] == {"type": "StateChanged", "seq": 1}
    assert journal.written == len(texts) + 1 and journal.dropped == 0
