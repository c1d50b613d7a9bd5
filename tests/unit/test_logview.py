"""Reading logs by name: the pipeline's share of the daemon log, tails of big files, raw bytes, following."""

from __future__ import annotations

import json
from pathlib import Path

from foss_supervisor.core.logview import PIPELINE, Follower, LogSource, follow, select_sources, tail


def _record(logger: str, event: str) -> str:
    return json.dumps({"event": event, "logger": logger}) + "\n"


def test_pipeline_source_keeps_only_the_pipeline_lines(tmp_path: Path) -> None:
    (tmp_path / "foss-supervisor.log").write_text(
        _record("foss_supervisor.daemon", "daemon_starting")
        + "".join(_record("foss_supervisor.pipeline", f"step_{i}") for i in range(5))
        + _record("foss_supervisor.pipelines", "run_finished")
        + "not json at all\n"
        + _record("foss_supervisor.core.supervisor", "program_started")
    )
    sources = select_sources([PIPELINE, "daemon"], {}, tmp_path, {}, {})
    daemon, pipeline = sources  # in a fixed order: programs, then daemon, then pipeline
    assert [json.loads(x)["event"] for x in tail(pipeline, 3)] == ["step_3", "step_4", "run_finished"]
    assert len(tail(daemon, 100)) == 9


def test_tail_of_a_big_file_reads_only_its_end_and_keeps_raw_bytes(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"".join(b"line %d\n" % i for i in range(200_000)) + b"bad \xff\xfe end\n")
    assert tail(LogSource("a", log), 3) == ["line 199998", "line 199999", "bad \\xff\\xfe end"]
    assert tail(LogSource("a", tmp_path / "missing.log"), 3) == []


def test_follow_prefixes_several_sources_and_survives_rotation(tmp_path: Path) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text("old a\n")
    out: list[str] = []
    steps = iter(
        [
            lambda: a.open("a").write("a one\n"),
            lambda: b.write_text("b one\nb tw"),  # b appears after following began; a partial line waits
            lambda: (a.rename(tmp_path / "a.log.1"), a.write_text("a after rotation\n")),
            lambda: b.open("a").write("o\n"),
        ]
    )

    def stop() -> bool:
        step = next(steps, None)
        if step is None:
            return True
        step()
        return False

    follow(
        [Follower(LogSource("a", a), iter), Follower(LogSource("bb", b), iter)], write=out.append, stop=stop, poll_s=0
    )
    assert out == ["a  | a one\n", "bb | b one\n", "a  | a after rotation\n", "bb | b two\n"]
