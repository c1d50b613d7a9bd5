"""This process's peak RSS over a stretch of work (:mod:`foss_supervisor.base.peakrss`): reset, grown, read."""

from __future__ import annotations

from pathlib import Path

from foss_supervisor.base.peakrss import PeakRss, peak_rss_bytes

MIB = 2**20


def test_the_peak_follows_memory_touched_since_the_start_and_no_earlier() -> None:
    peak = PeakRss()
    assert peak.bytes() is None  # never started: no figure rather than the lifetime's
    block = bytearray(96 * MIB)
    block[::4096] = b"\1" * len(block[::4096])  # every page touched: resident
    del block
    peak.start()  # the 96 MiB are gone again: the mark starts from the current RSS
    before = peak.bytes()
    assert before is not None
    block = bytearray(64 * MIB)
    block[::4096] = b"\1" * len(block[::4096])
    after = peak.bytes()
    del block
    assert after is not None and after - before >= 60 * MIB


def test_an_unreadable_status_is_no_figure(tmp_path: Path) -> None:
    assert peak_rss_bytes(str(tmp_path / "missing")) is None
    (tmp_path / "status").write_text("Name:\tx\nVmHWM:\t   2048 kB\n")
    assert peak_rss_bytes(str(tmp_path / "status")) == 2048 * 1024
    (tmp_path / "status").write_text("VmHWM:\tlots kB\n")
    assert peak_rss_bytes(str(tmp_path / "status")) is None
