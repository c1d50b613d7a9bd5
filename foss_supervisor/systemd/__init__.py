"""systemd integration, without libsystemd: :mod:`~.notify` (sd_notify, the watchdog, socket activation:
the protocol, for the daemon and for its own ``ready: notify`` children), :mod:`~.journal` (a logging
handler that writes journald fields), :mod:`~.units` (the unit files ``install-service`` renders).

May import: :mod:`foss_supervisor.base`; ``units`` also the config and the core (it is used by the CLI
only). The observers that turn the daemon's events into notifications live in the daemon.
"""
