"""``why``: the cause chain of a state, from what the daemon saw (a real daemon, real failing programs)."""

from __future__ import annotations

import json
import os

from helpers import DaemonHandle, command, wait_for

PROGRAMS = """
programs:
  db: {command: "sh -c 'echo data directory has wrong ownership >&2; exit 1'", start_retries: 2}
  api: {command: "sleep 1000", depends_on: [db]}
  web: {command: "sleep 1000"}
  cli: {command: "sleep 1000"}
"""


def _why(daemon: DaemonHandle, name: str) -> tuple[int, dict[str, object], str]:
    as_json = daemon.cli("why", name, "--json")
    text = daemon.cli("why", name)
    assert as_json.returncode == text.returncode, (as_json.stderr, text.stderr)
    return text.returncode, json.loads(as_json.stdout), text.stdout.strip()


def test_why_follows_a_dependency_to_the_exit_that_explains_it_and_names_who_stopped_what(
    daemon: DaemonHandle,
) -> None:
    daemon.write_config(PROGRAMS)
    daemon.start(wait_ready=False)
    daemon.wait_ready(30)
    wait_for(lambda: daemon.program("db")["state"] == "FATAL", 30, "db FATAL")
    assert command(daemon.port, "stop", {"names": ["web"]}).status == 200
    assert daemon.cli("ctl", "stop", "cli").returncode == 0

    code, reply, text = _why(daemon, "api")
    assert code == 3 and reply["as_wanted"] is False
    chain = reply["chain"]
    assert isinstance(chain, list) and chain[0] == "api STOPPED" and " <- ".join(chain) == text
    db_at = chain.index("depends on db, which is FATAL")
    assert chain[db_at + 1] == "db FATAL"
    assert "exited 3 times in" in text and text.count("last: exit 1") == 1
    assert "last lines: data directory has wrong ownership" in text

    uid = os.getuid()
    code, reply, text = _why(daemon, "web")
    assert code == 0 and reply["as_wanted"] is True
    assert text.startswith(f"web STOPPED (as wanted) <- stop requested by uid {uid} via web")
    code, reply, text = _why(daemon, "cli")
    assert text.startswith(f"cli STOPPED (as wanted) <- stop requested by uid {uid} via control")
    unknown = daemon.cli("why", "nope")
    assert unknown.returncode != 0 and "nothing named 'nope': not a program" in unknown.stderr

    # who stopped them outlives the daemon: a new one says so from the operator's kept wish
    assert daemon.cli("stop").returncode == 0
    daemon.start(wait_ready=False)
    daemon.wait_ready(30)
    _, _, text = _why(daemon, "cli")
    assert text.startswith(f"cli STOPPED (as wanted) <- stopped by hand by uid {uid} via control at "), text
    _, _, text = _why(daemon, "web")
    assert text.startswith(f"web STOPPED (as wanted) <- stopped by hand by uid {uid} via web at "), text


CHAIN = """
programs:
  db: {command: "sleep 1000", start_timeout: 0.6}
  cache: {command: "sleep 1000", start_timeout: 0.2}
  api: {command: "sleep 1000", depends_on: [db, cache], start_timeout: 0.3}
  idle: {command: "sleep 1000", autostart: false}
"""


def test_analyze_gives_the_chain_a_dependent_waited_through(daemon: DaemonHandle) -> None:
    daemon.write_config(CHAIN)
    daemon.start()
    wait_for(lambda: daemon.program("api")["state"] == "RUNNING", 30, "api RUNNING")
    reply = json.loads(daemon.cli("analyze", "--json").stdout)
    times = {p["name"]: p for p in reply["programs"]}
    assert times["idle"]["offset_s"] is None  # not wanted running: listed, and not waited for
    assert reply["total_s"] == max(t["offset_s"] for t in times.values() if t["offset_s"] is not None)
    # api spawned only once both were RUNNING: it became RUNNING after each of them
    assert times["api"]["offset_s"] > max(times["db"]["offset_s"], times["cache"]["offset_s"])
    chain = [p["name"] for p in reply["chain"]]
    assert chain[0] == "api" and chain[1] in ("db", "cache") and len(chain) == 2
    text = daemon.cli("analyze", "startup", "--all").stdout.splitlines()
    assert (
        text[0] == f"startup finished in {reply['total_s']:.3f}s (from the daemon's start to the last program RUNNING)"
    )
    assert text[-2].startswith("api @") and text[-1].startswith(f"└─{chain[1]} @")
