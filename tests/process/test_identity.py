"""Identity by proof, never by resemblance: a process is a foss-supervisor only if it holds our PID lock
(``/proc/locks``) and is a live one only if it answers its control socket with that lock's instance id.

Strangers are real processes holding the dashboard port, generated with every likeness to us a command
line or a file can give (our name in argv, ``--config``, an open but unlocked ``foss-supervisor.lock``, a
socket that answers ``ping`` with a forged reply): each is named and left alone, never signalled.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import free_port, kill_tree_by_pid, stranger
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.daemon.instance import bind_dashboard, inspect_instance
from foss_supervisor.errors import PortInUse

ARGV_WORDS = st.sampled_from(
    [
        "foss-supervisor",
        "foss_supervisor",
        "-m",
        "start",
        "--foreground",
        "--config",
        "/srv/foss-supervisor-docs",
        "--root",
        "docs",
        "serve",
        "python3",
        "x",
    ]
)


@pytest.fixture
def lock_dir(tmp_path: Path) -> Iterator[Path]:
    short = Path(f"/tmp/fs-id-{os.getpid()}-{tmp_path.name[-12:]}")  # a control socket path fits in 108 bytes
    short.mkdir()
    try:
        yield short
    finally:
        for child in short.iterdir():
            child.unlink()
        short.rmdir()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(ARGV_WORDS, max_size=6), st.booleans(), st.booleans(), st.booleans())
def test_a_stranger_holding_the_port_is_named_and_never_signalled(
    lock_dir: Path, words: list[str], opens_lock: bool, answers: bool, locks_other: bool
) -> None:
    for child in lock_dir.iterdir():
        child.unlink()
    port = free_port()
    proc, marks = stranger(lock_dir, port, ["foss-supervisor", *words], opens_lock, answers, locks_other)
    try:
        assert not inspect_instance(proc.pid, grace_s=0.5).ours
        with pytest.raises(PortInUse) as refused:
            bind_dashboard("127.0.0.1", port, take_over=False)
        assert f"pid {proc.pid}" in str(refused.value) and "foss-supervisor" in str(refused.value)
        assert proc.poll() is None and not marks.exists()
    finally:
        kill_tree_by_pid(proc.pid)
        proc.wait(timeout=10)


def test_a_stranger_is_stopped_only_when_asked_to_take_the_port_over(lock_dir: Path) -> None:
    port = free_port()
    proc, marks = stranger(lock_dir, port, ["foss-supervisor"], True, True, False)
    try:
        sock = bind_dashboard("127.0.0.1", port, take_over=True)
        sock.close()
        assert marks.read_text() == "SIGTERM\n"  # it ignores SIGTERM: then SIGKILL
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        kill_tree_by_pid(proc.pid)
        proc.wait(timeout=10)
