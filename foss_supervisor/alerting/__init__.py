"""Telling people: hooks, objectives and alerts, on the supervisor's clock, fed by the core's events.

What lives here:

* delivery: :mod:`~.hooks` (a config's hooks: which events reach which webhook, command or email, each
  delivery bounded, retried and reported as an event), :mod:`~.senders` (push and email: the text a person
  reads, the HTTP and SMTP clients);
* watching: :mod:`~.objectives` (freshness and uptime objectives: late, violated, ok), :mod:`~.alerts` (alert
  incidents: opened, acknowledged, resolved, kept in a small state file) and :mod:`~.alertwatch` (the daemon's
  watch over both, which publishes what a hook tells).

Nothing in the core imports this room: it listens to the core's events (the bus) and spawns hook commands
with the core's one child primitive. May import: :mod:`foss_supervisor.core`, :mod:`foss_supervisor.config`,
:mod:`foss_supervisor.systemd` (its protocol modules), :mod:`foss_supervisor.base`; never the pipeline
package, the commands, the transports or the CLI.
"""
