"""A daemon whose state dir is too deep for ``<state_dir>/control.sock`` starts on a short control socket,
and the CLI finds it (the parsing side is tests/unit/test_paths_and_writers.py)."""

from __future__ import annotations

from helpers import PY, DaemonHandle, deep_dir


def test_a_daemon_with_a_deep_state_dir_starts_and_answers(daemon: DaemonHandle) -> None:
    daemon.state_dir = deep_dir(daemon.tmp, 120)
    daemon.write_config(f"programs:\n  idle: {{command: ['{PY}', '-c', 'import time; time.sleep(60)']}}\n")
    daemon.start()
    result = daemon.cli("status")
    assert result.returncode == 0 and "idle" in result.stdout, result.stderr
