"""The dashboard: an aiohttp app served by a process of its own (``python -m foss_supervisor.web``).

What lives here: :mod:`~.serve` (the process: inherited socket, watchdog, READY), :mod:`~.remote` (the
daemon reached over the control socket) and :mod:`~.core` (the interface both it and the in-process
``LocalCore`` give the app), :mod:`~.app` (the app factory) and :mod:`~.routes` (one route table),
:mod:`~.views` (one module per page, each with a JSON twin), :mod:`~.responder`, :mod:`~.templates`,
:mod:`~.sse`, :mod:`~.history` (the last hour's charts), :mod:`~.journalcharts` (24 h and 7 d charts from the
daemon's journal files, read here), :mod:`~.metrics`, :mod:`~.openapi`, and the gates of every request
and connection: :mod:`~.access`, :mod:`~.auth`, :mod:`~.security`, :mod:`~.limits`. The heavy parts load
when first asked for: jinja2 with the first page rendered, prometheus_client with the first scrape, the
OpenAPI description with the first request for it.

May import: the control protocol, the command registry (names, parameters, the ``mutating`` flag: never
to run a command in this process, see :mod:`~.core`), the config model, the core's and the pipeline's
event and state definitions, the journal's file names (``core.eventjournal.day_files``), the base. A
leaf: nothing imports it but the tests; the daemon starts it as a service.
"""
