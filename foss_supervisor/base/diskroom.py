"""Room on the state filesystem: a floor of free space that exports may not cross, a budget for the exports
folder, and a warning before the filesystem is full.

The state dir holds what supervision must go on writing (logs, the children record, the PID file, run
history); exports land there too, in ``<state_dir>/exports``, until their reader has fetched them. Readers
that are slow, or never come back, must not fill that filesystem:

- **floor**: an export is refused while the filesystem has less free than :func:`floor_bytes` (5 % of its
  size, at most 512 MiB), and an export that left it below the floor is removed and refused;
- **budget**: an export is refused while the exports folder holds :func:`budget_bytes` or more (a quarter
  of the filesystem, at most 2 GiB) of files not yet fetched;
- **warning**: ``status`` and ``/health`` list a warning (degraded) while free space is under twice the floor.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "BUDGET_FRACTION",
    "FLOOR_FRACTION",
    "MAX_BUDGET_BYTES",
    "MAX_FLOOR_BYTES",
    "budget_bytes",
    "export_refusal",
    "floor_bytes",
    "floor_refusal",
    "room_refusal",
    "room_warning",
]

FLOOR_FRACTION = 0.05
MAX_FLOOR_BYTES = 512 * 1024 * 1024
BUDGET_FRACTION = 0.25
MAX_BUDGET_BYTES = 2 * 1024 * 1024 * 1024


def floor_bytes(total: int) -> int:
    """The free space an export may not go below, on a filesystem of ``total`` bytes."""
    return min(MAX_FLOOR_BYTES, int(total * FLOOR_FRACTION))


def budget_bytes(total: int) -> int:
    """What the exports folder may hold, on a filesystem of ``total`` bytes."""
    return min(MAX_BUDGET_BYTES, int(total * BUDGET_FRACTION))


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):,.1f} MiB"


def room_refusal(free: int, total: int, exports: int) -> str:
    """Why no export may start with ``free`` of ``total`` bytes free and ``exports`` bytes in the exports
    folder ("" when one may)."""
    if free < floor_bytes(total):
        return (
            f"the state filesystem has {_mib(free)} free of {_mib(total)}, under its floor of "
            f"{_mib(floor_bytes(total))} kept for logs and state: export refused; free some space"
        )
    if exports >= budget_bytes(total):
        return (
            f"the exports folder holds {_mib(exports)}, its budget is {_mib(budget_bytes(total))}: export "
            "refused until earlier exports are fetched or removed"
        )
    return ""


def _usage(folder: Path) -> tuple[int, int]:
    """(free bytes for this user, total bytes) of the filesystem of ``folder``."""
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


def _folder_bytes(folder: Path) -> int:
    total = 0
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
    except OSError:
        return 0
    return total


def export_refusal(state_dir: Path, exports_dir: Path) -> str:
    """Why no export may be written now into ``exports_dir`` on ``state_dir``'s filesystem ("" when one may)."""
    try:
        free, total = _usage(state_dir)
    except OSError:
        return ""  # a state dir that cannot be looked at is reported by what writes there
    return room_refusal(free, total, _folder_bytes(exports_dir))


def floor_refusal(state_dir: Path) -> str:
    """Why the state filesystem is under its floor now ("" when it is not): the floor of :func:`room_refusal`
    alone, whatever the exports folder holds."""
    try:
        free, total = _usage(state_dir)
    except OSError:
        return ""
    return room_refusal(free, total, 0)


def room_warning(state_dir: Path) -> str:
    """A warning while the state filesystem has less than twice its floor free ("" otherwise)."""
    try:
        free, total = _usage(state_dir)
    except OSError:
        return ""
    if free >= 2 * floor_bytes(total):
        return ""
    return (
        f"the state filesystem ({state_dir}) is nearly full: {_mib(free)} free of {_mib(total)}; exports are "
        f"refused under {_mib(floor_bytes(total))}"
    )
