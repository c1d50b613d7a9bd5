"""The dashboard: an aiohttp app served by a process of its own (``python -m foss_supervisor.web``).

What lives here:

* the process and its link to the daemon: :mod:`~.serve` (the process: inherited socket, watchdog, READY)
  and ``__main__`` (``python -m foss_supervisor.web``), :mod:`~.remote` (the daemon reached over the control
  socket) and :mod:`~.core` (the interface it gives the app; the tests give it over a core in their process);
* the app: :mod:`~.app` (the app factory), :mod:`~.keys` (typed ``AppKey`` s instead of globals),
  :mod:`~.routes` (one route table), :mod:`~.views` (one module per page, each with a JSON twin),
  :mod:`~.responder` (HTML or its JSON twin), :mod:`~.templates` (the Jinja environment), :mod:`~.icons`
  (state icons and words), :mod:`~.openapi` (the API's description);
* what the pages show: :mod:`~.sse` (the bus as server-sent events), :mod:`~.history` (the last hour's
  charts), :mod:`~.journalcharts` (24 h and 7 d charts from the daemon's journal files, read here),
  :mod:`~.metrics` (Prometheus, built at scrape time), :mod:`~.pagecache` (a page rendered once for
  everyone asking at once) on :mod:`~.shared` (single flight with a short reuse);
* the gates of every request and connection: :mod:`~.access` (who may read what), :mod:`~.auth` (tokens,
  cookie, CSRF), :mod:`~.public` (what ``dashboard.public`` opens without a token), :mod:`~.security` (Host,
  Origin, headers), :mod:`~.limits` (slow, idle and too many connections).

The heavy parts load when first asked for: jinja2 with the first page rendered, prometheus_client with the
first scrape, the OpenAPI description with the first request for it.

May import: the control protocol, the command registry (names, parameters, the ``mutating`` flag; the
served process runs no command itself: it asks the daemon's control socket),
the config model, the core's and the pipeline's event and state definitions, the journal's file names
(``core.eventjournal.day_files``), the core's log set-up (``core.logsetup``, for the process's own log),
systemd's ``notify`` (the watchdog), the base; the architecture test allows control, commands, pipeline,
core, config, systemd and base. A leaf: nothing imports it but the tests; the daemon starts it as a service.
"""
