"""The daemon: the process that owns the PID lock, the dashboard's port, the control socket and every child.

What lives here: :mod:`~.start` (the steps before the event loop: ``run_daemon``), :mod:`~.lifecycle`
(the :class:`~.lifecycle.Daemon` itself: the command context, its loop, reloads, shutdown),
:mod:`~.instance` (who else holds our port or state dir, leftovers of a killed predecessor),
:mod:`~.pidfile`, :mod:`~.fdlimits`, :mod:`~.notifier` (its events as sd_notify messages).

May import: everything below it (control, web's nothing: the dashboard is a process of its own, started
as a service), commands, pipeline (lazily), core, config, systemd, base. Only the CLI imports it.
"""

from __future__ import annotations

from foss_supervisor.daemon.lifecycle import Daemon
from foss_supervisor.daemon.start import leave_launch_directory, run_daemon

__all__ = ["Daemon", "leave_launch_directory", "run_daemon"]
