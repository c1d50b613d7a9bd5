"""What the tests of every tier share; test modules import it as ``from helpers import ...`` (pyproject.toml
puts ``tests/`` on the path), the fixtures that use it are in tests/conftest.py.

- :mod:`helpers.system`: this interpreter, the repository, free ports, bounded waits, ending processes by PID
- :mod:`helpers.daemon`: real daemons as subprocesses (:class:`DaemonHandle`) and their tokens
- :mod:`helpers.web`: one HTTP request, sent as written (:func:`request`, :func:`get`)
- :mod:`helpers.supervising`: a real Supervisor in this process and waits on its events
- :mod:`helpers.prometheus`: /metrics read as Prometheus reads it
- :mod:`helpers.pipeline`: the shipped orders pipeline in a test's folders, runners whose worker is reaped
- :mod:`helpers.sources`, :mod:`helpers.imports`: the package's source parsed once, its imports as a graph
- :mod:`helpers.snapshots`: a DuckDB warehouse file snapshotted, restored and diffed by the worker's functions
- :mod:`helpers.webcore`: the dashboard app's core over a real command context in the test process
- :mod:`helpers.properties`: how many examples a property test draws (all, or a quarter in the quick first step)
- :mod:`helpers.strategies`, :mod:`helpers.gate_strategies`: hypothesis strategies (hostile text, secrets;
  every config key's accepted and refused values, from the schema)
- :mod:`helpers.virtual_time`: a virtual clock and scripted children, for the supervisor on virtual time

Nothing here touches port 5000 or a real state dir, so the suite can run beside a live daemon.
"""

from __future__ import annotations

from .daemon import DaemonHandle, config_literal, owner_headers, stranger, viewer_headers, write_graph_host
from .properties import examples
from .supervising import make_config, py, state, supervising, until, written
from .system import (
    PY,
    REPO,
    deep_dir,
    fifo_writer,
    fill,
    free_port,
    full_backlog,
    is_gone,
    kill_recorded_children,
    kill_tree_by_pid,
    need,
    need_root,
    tmpfs,
    wait_for,
    wait_until,
)
from .web import HEALTH_SUMMARY_KEYS, PATH_VALUES, Reply, command, get, guarded_server, health, request, route_path

__all__ = [
    "HEALTH_SUMMARY_KEYS",
    "PATH_VALUES",
    "PY",
    "REPO",
    "DaemonHandle",
    "Reply",
    "command",
    "config_literal",
    "deep_dir",
    "examples",
    "fifo_writer",
    "fill",
    "free_port",
    "full_backlog",
    "get",
    "guarded_server",
    "health",
    "is_gone",
    "kill_recorded_children",
    "kill_tree_by_pid",
    "make_config",
    "need",
    "need_root",
    "owner_headers",
    "py",
    "request",
    "route_path",
    "state",
    "stranger",
    "supervising",
    "tmpfs",
    "until",
    "viewer_headers",
    "wait_for",
    "wait_until",
    "write_graph_host",
    "written",
]
