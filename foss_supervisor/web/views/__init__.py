"""One module per page (Datasette's ``views/``): each turns a request into plain data through the commands
and answers it with :func:`foss_supervisor.web.responder.respond`.

* pages: :mod:`~.overview` (``/``: key figures, flows, programs, events, audit), :mod:`~.pipelines`
  (``/pipeline-management``, ``/runs/{run_id}``, run reports), :mod:`~.graph` (``/graph``), :mod:`~.alerts`
  (``/alerts``: objectives, incidents, silences), :mod:`~.logs` (``/logs``, search and live viewers),
  :mod:`~.config` (``/config``: the effective config and its editor), :mod:`~.data_browser`
  (``/data-browser``: layers, tables, a read-only SQL box), :mod:`~.table` (one warehouse table, paginated,
  sortable, filterable), :mod:`~.reference` (``/chat``: the API reference and a console);
* for machines and probes: :mod:`~.api` (``/api/status``, ``/api/commands/{name}``, ``/api/events``,
  ``/metrics``, the icon), :mod:`~.charts` (``/api/v1/charts``), :mod:`~.health` (``/health``: 200 or 503);
* the door: :mod:`~.session` (``/login`` and ``/logout``).

May import: control, commands, pipeline, core, config, systemd, base (what the web layer may); the views
use the rest of the web layer, the command registry's names, the pipeline's events and the base, and run
every command through the app's core (:mod:`foss_supervisor.web.core`).
"""
