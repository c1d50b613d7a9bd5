"""The command line: ``foss-supervisor start|stop|restart|status|ctl|logs|...`` and the terminal UI.

What lives here: :mod:`~.dispatch` (the argparse front and dispatch), :mod:`~.quick` (``status`` without
argparse, the call a monitoring script repeats), :mod:`~.lifecycle` (start, stop, restart: smart start,
stale instances), :mod:`~.programs` (status, ctl, logs), :mod:`~.pipelines`, :mod:`~.config` (config save,
history, diff, restore), :mod:`~.top` (the TUI), :mod:`~.terminal` (output, exit codes, closed pipes).

May import: everything; it is the top. It talks to a running daemon only through the control socket
(:mod:`foss_supervisor.control.client`) and imports the daemon package only to run one (``start``).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ``status`` starts faster
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``foss-supervisor`` command (``argv`` without the program name; default ``sys.argv[1:]``)
    and return its exit code: a plain ``status`` by :mod:`~.quick`, everything else by :mod:`~.dispatch`."""
    from foss_supervisor.cli.quick import quick_status

    code = quick_status(sys.argv[1:] if argv is None else list(argv))
    if code is not None:
        return code
    from foss_supervisor.cli.dispatch import main as dispatch

    return dispatch(argv)
