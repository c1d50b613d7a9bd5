"""What a real daemon and its DuckDB worker write is theirs alone (files 0600, directories 0700), while the
programs they supervise keep the umask the operator started the daemon with, or their own ``umask``."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import yaml
from helpers import PY, DaemonHandle, wait_for

# writes a file in its cwd and prints the umask it was given
PROGRAM = (
    "import os, time; m = os.umask(0); os.umask(m); open('made', 'w').close(); "
    "print('umask', oct(m), flush=True); time.sleep(300)"
)


def _loose(root: Path) -> dict[str, str]:
    """Every path under ``root`` that a user other than the owner may read or enter, with its mode."""
    out = {}
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if not stat.S_ISSOCK(mode) and not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & 0o077:
            out[str(path.relative_to(root))] = oct(stat.S_IMODE(mode))
    return out


def test_daemon_and_worker_files_are_private_and_programs_keep_the_operators_umask(daemon: DaemonHandle) -> None:
    work, own = daemon.tmp / "work", daemon.tmp / "own"
    work.mkdir(mode=0o755)
    own.mkdir(mode=0o755)
    work.chmod(0o755)
    own.chmod(0o755)
    programs = {
        "plain": {"command": [PY, "-c", PROGRAM], "cwd": str(work), "start_timeout": 0.1},
        "strict": {"command": [PY, "-c", PROGRAM], "cwd": str(own), "umask": "027", "start_timeout": 0.1},
    }
    daemon.write_config(
        yaml.safe_dump({"programs": programs, "pipelines": {"orders": {"on_new_files": False, "demo_data": False}}})
    )
    before = os.umask(0o022)  # the operator's, inherited by the daemon
    try:
        daemon.start()
    finally:
        os.umask(before)
    ran = daemon.cli("pipeline", "run", "orders", "--wait")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    wait_for(lambda: (work / "made").exists() and (own / "made").exists(), 20, "the programs wrote their files")
    logs = daemon.call("logs", names=["plain", "strict"], lines=5)["lines"]
    assert logs == {"plain": ["umask 0o22"], "strict": ["umask 0o27"]}
    assert stat.S_IMODE((work / "made").stat().st_mode) == 0o644  # the operator's umask
    assert stat.S_IMODE((own / "made").stat().st_mode) == 0o640  # the program's own
    written = {p.name for p in daemon.state_dir.rglob("*")}
    assert {"foss-supervisor.log", "api-token", "plain.log", "strict.log"} <= written
    assert any(name.endswith((".duckdb", ".db")) for name in written), written  # the worker's warehouse
    assert _loose(daemon.state_dir) == {}
