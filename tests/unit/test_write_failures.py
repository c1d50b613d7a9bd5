"""Failed writes, in-process: counted and reported once per interval and cleared, a log sink that cannot write
drops, counts and recovers, a file nothing writes any more is probed, a failed intent write is kept in memory
and shown (a full disk for real:
tests/e2e/test_full_disk.py)."""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path
from typing import Any

from foss_supervisor.base.filewriter import WRITER
from foss_supervisor.base.writefailures import PROBE_AFTER_S, WriteFailures, writable
from foss_supervisor.core.logsink import LogSink
from foss_supervisor.core.statestore import StateStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_are_counted_reported_once_per_interval_and_cleared(tmp_path: Path) -> None:
    clock = FakeClock()
    failures = WriteFailures(interval_s=60.0, clock=clock)
    path = tmp_path / "a.log"
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    reports = [failures.failed(path, "program_log", full, dropped_bytes=100) for _ in range(1000)]
    assert reports.count(True) == 1  # the first failure is reported, the rest only counted
    assert failures.problems == [failures.problems[0]]
    assert "cannot write program log" in failures.problems[0] and "No space left on device" in failures.problems[0]
    assert "1000 writes failed" in failures.problems[0] and "97.7 KB dropped" in failures.problems[0]
    clock.now += 61.0
    assert failures.failed(path, "program_log", full) is True  # one report per interval
    failures.succeeded(path)
    assert failures.problems == []
    assert failures.failed(path, "program_log", full) is True  # a new spell is reported at once


def test_a_log_sink_that_cannot_write_drops_counts_and_recovers(tmp_path: Path, capfd: Any) -> None:
    failures = WriteFailures()
    sink = LogSink(tmp_path / "logs" / "a.log", max_bytes=1 << 20, backups=1, timestamps=False, failures=failures)
    sink.write("first\n")
    assert WRITER.flush(10)  # the writer thread makes the writes: each step below waits for them
    (tmp_path / "logs").chmod(0o500)  # rotation cannot create its files: a write that fails, as on a full disk
    sink._handler.maxBytes = 1
    try:
        if os.geteuid() == 0:  # root ignores the mode: make the rename target a folder instead
            (tmp_path / "logs" / "a.log.1").mkdir()
        for _ in range(500):
            sink.write("lost\n")
        assert WRITER.flush(10)
    finally:
        (tmp_path / "logs").chmod(0o700)
    assert len(failures.problems) == 1 and "500 writes failed" in failures.problems[0]
    assert "Logging error" not in capfd.readouterr().err  # no traceback per record
    if (tmp_path / "logs" / "a.log.1").is_dir():
        (tmp_path / "logs" / "a.log.1").rmdir()
    sink.write("back\n")
    assert WRITER.flush(10)
    assert failures.problems == []
    sink.close()


def test_a_failed_intent_write_is_kept_in_memory_and_shown(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.intent_file.mkdir()  # the rename onto it fails
    assert store.remember_stopped("a", True) is False
    assert store.stopped_by_hand() == {"a"}  # the wish is not lost
    assert any("intent.json" in p for p in store.problems)
    store.intent_file.rmdir()
    assert store.remember_stopped("b", True) is True
    assert json.loads(store.intent_file.read_text())["stopped"] == ["a", "b"]
    assert store.problems == []


def probe_round(failures: WriteFailures, clock: FakeClock) -> bool:
    """One round of :meth:`WriteFailures.probe_quiet`, done: whether a round was queued."""
    clock.now += PROBE_AFTER_S
    queued = failures.probe_quiet()
    assert WRITER.flush(10)
    return queued


def test_a_failing_file_nothing_writes_any_more_is_probed_and_cleared(tmp_path: Path) -> None:
    clock = FakeClock()
    failures = WriteFailures(clock=clock)
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    quiet, gone = tmp_path / "quiet.log", tmp_path / "gone" / "b.log"
    quiet.write_text("what was written before\n")
    failures.failed(quiet, "program_log", full, dropped_bytes=10)
    failures.failed(gone, "program_log", full)
    assert failures.probe_quiet() is False  # failed just now: the next write will tell
    assert probe_round(failures, clock) is True
    assert [p for p in failures.problems if "quiet.log" in p] == []  # its folder takes a write again
    assert [p for p in failures.problems if "b.log" in p]  # a folder that is gone does not
    assert quiet.read_text() == "what was written before\n"  # the probe never writes the file itself
    assert sorted(tmp_path.iterdir()) == [quiet]  # nor leaves its probe file
    assert probe_round(failures, clock) is True  # probed again, every PROBE_AFTER_S while it fails


def test_a_write_that_fails_while_its_file_is_probed_keeps_the_problem(tmp_path: Path) -> None:
    clock = FakeClock()
    failures = WriteFailures(clock=clock)
    path = tmp_path / "a.log"
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    failures.failed(path, "program_log", full)
    clock.now += PROBE_AFTER_S
    held = threading.Event()
    WRITER.submit(lambda: held.wait(10), 0)  # the writer is busy: the round waits behind it
    try:
        assert failures.probe_quiet() is True
        assert failures.probe_quiet() is False  # one round at a time (a hung disk queues no more)
        failures.failed(path, "program_log", full)  # a real write fails meanwhile
    finally:
        held.set()
    assert WRITER.flush(10)
    assert len(failures.problems) == 1


def test_writable_says_no_for_a_fifo_without_reader_and_for_a_file_that_is_a_folder(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert writable(fifo) is False  # never blocks waiting for a reader
    (tmp_path / "dir.log").mkdir()
    assert writable(tmp_path / "dir.log") is False
    assert writable(tmp_path / "new.log") is True and not (tmp_path / "new.log").exists()


def test_a_state_file_is_never_probed_its_owner_retries_it(tmp_path: Path) -> None:
    """A state file's failed write is kept and retried by its owner (run history, the paused set): only its own
    write may say it is current again, so the probe leaves it, even where the folder takes writes."""
    clock = FakeClock()
    failures = WriteFailures(clock=clock)
    failures.failed(tmp_path / "pipeline_runs.jsonl", "state", OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert probe_round(failures, clock) is False
    assert len(failures.problems) == 1


def test_a_relapse_after_a_probed_recovery_is_counted_not_reported_again_within_the_interval(tmp_path: Path) -> None:
    clock = FakeClock()
    failures = WriteFailures(interval_s=60.0, clock=clock)
    path = tmp_path / "a.log"
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert failures.failed(path, "program_log", full) is True
    assert probe_round(failures, clock) is True and failures.problems == []  # the folder takes a page again
    assert failures.failed(path, "program_log", full) is False  # a bigger write fails: counted, shown, not logged
    assert len(failures.problems) == 1
    clock.now += 60.0
    assert failures.failed(path, "program_log", full) is True  # the interval has passed
