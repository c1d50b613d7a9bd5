"""Earlier versions of the config file: one kept at each save, listed with a diff, restorable.

Every save through the daemon (``config_write``, ``config_restore``) first keeps the file it replaces
as a *generation*: ``<file>.history/<N><suffix>`` next to the file (``config.yaml.history/7.yaml``), N
counting up from 1 and never reused, mode 0600 in a 0700 folder (a config may hold secrets), its
modification time the moment that version was saved. The newest ``config_generations`` (a top-level
config key, default 10, 0 keeps none) are kept; older ones are removed at the next save.

A diff is unified (``--- <file> (generation N)``, ``+++ <file> (current)``: what restoring N would
undo). It is bounded: lines the two versions share at the start and end are skipped for free, and a
middle of more than :data:`MAX_DIFF_LINES` lines on a side (a diff there costs seconds of CPU) is not
diffed but said to be too large, with both file paths so ``diff -u`` can do it.
"""

from __future__ import annotations

import collections
import contextlib
import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foss_supervisor.base.atomicfile import atomic_write, fsync_dir, remove_stray_temps

__all__ = [
    "MAX_DIFF_LINES",
    "MAX_RELOAD_DIFF",
    "ConfigHistory",
    "Generation",
    "bounded_diff",
    "read_or_empty",
    "reload_diff",
    "remove_leftover_temps",
]

MAX_DIFF_LINES = 5000  # lines per side between the shared head and tail: about a second of difflib, worst case


@dataclass(frozen=True, slots=True)
class Generation:
    """One kept version: its number, file, when it was saved (epoch seconds) and its size in bytes."""

    number: int
    path: Path
    saved_at: float
    size: int


class ConfigHistory:
    """The generations of one config file (see the module docstring). Blocking file I/O: call in a thread."""

    def __init__(self, config_file: Path) -> None:
        self.file = config_file
        self.folder = config_file.with_name(config_file.name + ".history")
        self._name = re.compile(r"([1-9][0-9]{0,17})" + re.escape(config_file.suffix))

    def generations(self) -> list[Generation]:
        """Every kept generation, newest first (none when the folder does not exist)."""
        out = []
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return []
        for entry in entries:
            match = self._name.fullmatch(entry.name)
            if match and entry.is_file(follow_symlinks=False):
                st = entry.stat(follow_symlinks=False)
                out.append(Generation(int(match.group(1)), Path(entry.path), st.st_mtime, st.st_size))
        return sorted(out, key=lambda g: g.number, reverse=True)

    def read(self, number: int) -> bytes:
        """The bytes of generation ``number``; raises LookupError naming the kept ones when it is not kept."""
        for gen in self.generations():
            if gen.number == number:
                return gen.path.read_bytes()
        kept = ", ".join(str(g.number) for g in self.generations()) or "none"
        raise LookupError(f"no generation {number} of {self.file} is kept (kept: {kept})")

    def keep(self, data: bytes, saved_at: float, keep: int) -> Generation | None:
        """Keep ``data`` (the version a save replaces, saved at ``saved_at``) as the next generation.

        Then only the newest ``keep`` remain. Returns the new generation, or None when ``keep`` is 0.
        Raises OSError (full disk, permissions): the caller must not save then, or the old version is lost.
        """
        if keep <= 0:
            self.prune(0)
            return None
        self.folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.folder, 0o700)  # also an older, wider folder: generations may hold secrets
        newest = self.generations()
        number = (newest[0].number + 1) if newest else 1
        path = self.folder / f"{number}{self.file.suffix}"
        atomic_write(path, data, mode=0o600)
        os.utime(path, (saved_at, saved_at))
        self.prune(keep)
        return Generation(number, path, saved_at, len(data))

    def forget(self, generation: Generation) -> None:
        """Remove one generation (a save that was undone keeps no copy of the file it did not replace)."""
        with contextlib.suppress(FileNotFoundError):
            generation.path.unlink()

    def prune(self, keep: int) -> None:
        """Remove all but the newest ``keep`` generations."""
        for gen in self.generations()[max(0, keep) :]:
            with contextlib.suppress(FileNotFoundError):
                gen.path.unlink()
        if self.folder.is_dir():
            fsync_dir(self.folder)

    def summary(self, current: bytes) -> list[dict[str, Any]]:
        """Each generation, newest first, against the current file's bytes: ``[{"generation", "saved_at",
        "bytes", "file", "lines_added", "lines_removed"}]``, counts being the lines restoring it would bring
        back and drop (as multisets: cheap, and the same as a diff's for ordinary edits)."""
        now = collections.Counter(_lines(current))
        out = []
        for gen in self.generations():
            with contextlib.suppress(FileNotFoundError):
                then = collections.Counter(_lines(gen.path.read_bytes()))
                out.append(
                    {
                        "generation": gen.number,
                        "saved_at": gen.saved_at,
                        "bytes": gen.size,
                        "file": str(gen.path),
                        "lines_added": (then - now).total(),
                        "lines_removed": (now - then).total(),
                    }
                )
        return out

    def diff(self, number: int, current: bytes) -> str:
        """The unified diff from generation ``number`` to the current file (bounded; see the module docstring).

        Raises LookupError when that generation is not kept.
        """
        path = self.folder / f"{number}{self.file.suffix}"
        return bounded_diff(
            self.read(number),
            current,
            f"{self.file} (generation {number})",
            f"{self.file} (current)",
            f"diff -u {path} {self.file}",
        )


