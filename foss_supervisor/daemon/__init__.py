"""The daemon: the process that owns the PID lock, the dashboard's port, the control socket and every child.

What lives here: :mod:`~.start` (the steps before the event loop: ``run_daemon``), :mod:`~.lifecycle`
(the :class:`~.lifecycle.Daemon` itself: the command context, its loop, reloads, shutdown),
:mod:`~.instance` (who else holds our port or state dir, leftovers of a killed predecessor),
:mod:`~.fdlimits` (the open-files limit against the programs), :mod:`~.notifier` (its
events as sd_notify messages), :mod:`~.sampler` (resource samples on the bus for the history),
:mod:`~.watching` (the set-up of the objectives' and alerts' watch, and what it reads of the pipelines).

May import: control, commands, pipeline (lazily), alerting, core, config, systemd and the base; not the web layer
(the dashboard is a process of its own, started as a service) and not the CLI. Only the CLI imports it.
"""

from __future__ import annotations

from foss_supervisor.daemon.lifecycle import Daemon
from foss_supervisor.daemon.start import leave_launch_directory, run_daemon

__all__ = ["Daemon", "leave_launch_directory", "run_daemon"]
