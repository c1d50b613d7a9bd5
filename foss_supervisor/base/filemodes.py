"""Who may read what the daemon writes: its own processes create files 0600 and directories 0700.

The daemon (state, its log, programs' logs, tokens, history) and the DuckDB worker (warehouse, exports,
published tables, spill files) call :func:`make_private` first thing; the programs, probes and hooks they
start get back the umask the operator started the daemon with (:func:`operator_umask`), unless a program
sets its own ``umask``.
"""

from __future__ import annotations

import os

__all__ = ["PRIVATE_UMASK", "make_private", "operator_umask"]

PRIVATE_UMASK = 0o077  # files 0600, directories 0700
_operator: int | None = None  # the umask before make_private, once it ran


def make_private() -> int:
    """Set this process's umask to :data:`PRIVATE_UMASK`; returns the umask it had (remembered the first time)."""
    global _operator
    before = os.umask(PRIVATE_UMASK)
    if _operator is None:
        _operator = before
    return before


def operator_umask() -> int:
    """The umask this process had before :func:`make_private` (its current one if that never ran)."""
    if _operator is not None:
        return _operator
    current = os.umask(0)
    os.umask(current)
    return current
