"""The one atomic file replacement: unique temporary files, private until renamed, nothing left on failure,
and what a killed writer left found and removed."""

from __future__ import annotations

import ast
import os
import stat
import threading
from pathlib import Path

import pytest
from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from foss_supervisor.base.atomicfile import atomic_publish, atomic_write, remove_stray_temps, stray_temps


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


class _Refused(Exception):
    pass


def test_a_file_another_writer_makes_is_published_in_one_rename_or_not_at_all(tmp_path: Path) -> None:
    """atomic_publish: the writer gets a fresh path beside the target; what it leaves there replaces the
    target; a writer that raises, or leaves nothing, changes nothing and leaves no temporary file."""
    target = tmp_path / "out.parquet"
    target.write_bytes(b"old")
    seen: list[Path] = []

    def make(tmp: Path) -> int:
        assert tmp.parent == tmp_path and not tmp.exists() and tmp != target
        seen.append(tmp)
        tmp.write_bytes(b"new rows")
        return 2

    assert atomic_publish(target, make) == 2
    assert target.read_bytes() == b"new rows" and not seen[0].exists()

    def fails(tmp: Path) -> int:
        tmp.write_bytes(b"half")
        raise _Refused

    with pytest.raises(_Refused):
        atomic_publish(target, fails)
    with pytest.raises(FileNotFoundError):  # the writer made no file: nothing to publish
        atomic_publish(target, lambda tmp: 0)
    assert target.read_bytes() == b"new rows"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet"]


def test_a_symlink_is_switched_in_one_rename(tmp_path: Path) -> None:
    """What a published set's ``current`` link needs: readers see the old target or the new, never no link."""
    link = tmp_path / "current"
    link.symlink_to("runs/a")
    atomic_publish(link, lambda tmp: os.symlink("runs/b", tmp))
    assert os.readlink(link) == "runs/b" and sorted(p.name for p in tmp_path.iterdir()) == ["current"]


#: the renames that are no file's new content: a staged folder made whole (a published run, a snapshot), an
#: unreadable state file set aside for a look
_RENAMES_OF_ANOTHER_KIND = {
    "pipeline/engine/publish.py": "a staged run folder made whole",
    "pipeline/engine/snapshots.py": "a staged snapshot folder made whole",
    "alerting/alertwatch.py": "an unreadable alerts file set aside",
}


def test_a_file_is_replaced_only_through_this_module() -> None:
    """Every rename in the package (os.replace, os.rename, shutil.move, Path.replace/.rename) is in
    base/atomicfile.py, or is one of the few above that move something whole that was never written in place (each
    says why)."""
    from helpers.sources import PACKAGE, package_sources

    found = set()
    for source in package_sources():
        where = str(source.path.relative_to(PACKAGE))
        for node in source.nodes:
            call = node.func if isinstance(node, ast.Call) else None
            if isinstance(call, ast.Attribute) and call.attr in ("replace", "rename", "move"):
                on = ast.unparse(call.value)
                if on in ("os", "shutil") or _path_move(node, on):
                    found.add(where)
    assert found - {"base/atomicfile.py"} == set(_RENAMES_OF_ANOTHER_KIND)


def _path_move(node: ast.Call, on: str) -> bool:
    """``p.replace(q)`` or ``p.rename(q)``: one argument and no keyword (str.replace takes two,
    dataclasses.replace keywords)."""
    return on != "dataclasses" and len(node.args) == 1 and not node.keywords
