"""The one atomic file replacement: unique temporary files, private until renamed, nothing left on failure,
and what a killed writer left found and removed."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from foss_supervisor.base.atomicfile import atomic_write, remove_stray_temps, stray_temps


def test_racing_writers_of_one_file_never_collide(tmp_path: Path) -> None:
    target = tmp_path / "config.yaml"
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def writer(n: int) -> None:
        barrier.wait(timeout=10)
        try:
            for i in range(50):
                atomic_write(target, f"writer {n} round {i}\n" * 100)
        except BaseException as exc:  # collected for the assert below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    lines = set(target.read_text().splitlines())
    assert len(lines) == 1 and next(iter(lines)).startswith("writer ")  # one whole version, never a mix
    assert stray_temps(tmp_path) == []


def test_the_mode_is_applied_and_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "units.service"
    atomic_write(target, "old\n", mode=0o644)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    atomic_write(target, b"secret\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_bytes() == b"secret\n"
    blocked = tmp_path / "dir-in-the-way"
    blocked.mkdir()
    (blocked / "x").write_text("keeps the folder non-empty")
    with pytest.raises(OSError):
        atomic_write(blocked, "cannot replace a folder")
    assert stray_temps(tmp_path) == [] and (blocked / "x").exists()


def test_a_killed_writers_temp_files_are_found_and_removed_but_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "config.yaml"
    target.write_text("programs: {}\n")
    strays = [tmp_path / ".config.yaml.4242.tmp", tmp_path / ".config.yaml.a1b2c3d4e5f6.tmp"]
    others = [tmp_path / ".other.yaml.1.tmp", tmp_path / "config.yaml.tmp", tmp_path / ".config.yaml.1.part"]
    for path in (*strays, *others):
        path.write_text("API_TOKEN: hunter2\n")
    (tmp_path / ".config.yaml.folder.tmp").mkdir()  # not a regular file: left alone
    assert stray_temps(tmp_path, "config.yaml") == sorted(strays)
    assert remove_stray_temps(tmp_path, "config.yaml") == sorted(strays)
    assert all(p.exists() for p in others) and not any(p.exists() for p in strays)
    assert remove_stray_temps(tmp_path) == [tmp_path / ".other.yaml.1.tmp"]  # any name, in a folder of ours
    assert remove_stray_temps(tmp_path / "missing") == []


@settings(max_examples=examples(40), deadline=None)
@given(data=st.binary(max_size=4096), mode=st.sampled_from([0o600, 0o640, 0o644]))
def test_any_bytes_land_whole_with_their_mode(tmp_path_factory: pytest.TempPathFactory, data: bytes, mode: int) -> None:
    folder = tmp_path_factory.mktemp("aw")
    target = folder / "f"
    atomic_write(target, data, mode=mode, durable=False)
    assert target.read_bytes() == data and stat.S_IMODE(os.stat(target).st_mode) == mode
    assert stray_temps(folder) == []
