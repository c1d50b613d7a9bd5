"""foss-supervisor: one asyncio daemon that supervises a data-platform host.

Its rooms, lowest first (docs/architecture.md draws them; tests/unit/test_architecture.py holds each to
what it may import):

* :mod:`~.base`: stdlib-level helpers every room may use (atomic files, /proc, redaction, tokens);
* :mod:`~.config`: the config file, YAML in, frozen dataclasses out, every value through a typed gate;
* :mod:`~.systemd`: sd_notify, the journal, the unit files (and ``install-service``);
* :mod:`~.core`: the supervision core: one controller per program, the child primitive, the events;
* :mod:`~.alerting`: telling people: hooks, objectives, alert incidents, fed by the core's events;
* :mod:`~.pipeline`: the medallion pipelines and their DuckDB worker;
* :mod:`~.graph`: one graph across programs, pipelines and tables;
* :mod:`~.commands`: the one command surface every transport calls;
* :mod:`~.control`: the control socket (server, protocol, client);
* :mod:`~.web`: the dashboard, a process of its own;
* :mod:`~.daemon`: the daemon process that owns the PID lock, the port, the socket and every child;
* :mod:`~.cli`: the ``foss-supervisor`` command line and its terminal UI;
* everyone's: :mod:`~.errors` (the one error tree) and ``__version__``; ``__main__`` allows
  ``python -m foss_supervisor``.

May import: nothing of ours (this ``__init__`` only holds the version).
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
