"""The start-up's critical chain (commands/analyze.py) from generated event sequences."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from foss_supervisor.cli.analyze import format_chain
from foss_supervisor.commands.analyze import _from_journal, critical_chain, startup_times

T0 = 1_000.0


@st.composite
def startups(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Programs p0..pN, each depending on some earlier ones, started once its dependencies are RUNNING."""
    n = draw(st.integers(1, 8))
    depends = {
        f"p{i}": sorted(draw(st.sets(st.sampled_from([f"p{j}" for j in range(i)]), max_size=3)) if i else set())
        for i in range(n)
    }
    running: dict[str, float] = {}
    events = []
    for name, deps in depends.items():
        spawn = max([running[d] for d in deps], default=T0) + draw(st.floats(0, 1))
        running[name] = spawn + draw(st.floats(0.001, 5))
        events += [
            {"type": "StateChanged", "name": name, "new": "STARTING", "at": spawn},
            {"type": "StateChanged", "name": name, "new": "RUNNING", "at": running[name]},
        ]
    return sorted(events, key=lambda e: e["at"]), depends


@given(startups())
def test_the_chain_ends_at_the_last_ready_and_each_link_is_a_dependency_ready_before_it(
    case: tuple[list[dict[str, Any]], dict[str, list[str]]],
) -> None:
    events, depends = case
    times = startup_times(events, T0, depends)
    chain = critical_chain(times, depends)
    assert chain[0]["offset_s"] == max(t["offset_s"] for t in times.values())
    for later, earlier in itertools.pairwise(chain):
        assert earlier["name"] in depends[later["name"]]
        assert earlier["offset_s"] <= later["offset_s"] - later["duration_s"] + 0.002  # each rounded to 1 ms
    assert not depends[chain[-1]["name"]] or all(
        times[d]["offset_s"] < chain[-1]["offset_s"] for d in depends[chain[-1]["name"]]
    )
    assert all(t["duration_s"] >= 0 for t in times.values())


def test_a_program_not_yet_running_leaves_the_total_open_and_is_listed() -> None:
    events = [
        {"type": "StateChanged", "name": "db", "new": "STARTING", "at": T0 + 0.1},
        {"type": "StateChanged", "name": "db", "new": "RUNNING", "at": T0 + 1.1},
        {"type": "StateChanged", "name": "api", "new": "STARTING", "at": T0 + 1.2},
        {"type": "StateChanged", "name": "api", "new": "BACKOFF", "at": T0 + 1.3},
        {"type": "StateChanged", "name": "api", "new": "STARTING", "at": T0 + 2.3},
    ]
    depends = {"db": [], "api": ["db"]}
    times = startup_times(events, T0, depends)
    assert times["api"] == {"name": "api", "offset_s": None, "duration_s": None}
    assert [t["name"] for t in critical_chain(times, depends)] == ["db"]
    reply = {"total_s": None, "programs": list(times.values()), "chain": critical_chain(times, depends)}
    text = format_chain(reply, every=True)
    assert text[0] == "startup not finished: some programs are not RUNNING yet"
    assert "         - api (not RUNNING)" in text and text[-1] == "db @1.100s +1.000s"


def test_a_log_that_dropped_the_first_events_is_completed_from_the_journal(tmp_path: Path) -> None:
    """This run's events from the journal's files, the ones only in memory after them, each once."""

    def line(boot: str, seq: int, at: float) -> str:
        return json.dumps({"type": "StateChanged", "at": at, "boot": boot, "seq": seq}, separators=(",", ":"))

    day = dt.datetime.fromtimestamp(T0, dt.UTC).date().isoformat()
    (tmp_path / f"events-{day}.jsonl").write_text(
        "\n".join([line("old", 1, T0 - 5), line("run", 1, T0 + 1), line("run", 2, T0 + 2), '{"at": 3, "bo']) + "\n"
    )
    kept = [{"at": T0 + 2, "boot": "run", "seq": 2, "kept": True}, {"at": T0 + 3, "boot": "run", "seq": 3}]
    events = _from_journal(tmp_path, "run", T0, kept)
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert "kept" not in events[1]  # the journal's copy of an event both hold


def test_a_runs_chain_goes_from_the_step_that_ended_last_through_its_slowest_dependency() -> None:
    """A run of four steps (a; b and c after a; d after b and c), read from its record as the history keeps it:
    ``@`` is when each step ended from the run's start, ``+`` how long it ran; ``skip`` never ran."""
    from foss_supervisor.commands.analyze import run_step_times

    steps = [
        {"name": "a", "started_at": T0 + 0.5, "duration_s": 1.0},
        {"name": "b", "started_at": T0 + 1.5, "duration_s": 0.5},
        {"name": "c", "started_at": T0 + 1.5, "duration_s": 3.0},
        {"name": "d", "started_at": T0 + 4.5, "duration_s": 0.25},
        {"name": "skip", "started_at": None, "duration_s": None},
    ]
    depends = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "skip": ["d"]}
    times = run_step_times({"started_at": T0, "steps": steps}, depends)
    assert times["c"] == {"name": "c", "offset_s": 4.5, "duration_s": 3.0}
    assert times["skip"] == {"name": "skip", "offset_s": None, "duration_s": None}
    assert [t["name"] for t in critical_chain(times, depends)] == ["d", "c", "a"]
    reply = {"run_id": "r1", "pipeline": "p", "status": "succeeded", "total_s": 4.75, "steps": list(times.values())}
    lines = format_chain(reply | {"chain": critical_chain(times, depends)}, every=True)
    assert lines[0] == "run r1 of p succeeded in 4.750s"
    assert "    3.000s c" in lines and "         - skip (did not run)" in lines
    assert lines[-3:] == ["d @4.750s +0.250s", "└─c @4.500s +3.000s", "  └─a @1.500s +1.000s"]
