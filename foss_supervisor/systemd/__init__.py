"""systemd integration, without libsystemd: :mod:`~.notify` (sd_notify, the watchdog, socket activation:
the protocol, for the daemon and for its own ``ready: notify`` children), :mod:`~.journal` (a logging
handler that writes journald fields), :mod:`~.units` (the unit files' templates, rendered with this
installation's paths) and :mod:`~.install` (``install-service``: the units for this installation, planned
and written).

May import: :mod:`foss_supervisor.base`; :mod:`~.install` also the config and the core (it sits above
the core and is used by the CLI only, ``systemd.install`` in the architecture test). The observers that
turn the daemon's events into notifications live in the daemon.
"""
