"""The supervision core: one controller per program, the one child primitive, and the events they publish.

What lives here: the state tables (:mod:`~.states`), the restart policy (:mod:`~.process` on injectable
:mod:`~.seams`, :mod:`~.backoff`), the OS edge of a program (:mod:`~.program_child`, :mod:`~.readiness`,
:mod:`~.logsink`), the one stop primitive (:mod:`~.child`), containment of descendants
(:mod:`~.containment`), health probes (:mod:`~.health`), the supervisor of a config's programs
(:mod:`~.supervisor`, :mod:`~.selectors`) and of the daemon's own services (:mod:`~.services`), state kept
across restarts (:mod:`~.statestore`), events (:mod:`~.events`, :mod:`~.eventlog`), the loop's heartbeat
(:mod:`~.heartbeat`), hooks (:mod:`~.hooks`), logs (:mod:`~.logview`, :mod:`~.logsetup`), and CPU and memory
of process trees (:mod:`~.usage`).

May import: :mod:`foss_supervisor.config`, :mod:`foss_supervisor.systemd` (its protocol modules),
:mod:`foss_supervisor.base`. Never the pipeline package, the commands, the transports or the CLI.
"""
