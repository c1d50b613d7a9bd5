"""Identity by proof against a real daemon: ``start`` leaves a foreign server named like us alone, and
``ping`` gives the instance id written in the lock."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import DaemonHandle, kill_tree_by_pid, stranger

from foss_supervisor.base.pidfile import PidFile, answers_as_holder


def test_start_leaves_a_foreign_server_named_like_us_alone(daemon: DaemonHandle, tmp_path: Path) -> None:
    """Repro 26: a docs server run from /srv/foss-supervisor-docs held the dashboard port; `start` SIGTERMed
    it as a "stale instance". Now it is named and left alone, and `start` fails."""
    proc, marks = stranger(tmp_path, daemon.port, ["--root", "/srv/foss-supervisor-docs"], False, False, False)
    try:
        daemon.write_config()
        result = daemon.cli("start")
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"pid {proc.pid}" in result.stderr and "/srv/foss-supervisor-docs" in result.stderr
        assert "--take-over-port" in result.stdout + result.stderr
        assert proc.poll() is None and not marks.exists()
        log = daemon.state_dir / "foss-supervisor.log"
        events = [json.loads(line)["event"] for line in log.read_text().splitlines()] if log.exists() else []
        assert "port_holder_stopping" not in events and "port_held_by_another_program" in events
    finally:
        kill_tree_by_pid(proc.pid)
        proc.wait(timeout=10)


def test_ping_gives_the_instance_id_written_in_the_lock(daemon: DaemonHandle) -> None:
    daemon.write_config()
    daemon.start()
    pidfile = PidFile(daemon.state_dir / "foss-supervisor.pid")
    pong = daemon.ping()
    assert daemon.proc is not None and pidfile.holders() == {daemon.proc.pid}
    assert pong is not None and pong["instance"] == pidfile.recorded_instance() and answers_as_holder(pong, pidfile)
