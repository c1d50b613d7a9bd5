"""Replace a file in one rename, never leaving half a file or a readable temporary copy behind (stdlib only).

:func:`atomic_write` is the one way foss-supervisor replaces a file: the new content goes to a temporary
file of a name no other writer uses (``.<name>.<random>.tmp`` in the same folder, created exclusively
with mode 0600, so a secret in it is never readable by others, even for a moment), is flushed and
``fsync``'d when ``durable``, gets its final mode, and is renamed over the target; with ``durable`` the
folder is ``fsync``'d too, so the rename itself survives a power cut. Two writers of the same file
never share a temporary file: the last rename wins and neither fails.

:func:`atomic_publish` is the same for a file another writer makes (DuckDB's ``COPY ... TO``): it is given the
temporary path, and the file it leaves there is fsync'd and renamed the same way.

A process killed between create and rename leaves its temporary file; :func:`remove_stray_temps`
removes them (a daemon calls it at start, under its lock, before it writes anything).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

__all__ = ["TEMP_SUFFIX", "atomic_publish", "atomic_write", "fsync_dir", "remove_stray_temps", "stray_temps"]

TEMP_SUFFIX = ".tmp"
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
T = TypeVar("T")


def _temp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}")


def atomic_write(
    path: Path, data: bytes | str, *, mode: int = 0o600, durable: bool = True, owner: tuple[int, int] | None = None
) -> None:
    """Replace ``path`` with ``data`` (str is written as UTF-8) in one rename.

    ``mode`` is the file's final permission bits (the temporary file is 0600 until then); ``owner``
    (uid, gid) its owner, set before the rename (a root daemon saving a user's file keeps it theirs).
    ``durable`` fsyncs the file before and the folder after the rename (a config, a generation);
    without it (files that only matter while this boot lasts, written on the supervision loop)
    the rename is still atomic for readers but may be lost in a power cut. Raises OSError
    (full disk, permissions) and then the old file is untouched and no temporary file is left.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data

    def write(tmp: Path) -> None:
        fd = os.open(tmp, _CREATE, 0o600)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            if owner is not None:
                os.fchown(fd, *owner)  # before the mode: a chown clears set-id bits
            if mode != 0o600:
                os.fchmod(fd, mode)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)

    _swap_in(path, write, durable)


def atomic_publish(path: Path, make: Callable[[Path], T], *, durable: bool = True) -> T:
    """Have ``make(tmp)`` write a file at a temporary path beside ``path`` (a name no other writer uses, which
    does not exist yet), then replace ``path`` with it in one rename, as :func:`atomic_write` does; returns what
    ``make`` returned. ``durable``: the file is fsync'd before the rename and the folder after. Whatever ``make``
    raises (and OSError from the fsync or the rename) propagates with the temporary file removed and ``path``
    untouched. The file keeps the mode its writer gave it; a symlink is published the same way (``make`` calls
    ``os.symlink(target, tmp)``): readers of ``path`` see the old link or the new, never none."""

    def written(tmp: Path) -> T:
        made = make(tmp)
        if durable and not tmp.is_symlink():  # a symlink is all in its folder's entry, fsync'd by _swap_in
            fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return made

    return _swap_in(path, written, durable)


def _swap_in(path: Path, write: Callable[[Path], T], durable: bool) -> T:
    """The one rename of both: ``write`` makes the file at a fresh temporary name beside ``path``, which then
    replaces ``path``; on any failure the temporary file goes and ``path`` is untouched. ``durable``: the folder
    is fsync'd after the rename."""
    tmp = _temp_name(path)
    try:
        made = write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        fsync_dir(path.parent)
    return made


def fsync_dir(folder: Path) -> None:
    """fsync a folder (its entries: a rename, a new or removed file); a filesystem that cannot is skipped."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # EINVAL on filesystems without directory fsync
            os.fsync(fd)
    finally:
        os.close(fd)


def stray_temps(folder: Path, name: str | None = None) -> list[Path]:
    """The temporary files killed writers left in ``folder``: ``.<name>.<anything>.tmp`` (any name when None).

    Also matches the older ``.<name>.<pid>.tmp`` names. Regular files only, sorted; none when the
    folder cannot be read.
    """
    stem = re.escape(f".{name}.") if name is not None else r"\.[^/]+\."
    pattern = re.compile(stem + r"[^/]+" + re.escape(TEMP_SUFFIX))
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    return sorted(folder / e.name for e in entries if pattern.fullmatch(e.name) and e.is_file(follow_symlinks=False))


def remove_stray_temps(folder: Path, name: str | None = None) -> list[Path]:
    """Remove what :func:`stray_temps` finds; returns the files removed (those that cannot be are skipped).

    Call it only where no other live process writes there (a daemon at start, under its lock).
    """
    removed = []
    for tmp in stray_temps(folder, name):
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed.append(tmp)
    return removed
