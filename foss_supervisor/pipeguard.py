"""Output that survives a reader who stops reading (``foss-supervisor restart | head -1``).

A closed pipe must not abort a command halfway: ``restart`` that dies after stopping the old daemon
and before starting the new one leaves nothing running. :func:`guard_output` wraps stdout and stderr
so that the first ``BrokenPipeError`` points the descriptor at ``/dev/null`` and the command carries
on in silence; :func:`output_closed` tells loops that only print (``logs -f``) to end.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

__all__ = ["guard_output", "output_closed"]


class _Guarded:
    """A text stream whose writes and flushes never raise BrokenPipeError."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.closed_pipe = False

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._silence()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._silence()

    def _silence(self) -> None:
        self.closed_pipe = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())  # what is still buffered goes nowhere, quietly
        finally:
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard_output() -> None:
    """Wrap ``sys.stdout`` and ``sys.stderr`` (once)."""
    if not isinstance(sys.stdout, _Guarded):
        sys.stdout = _Guarded(sys.stdout)
    if not isinstance(sys.stderr, _Guarded):
        sys.stderr = _Guarded(sys.stderr)


def output_closed() -> bool:
    """Whether the reader of stdout has gone."""
    return bool(getattr(sys.stdout, "closed_pipe", False))
