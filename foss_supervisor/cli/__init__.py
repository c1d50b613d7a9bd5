"""The command line: ``foss-supervisor start|stop|restart|status|ctl|logs|...`` and the terminal UI.

What lives here:

* the front: :mod:`~.dispatch` (the argparse front and dispatch), :mod:`~.quick` (``status`` without
  argparse, the call a monitoring script repeats), :mod:`~.terminal` (output, exit codes, closed pipes),
  :mod:`~.configfile` (the pipeline files' check the front and ``restart`` hand the config loader);
* the daemon's lifecycle: :mod:`~.lifecycle` (start, stop: smart start, stale instances), :mod:`~.restart`
  (the new daemon runs the old one's config), :mod:`~.holder` (which holder of the PID lock may be
  signalled);
* programs and what the daemon saw: :mod:`~.programs` (status, is-ready, ctl, logs), :mod:`~.logfollow`
  (``logs -f`` through the daemon's redaction), :mod:`~.events` (the event journal, then live),
  :mod:`~.top` (the TUI), :mod:`~.config` (config save, history, diff, restore);
* data: :mod:`~.pipelines` (``pipeline``, ``query``, ``export``), :mod:`~.backfill` (``pipeline backfill``
  and ``partitions``), :mod:`~.held` (``pipeline release`` and held files), :mod:`~.snapshots`
  (``pipeline diff`` and ``rollback``);
* the whole host: :mod:`~.graph` (programs, pipelines and tables as one graph), :mod:`~.analyze` (a
  critical chain), :mod:`~.alerts` (incidents: list, acknowledge, silence).

May import: the daemon, control, commands, pipeline, core, config, systemd (``systemd.install`` too) and the
base; never the web layer (the dashboard is a process the daemon starts). It talks to a running daemon
only through the control socket (:mod:`foss_supervisor.control.client`) and imports the daemon package
only to run one (``start``).
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
