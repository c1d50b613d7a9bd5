"""/metrics as Prometheus reads it: the exposition parses (prometheus_client's own parser), every name follows
Prometheus naming (what ``promtool check metrics`` checks: counters end in ``_total``, base units end the
name), monotonic totals are counters, for any data the commands may return (hypothesis). A real daemon's counters:
tests/e2e/test_metrics_daemon.py.
"""

from __future__ import annotations

from typing import Any

from helpers import examples
from helpers.prometheus import lint, samples
from hypothesis import given, settings
from hypothesis import strategies as st

from foss_supervisor.base.pipelinestates import RunStatus, StepState
from foss_supervisor.web.metrics import PROGRAM_STATES, VERDICTS, exposition

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
                "step_trends": {
                    s: {"regressed": draw(st.booleans()), "ratio": draw(st.none() | st.floats(0, 100))}
                    for s in step_names
                },
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


@settings(max_examples=examples(150))
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
    regressed = samples(text, "foss_supervisor_pipeline_step_regressed")
    for p in data["pipelines"]:
        for step, trend in p["step_trends"].items():
            assert regressed[(("pipeline", p["name"]), ("step", step))] == float(trend["regressed"])
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