MAX_RELOAD_DIFF = 64 * 1024  # characters of a reload's config diff kept in its event


def read_or_empty(path: Path) -> bytes:
    """A config file's bytes, or none when it cannot be read (a reload then says why, from the loader)."""
    try:
        return path.read_bytes()
    except OSError:
        return b""


def reload_diff(before: bytes, after: bytes, source: Path) -> str:
    """The config file's diff from the running version to the reloaded one (:func:`bounded_diff`, then cut at
    :data:`MAX_RELOAD_DIFF` characters); "" when they are the same. Blocking CPU work: call it in a thread."""
    if before == after:
        return ""
    said = bounded_diff(before, after, f"{source} (running)", f"{source} (reloaded)", "foss-supervisor config history")
    if len(said) > MAX_RELOAD_DIFF:
        said = said[:MAX_RELOAD_DIFF] + f"\n# ... cut at {MAX_RELOAD_DIFF} characters of {len(said)}\n"
    return said


def bounded_diff(before: bytes, after: bytes, before_label: str, after_label: str, compare_with: str) -> str:
    """The unified diff of two versions of a file, bounded: lines they share at the start and end are skipped
    for free, and a middle of more than :data:`MAX_DIFF_LINES` lines on a side is not diffed but said to be too
    large, with ``compare_with`` (the command that would diff them) instead."""
    old, new = _lines(before), _lines(after)
    head = 0
    while head < min(len(old), len(new)) and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < min(len(old), len(new)) - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    if max(len(old), len(new)) - head - tail > MAX_DIFF_LINES:
        return (
            f"# the versions differ in more than {MAX_DIFF_LINES} lines: too large to diff here;\n"
            f"# compare them with: {compare_with}\n"
        )
    context = 3
    start = max(0, head - context)  # difflib sees only the middle and its context: its cost is bounded
    old_mid, new_mid = (
        old[start : len(old) - max(0, tail - context)],
        new[start : len(new) - max(0, tail - context)],
    )
    lines = difflib.unified_diff(old_mid, new_mid, before_label, after_label, n=context)
    return "".join(_shift(line, start) for line in lines)


def _lines(data: bytes) -> list[str]:
    text = data.decode("utf-8", "backslashreplace")
    return [line if line.endswith("\n") else line + "\n" for line in text.splitlines(keepends=True)]


_HUNK = re.compile(r"@@ -(\d+)(,\d+)? \+(\d+)(,\d+)? @@")


def _shift(line: str, offset: int) -> str:
    """A hunk header of a diff of slices, renumbered to the whole files' lines."""
    match = _HUNK.match(line) if offset and line.startswith("@@") else None
    if match is None:
        return line
    old, old_n, new, new_n = match.groups()
    return f"@@ -{int(old) + offset}{old_n or ''} +{int(new) + offset}{new_n or ''} @@\n"


def remove_leftover_temps(config_file: Path, state_dir: Path) -> list[Path]:
    """Temporary files a killed writer left (they may hold secrets): of the config file, of its generations
    and in the state dir. Call at daemon start, under the PID lock; returns what was removed."""
    removed = remove_stray_temps(config_file.parent, config_file.name)
    for folder in (ConfigHistory(config_file).folder, state_dir):
        removed += remove_stray_temps(folder)
    return removed
