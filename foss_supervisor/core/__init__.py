"""The supervision core: one controller per program, the one child primitive, and the events they publish.

What lives here:

* a program: the table of its states' legal moves (:mod:`~.states`; the states are the bottom room's words,
  :mod:`foss_supervisor.base.processstates`), the restart policy (:mod:`~.process` on injectable :mod:`~.seams`,
  :mod:`~.backoff`), its state and child (:mod:`~.program_record`), the OS edge
  (:mod:`~.program_child`, :mod:`~.readiness`, :mod:`~.logsink`), the one start and stop primitive
  (:mod:`~.child`), containment of descendants (:mod:`~.containment`), health probes (:mod:`~.health`);
* all programs: the supervisor of a config's programs (:mod:`~.supervisor`, :mod:`~.selectors`, the pure
  rules of order :mod:`~.ordering`) and of the daemon's own services (:mod:`~.services`), state kept across
  restarts (:mod:`~.statestore`), CPU and memory of process trees (:mod:`~.usage`);
* events: the base, the registry and the bus (:mod:`~.events`), the numbered log (:mod:`~.eventlog`), the
  durable daily journal (:mod:`~.eventjournal`), who asked (:mod:`~.actor`), the loop's heartbeat
  (:mod:`~.heartbeat`);
* logs: :mod:`~.logview` (reading logs by name), :mod:`~.logsetup` (structlog set-up).

May import: :mod:`foss_supervisor.config`, :mod:`foss_supervisor.systemd` (its protocol modules),
:mod:`foss_supervisor.base`. Never the pipeline package, the commands, the transports or the CLI.
"""
