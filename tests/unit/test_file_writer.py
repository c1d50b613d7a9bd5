"""The file-writer thread: writes in submission order, a bound on what waits, and a write that hangs holds
only the writer (the loop's side, ``submit``, never waits on it)."""

from __future__ import annotations

import threading
from pathlib import Path

from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from foss_supervisor.base import filewriter
from foss_supervisor.base.filewriter import FileWriter
from foss_supervisor.core.logsink import LogSink


@settings(max_examples=examples(50), deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=60), st.integers(min_value=1, max_value=512))
def test_what_is_taken_is_written_in_order_and_what_waits_stays_bounded(chunks: list[bytes], limit: int) -> None:
    writer = FileWriter(max_bytes=limit)
    gate = threading.Event()  # the disk hangs until the end: nothing queued is written meanwhile
    written: list[bytes] = []
    assert writer.submit(gate.wait, 0)
    taken = [chunk for chunk in chunks if writer.submit(lambda c=chunk: written.append(c), len(chunk))]
    assert writer.queued_bytes <= max(limit, max((len(c) for c in chunks), default=0))
    assert writer.flush(0.0) is False  # still hung: a bounded wait says so instead of waiting
    gate.set()
    assert writer.flush(10)
    assert written == taken and writer.queued_bytes == 0


def test_a_hung_disk_holds_the_writer_not_the_sink(tmp_path: Path) -> None:
    hung = threading.Event()
    sink = LogSink(tmp_path / "a.log", max_bytes=1 << 20, backups=1, timestamps=False)
    writer = filewriter.WRITER
    assert writer.submit(hung.wait, 0)
    try:
        for _ in range(10_000):  # 1 MB in lines of 100 bytes: taken at once, however long the disk hangs
            sink.write("x" * 99 + "\n")
    finally:
        hung.set()
    assert writer.flush(30)
    assert (tmp_path / "a.log").stat().st_size == 1_000_000


def test_past_the_bound_a_sink_drops_and_counts(tmp_path: Path) -> None:
    hung = threading.Event()
    sink = LogSink(tmp_path / "a.log", max_bytes=1 << 30, backups=1, timestamps=False)
    writer = filewriter.WRITER
    assert writer.submit(hung.wait, 0)
    try:
        chunk = "y" * 1023 + "\n"
        for _ in range(filewriter.QUEUED_BYTES_MAX // 1024 + 100):
            sink.write(chunk)
        assert any("behind" in p and "100 writes failed" in p for p in sink.failures.problems), sink.failures.problems
    finally:
        hung.set()
    assert writer.flush(30)
    assert (tmp_path / "a.log").stat().st_size == filewriter.QUEUED_BYTES_MAX


def test_a_flush_waits_for_what_came_before_it_not_for_what_comes_after() -> None:
    writer = FileWriter()
    first, later = threading.Event(), threading.Event()
    written: list[str] = []
    assert writer.submit(lambda: (first.wait(), written.append("before")), 1)
    mark = writer.mark()  # what flush() takes at its call
    assert writer.submit(lambda: (later.wait(), written.append("after")), 1)  # a chatty program goes on
    first.set()
    assert writer.wait(mark, 30) and written == ["before"]  # done although the later write still hangs
    later.set()
    assert writer.flush(30) and written == ["before", "after"]
