"""The command line: ``foss-supervisor start|stop|restart|status|ctl|logs|...`` and the terminal UI.

What lives here: :mod:`~.main` (the argparse front and dispatch), :mod:`~.lifecycle` (start, stop,
restart: smart start, stale instances), :mod:`~.programs` (status, ctl, logs), :mod:`~.pipelines`,
:mod:`~.config` (config save, history, diff, restore), :mod:`~.top` (the TUI), :mod:`~.terminal` (output,
exit codes, closed pipes).

May import: everything; it is the top. It talks to a running daemon only through the control socket
(:mod:`foss_supervisor.control.client`) and imports the daemon package only to run one (``start``).
"""

from __future__ import annotations

from foss_supervisor.cli.main import main

__all__ = ["main"]
