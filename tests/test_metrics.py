"""/metrics as Prometheus reads it: the exposition parses (prometheus_client's own parser), every name follows
Prometheus naming (what ``promtool check metrics`` checks: counters end in ``_total``, base units end the
name), monotonic totals are counters, for any data the commands may return (hypothesis), and a real daemon's
counters only grow.
"""

from __future__ import annotations

import re
import urllib.request
from typing import Any

from conftest import PY, DaemonHandle, owner_headers, wait_for
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from foss_supervisor.pipeline.states import RunStatus, StepState
from foss_supervisor.web.metrics import PROGRAM_STATES, VERDICTS, exposition

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# words that say a unit, and the base-unit suffix Prometheus wants the name to end with
_UNITS = {
    r"(duration|uptime|latency|age|seconds|time)": ("_seconds", "_timestamp_seconds", "_seconds_total"),
    r"(bytes|memory|size)": ("_bytes", "_bytes_total"),
}
_MONOTONIC_WORDS = ("spawns", "starts", "runs_finished", "runs", "restarts")  # totals that only grow


def lint(text: str) -> list[str]:
    """What ``promtool check metrics`` would object to in ``text``, plus our own prefix and unit rules."""
    problems = []
    for family in text_string_to_metric_families(text):  # raises on text that does not parse
        name, kind = family.name, family.type
        if not _NAME.fullmatch(name) or not name.startswith(("foss_supervisor_", "process_")):
            problems.append(f"{name}: not a foss_supervisor_ name")
        if not family.documentation:
            problems.append(f"{name}: no HELP")
        samples = {s.name for s in family.samples}
        if kind == "counter" and not all(s.endswith(("_total", "_created")) for s in samples):
            problems.append(f"{name}: counter samples {samples} must end in _total")
        if kind == "gauge" and name.endswith(("_total", "_count", "_sum", "_bucket")):
            problems.append(f"{name}: a gauge named like a counter or histogram")
        if kind == "gauge" and any(word in name for word in _MONOTONIC_WORDS) and "last_run" not in name:
            problems.append(f"{name}: a monotonic total typed gauge")
        if re.search(r"(_rate|percent)$", name):
            problems.append(f"{name}: a 0..1 value is a _ratio")
        for words, suffixes in _UNITS.items():
            if re.search(words, name) and not name.endswith(suffixes) and kind != "counter":
                problems.append(f"{name}: a unit word without its base unit at the end {suffixes}")
    return problems


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if isinstance(s, Sample) and s.name == name:
                found[tuple(sorted(s.labels.items()))] = s.value
    return found


LABEL = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=20)
COUNT = st.integers(0, 10**9)
SECONDS = st.none() | st.floats(0, 1e9, allow_nan=False)


TREES = st.fixed_dictionaries(
    {
        "pid": st.none() | st.integers(1, 2**22),
        "processes": st.integers(0, 10**4),
        "rss_bytes": st.integers(0, 2**50),
        "cpu_percent": st.none() | st.floats(0, 12800),
        "window_s": st.none() | st.floats(1, 1e6),
    }
)


