"""The durable event journal, the audit record and ``foss-supervisor events`` against a real daemon."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import PY, DaemonHandle, command, kill_recorded_children, wait_for

PROGRAMS = """
programs:
  one: {command: "sleep 1000"}
  two: {command: "sleep 1000"}
"""


def _journal(state_dir: Path) -> list[dict[str, Any]]:
    events = []
    for path in sorted((state_dir / "history").glob("events-*.jsonl")):
        events += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return events


def _audit(state_dir: Path, name: str) -> list[dict[str, Any]]:
    return [e for e in _journal(state_dir) if e["type"] == "CommandCompleted" and e["command"] == name]


def test_the_journal_and_its_audit_records_outlive_a_kill_9(daemon: DaemonHandle) -> None:
    daemon.write_config(PROGRAMS)
    proc = daemon.start()
    assert daemon.cli("ctl", "stop", "one").returncode == 0
    assert command(daemon.port, "stop", {"names": ["two"]}).status == 200
    # written within a second of happening: the kill below loses nothing older
    wait_for(lambda: _audit(daemon.state_dir, "stop")[1:], 10, "both stops in the journal")
    [by_cli, by_web] = _audit(daemon.state_dir, "stop")
    assert (by_cli["via"], by_cli["uid"], by_cli["args"]["names"], by_cli["ok"]) == (
        "control",
        os.getuid(),
        ["one"],
        True,
    )
    assert (by_web["via"], by_web["uid"], by_web["args"]["names"]) == ("web", os.getuid(), ["two"])
    first_boot = by_cli["boot"]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    kill_recorded_children(daemon.state_dir)
    daemon.start()
    wait_for(lambda: any(e["boot"] != first_boot for e in _journal(daemon.state_dir)), 10, "the new run's events")
    printed = [json.loads(line) for line in daemon.cli("events").stdout.splitlines()]
    assert [e for e in printed if e["type"] == "CommandCompleted"][:2] == [by_cli, by_web]
    assert {e["boot"] for e in printed} == {first_boot, printed[-1]["boot"]} and printed[-1]["boot"] != first_boot
    seqs = [e["seq"] for e in printed if e["boot"] == first_boot]
    assert seqs == list(range(1, len(seqs) + 1))  # the first run's events whole and in order
    # `events two`: the events about two, and the audit records whose command named two (who stopped it)
    about_two = [json.loads(line) for line in daemon.cli("events", "two").stdout.splitlines()]
    expected = [e for e in printed if e.get("name") == "two" or "two" in (e.get("args") or {}).get("names", [])]
    assert about_two == expected and any(e["type"] == "CommandCompleted" for e in about_two)


class Follower:
    """``foss-supervisor events --follow`` as a subprocess, its lines read on a thread."""

    def __init__(self, daemon: DaemonHandle, *args: str) -> None:
        argv = [PY, "-m", "foss_supervisor", "events", "--config", str(daemon.config_path), "--follow", *args]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=daemon.env)
        self.lines: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def events(self) -> list[tuple[str, int]]:
        return [(e["boot"], e["seq"]) for e in self.lines if e["type"] not in ("Snapshot", "Resync")]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


@pytest.fixture
def followers() -> Iterator[list[Follower]]:
    started: list[Follower] = []
    yield started
    for f in started:
        f.stop()


def test_two_followers_and_a_reader_with_since_see_the_same_sequence(
    daemon: DaemonHandle, followers: list[Follower]
) -> None:
    daemon.write_config(PROGRAMS)
    daemon.start()
    followers += [Follower(daemon), Follower(daemon)]
    for f in followers:
        wait_for(lambda f=f: f.lines, 15, "the snapshot line")  # type: ignore[misc]
        snapshot = f.lines[0]
        assert snapshot["type"] == "Snapshot"
        assert {p["name"]: p["state"] for p in snapshot["programs"]}.items() >= {"one": "RUNNING"}.items()
    assert daemon.cli("ctl", "restart", "one").returncode == 0

    def restarted(f: Follower) -> bool:
        return any(e.get("type") == "CommandCompleted" and e["command"] == "restart" for e in f.lines)

    wait_for(lambda: all(restarted(f) for f in followers), 15, "the restart seen by both followers")
    wait_for(lambda: followers[0].events() == followers[1].events(), 5, "the same events in the same order")
    seen = followers[0].events()
    assert seen and [s for _, s in seen] == list(range(seen[0][1], seen[0][1] + len(seen)))  # no gap
    # a third reader that starts from the journal, then follows: the same events, none twice, none missed
    late = Follower(daemon, "--since", "10m")
    followers.append(late)
    wait_for(lambda: set(seen) <= set(late.events()), 15, "the journal's events for the late reader")
    assert len(late.events()) == len(set(late.events()))
    assert daemon.cli("ctl", "stop", "two").returncode == 0

    def stopped(f: Follower) -> bool:  # the feed numbers events a moment after the command's reply
        return any(e.get("type") == "CommandCompleted" and e["command"] == "stop" for e in f.lines)

    wait_for(lambda: stopped(followers[0]), 15, "the stop seen by a follower")
    wait_for(lambda: followers[0].events()[-1] in late.events(), 15, "the live events after the journal's")
    tail = followers[0].events()[len(seen) :]
    assert tail and late.events()[-len(tail) :] == tail


def test_resource_samples_are_kept_with_every_programs_tree(daemon: DaemonHandle) -> None:
    daemon.write_config(PROGRAMS, extra="history: {sample_interval: 0.2s}")
    daemon.start()

    def samples() -> list[dict[str, Any]]:
        return [e for e in _journal(daemon.state_dir) if e["type"] == "ResourcesSampled"]

    wait_for(lambda: samples()[1:], 15, "two resource samples in the journal")
    last = samples()[-1]
    assert [p["name"] for p in last["programs"]] == ["one", "two"]
    assert "@dashboard" in [s["name"] for s in last["services"]]
    one = last["programs"][0]
    assert one["pid"] == daemon.program("one")["pid"] and one["processes"] == 1 and one["rss_bytes"] > 0
    assert last["host"]["memory_total_bytes"] > 0 and last["daemon"]["pid"] == daemon.proc.pid  # type: ignore[union-attr]


def test_history_switched_off_keeps_no_journal_and_still_streams_live(daemon: DaemonHandle) -> None:
    """``history: {enabled: false}``: no journal folder at all (the journal creates it at start), and the live
    stream still carries every event (it is read from memory, not the journal)."""
    daemon.write_config(PROGRAMS, extra="history: {enabled: false, sample_interval: 0.2s}")
    daemon.start()
    follower = Follower(daemon)
    try:
        wait_for(lambda: follower.lines, 15, "the stream's snapshot")
        assert daemon.cli("ctl", "stop", "two").returncode == 0
        wait_for(
            lambda: any(e.get("name") == "two" and e.get("new") == "STOPPED" for e in follower.lines),
            15,
            "the stop on the live stream",
        )
        assert not (daemon.state_dir / "history").exists()
    finally:
        follower.stop()


def test_an_exit_is_kept_with_how_long_the_child_ran_and_its_last_lines(daemon: DaemonHandle) -> None:
    """Issue 19: an exit is kept with its code, the child's run time and its last lines (from memory: the
    journal has them even after the log rotated away)."""
    script = "echo starting; echo 'could not connect to server' >&2; sleep 0.3; exit 3"
    daemon.write_config(f"programs:\n  flaky: {{command: [sh, -c, {script!r}], autorestart: never}}\n")
    daemon.start()

    def exit_event() -> dict[str, Any] | None:
        return next((e for e in _journal(daemon.state_dir) if e.get("exit_code") == 3), None)

    event = wait_for(exit_event, 20, "the exit in the journal")
    assert event["name"] == "flaky" and event["ran_s"] > 0, event
    assert event["last_lines"] == ["starting", "could not connect to server"], event


def test_a_reload_is_kept_with_the_config_files_diff_and_no_secret_in_it(daemon: DaemonHandle) -> None:
    """Issue 19: a reload is kept with the config diff (from the running file to the reloaded one), redacted
    like every event: the changed line shows, the secret on the line beside it does not."""
    body = "programs:\n  one:\n    command: sleep 1000\n    env: {API_PASSWORD: hunter2-0451}\n"
    daemon.write_config(body)
    daemon.start()
    daemon.write_config(body.replace("sleep 1000", "sleep 2000"))
    assert daemon.cli("reload").returncode == 0

    def reloaded() -> dict[str, Any] | None:
        return next((e for e in _journal(daemon.state_dir) if e["type"] == "ConfigReloaded"), None)

    event = wait_for(reloaded, 20, "the reload in the journal")
    assert event["changed"] == ["one"]
    diff = event["diff"]
    assert "-    command: sleep 1000\n" in diff and "+    command: sleep 2000\n" in diff, diff
    assert "API_PASSWORD" in diff and "hunter2-0451" not in diff, diff
