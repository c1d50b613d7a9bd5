"""The one command surface: the control socket, the dashboard and the tests all call these commands.

What lives here: :mod:`~foss_supervisor.commands.registry` (what a command is; ``dispatch`` and ``answer``,
the egress gate), and one module per family of commands, each registering its commands when imported:
:mod:`~.programs` (daemon and programs), :mod:`~.resources` (CPU and memory of every process tree),
:mod:`~.logs`, :mod:`~.config` (the config file, its saves and generations), :mod:`~.pipelines`,
:mod:`~.snapshots` (diff and rollback of pipeline runs),
:mod:`~.why` (the cause chain of a state), :mod:`~.analyze` (the start-up's critical chain),
:mod:`~.graph` (programs, pipelines and tables as one graph, :mod:`foss_supervisor.graph`), :mod:`~.alerts`
(objectives and alert incidents). Helpers the commands share register nothing: :mod:`~.verdict` is the one
health verdict, :mod:`~.impact` the impact of a change on the pipelines (what a reload or a save would
rebuild, refused when it breaks a reader). Every registering module is imported below, explicitly, so the
registry is complete once this package is.

May import: the graph, the pipeline package (its façade :mod:`foss_supervisor.pipeline.engine.service` only, and
lazily: a daemon without pipelines never loads it), alerting (the alert book), the core, the config, the
base. Never the transports (control, web), the daemon or the CLI.
"""

from __future__ import annotations

from foss_supervisor.commands import (  # noqa: F401  (they register)
    alerts,
    analyze,
    config,
    graph,
    logs,
    pipelines,
    programs,
    resources,
    snapshots,
    why,
)
from foss_supervisor.commands.registry import ACTOR, COMMANDS, Actor, Command, CommandContext, answer, command, dispatch

__all__ = ["ACTOR", "COMMANDS", "Actor", "Command", "CommandContext", "answer", "command", "dispatch"]