@st.composite
def scrapes(draw: st.DrawFn) -> dict[str, Any]:
    """What the status and pipelines commands may return, with hostile label values."""
    names = draw(st.lists(LABEL, max_size=5, unique=True))
    programs = [
        {
            "name": n,
            "state": draw(st.sampled_from(PROGRAM_STATES)),
            "spawns": draw(COUNT),
            "health": draw(st.sampled_from(["healthy", "unhealthy", "unknown"])),
            "uptime_s": draw(SECONDS),
        }
        for n in names
    ]
    daemon = {
        "phase": draw(st.sampled_from(["starting", "ready", "reloading", "stopping"])),
        "health": draw(st.sampled_from(VERDICTS)),
        "problems": draw(st.lists(LABEL, max_size=3)),
        "warnings": draw(st.lists(LABEL, max_size=3)),
    }
    status: dict[str, Any] = {"daemon": daemon, "programs": programs}
    if draw(st.booleans()):
        status["pipelines"] = {"worker": {"starts": draw(COUNT)}}
    pipelines = []
    for name in draw(st.lists(LABEL, max_size=3, unique=True)):
        step_names = draw(st.lists(LABEL, min_size=1, max_size=3, unique=True))
        steps = [
            {
                "name": s,
                "rows_out": draw(st.none() | COUNT),
                "duration_s": draw(SECONDS),
                "state": draw(st.sampled_from([x.value for x in StepState])),
            }
            for s in step_names
        ]
        last = {
            "status": draw(st.sampled_from([x.value for x in RunStatus])),
            "duration_s": draw(SECONDS),
            "finished_at": draw(SECONDS),
            "steps": steps,
        }
        quality = {"run_pass_rate": draw(st.none() | st.floats(0, 1)), "overall_pass_rate": draw(st.floats(0, 1))}
        pipelines.append(
            {
                "name": name,
                "active_run": draw(st.none() | st.just({})),
                "last_run": draw(st.none() | st.just(last)),
                "report": {"quality": quality},
                "runs_finished": draw(st.dictionaries(st.sampled_from([x.value for x in RunStatus]), COUNT)),
            }
        )
    resources = {
        "host": {"cpu_percent": draw(st.none() | st.floats(0, 100))},
        "daemon": draw(TREES),
        "services": draw(st.dictionaries(LABEL, TREES, max_size=2)),
        "worker": draw(st.none() | TREES),
        "programs": {n: draw(TREES) for n in names},
    }
    return {"status": status, "pipelines": pipelines, "resources": resources}


@settings(max_examples=150)
@given(scrapes())
def test_every_scrape_parses_follows_prometheus_naming_and_keeps_its_counts(data: dict[str, Any]) -> None:
    text = exposition(data).decode()
    assert lint(text) == []
    spawns = samples(text, "foss_supervisor_program_spawns_total")
    assert spawns == {(("program", p["name"]),): float(p["spawns"]) for p in data["status"]["programs"]}
    runs = samples(text, "foss_supervisor_pipeline_runs_total")
    for p in data["pipelines"]:
        for status in RunStatus:
            assert runs[(("pipeline", p["name"]), ("status", status.value))] == p["runs_finished"].get(status.value, 0)
    verdict = samples(text, "foss_supervisor_health_status")
    assert {dict(k)["status"]: v for k, v in verdict.items()} == {
        v: float(v == data["status"]["daemon"]["health"]) for v in VERDICTS
    }


def test_the_linter_catches_what_prometheus_naming_forbids() -> None:
    """The check above can fail: the mistakes of the old exposition are each caught."""
    bad = (
        "# HELP foss_supervisor_program_spawns times spawned\n# TYPE foss_supervisor_program_spawns gauge\n"
        'foss_supervisor_program_spawns{program="a"} 3.0\n'
        "# HELP foss_supervisor_pipeline_quality_pass_rate ok\n"
        "# TYPE foss_supervisor_pipeline_quality_pass_rate gauge\n"
        "foss_supervisor_pipeline_quality_pass_rate 0.5\n"
        "# HELP foss_supervisor_program_uptime up\n# TYPE foss_supervisor_program_uptime gauge\n"
        "foss_supervisor_program_uptime 1.0\n"
    )
    assert len(lint(bad)) == 3


def _metrics(port: int) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=owner_headers(port))
    with urllib.request.urlopen(request, timeout=10) as resp:
        return str(resp.read().decode())


def test_a_real_daemons_counters_are_counters_and_only_grow(daemon: DaemonHandle) -> None:
    code = "import time; time.sleep(300)"
    daemon.write_config(f"programs:\n  app: {{command: [{PY!r}, '-c', {code!r}], start_timeout: 0.1}}\n")
    daemon.start()
    text = _metrics(daemon.port)
    assert lint(text) == []
    key = (("program", "app"),)
    first = samples(text, "foss_supervisor_program_spawns_total")[key]
    for _ in range(3):
        daemon.call("restart", names=["app"])
    wait_for(lambda: daemon.program("app")["state"] == "RUNNING", 10, "app running again")
    after = samples(_metrics(daemon.port), "foss_supervisor_program_spawns_total")[key]
    assert (first, after) == (1.0, 4.0)
