"""One daemon per config file (:mod:`foss_supervisor.base.configlock`): the lock names where the daemon of a
file runs while it is held, and refuses a second holder naming the first (on a real daemon:
tests/e2e/test_config_move_daemon.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from foss_supervisor.base import configlock
from foss_supervisor.errors import DaemonError

NAMES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1, max_size=40)


@settings(max_examples=examples(50), deadline=None)
@given(config_name=NAMES, state_name=NAMES)
def test_a_second_daemon_for_one_config_file_is_refused_naming_the_first(
    config_name: str, state_name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("lock")
    config, state = folder / config_name, folder / "states" / state_name

    def lock_of(file: Path) -> configlock.ConfigLock:  # the lock in this test's folder
        return configlock.ConfigLock(file, folder=folder / "run")

    (folder / "run").mkdir()
    first = lock_of(config)
    assert first.running_state_dir() is None
    first.acquire(state)
    try:
        assert lock_of(config).running_state_dir() == state
        # the same file under another spelling is the same file
        assert lock_of(folder / "." / config_name).running_state_dir() == state
        with pytest.raises(DaemonError, match=r"(?s)runs .* with the state dir"):  # (?s): a name may hold \n
            lock_of(config).acquire(folder / "elsewhere")
        assert lock_of(config).running_state_dir() == state  # the refused one changed nothing
        assert lock_of(folder / "other.yaml").running_state_dir() is None
    finally:
        first.release()
    assert lock_of(config).running_state_dir() is None
    second = lock_of(config)
    second.acquire(folder / "elsewhere")  # free again once the first is gone
    second.release()
    assert not list((folder / "run").iterdir())  # nothing left behind


def test_the_lock_file_is_private(tmp_path: Path) -> None:
    lock = configlock.ConfigLock(tmp_path / "config.yaml", folder=tmp_path)
    lock.acquire(tmp_path / "state")
    try:
        assert lock.path.stat().st_mode & 0o777 == 0o600
    finally:
        lock.release()
