"""One typed gate per kind of config value: every number, name, path and pattern a loader accepts passes one.

A gate turns one YAML value into its typed value or raises :class:`GateError`, whose reason names the kind's
range ("must be a duration from 0s to 1d, got .nan"); the loaders add the file, line and dotted key.
Every gate is finite and bounded: no NaN or infinity, no negative where a quantity cannot be, no zero
where it would spin, nothing longer than the operating system takes (an argument or environment string
of 128 KiB, a path of 4,095 bytes, a file name of 255).

=========  ======================================================  ==========================================
kind       accepts                                                 range (set per key, named in the error)
=========  ======================================================  ==========================================
duration   seconds (``5``, ``0.5``) or ``500ms``/``5s``/``2m``/    e.g. ``stop_timeout``: 0s to 1d
           ``1h``/``1d``
size       bytes (``1048576``) or ``10MB``/``1MiB``/``2GB``         e.g. ``log.max_bytes``: 0 to 1 TiB
factor     a finite number                                         ``backoff.multiplier``: 1 to 10
percent    a number or text with ``%`` (``99.5``, ``"99.5%"``)      above 0, at most 100
number     a finite number                                         quality ``accepted_range`` bounds
count      an integer                                              e.g. ``replicas``: 1 to 1000
port       an integer                                              1 to 65535
name       text matching the namespace's pattern                   e.g. programs: ``[A-Za-z0-9][A-Za-z0-9_.-]``,
                                                                   at most 64
text       a non-empty string without NUL                          at most 128 KiB (``MAX_ARG_STRLEN``)
path       text naming a file or folder                            4,095 bytes, 255 per component
argv       a list of arguments, or a string split like ``sh``      each 128 KiB, 1 MiB together
env        a mapping of names (no ``=``) to strings or numbers     as text and argv
signal     ``TERM``, ``SIGINT``...                                 not the job-control signals (STOP, CONT...)
regex      an RE2 regular expression (DuckDB's dialect)            at most 1,000 characters
glob       a file name pattern (``*.csv``)                         no ``/``, at most 255 characters
mode       an octal mode (``"027"``, ``0o27``)                     000 to 777
rlimit     a number, ``unlimited``, or ``soft:hard``               0 to 2^63-1, soft <= hard
cron       five or six cron fields                                 at most 100 characters
url        ``http://`` or ``https://`` with a host                 at most 2,048 characters
host       an IP address or a DNS name                             at most 253 characters
choice     one of a listed set                                     the set
bool       ``true`` or ``false``                                   --
=========  ======================================================  ==========================================

The gates live in :mod:`~.base` (:class:`Gate`, :class:`GateError`, the checks every kind shares),
:mod:`~.numbers` (durations, sizes, factors, counts, ports, resource limits, modes) and :mod:`~.text`
(strings, paths, names, choices, signals, argv, environments, URLs, hosts, patterns); import them from here.

Stdlib only (the cron and regex gates import croniter and google-re2 when they are used), so the daemon, the CLI
and the pipeline loader share them without cost. Strategies that generate each kind's hostile class are
in ``tests/helpers/gate_strategies.py``; ``tests/unit/test_gates.py`` walks :data:`foss_supervisor.config.schema.SCHEMA`
so that no key escapes its gate.

May import: :mod:`foss_supervisor.base` and :mod:`foss_supervisor.errors` only (it is part of the config).
"""

from __future__ import annotations

from foss_supervisor.config.gates.base import (
    MAX_ARG_BYTES,
    MAX_ARGV_BYTES,
    MAX_NAME_BYTES,
    MAX_PATH_BYTES,
    NUMERIC_KINDS,
    RLIM_INFINITY,
    Gate,
    GateError,
    YamlNumber,
    shown,
)
from foss_supervisor.config.gates.numbers import (
    count,
    duration,
    factor,
    format_duration,
    format_size,
    mode,
    number,
    percent,
    port,
    rlimit,
    size,
)
from foss_supervisor.config.gates.text import (
    argv,
    boolean,
    choice,
    column_types,
    cron,
    env_map,
    glob,
    host,
    http_headers,
    name,
    names,
    path,
    regex,
    secrets,
    signal_name,
    text,
    url,
)

__all__ = [
    "MAX_ARGV_BYTES",
    "MAX_ARG_BYTES",
    "MAX_NAME_BYTES",
    "MAX_PATH_BYTES",
    "NUMERIC_KINDS",
    "RLIM_INFINITY",
    "Gate",
    "GateError",
    "YamlNumber",
    "argv",
    "boolean",
    "choice",
    "column_types",
    "count",
    "cron",
    "duration",
    "env_map",
    "factor",
    "format_duration",
    "format_size",
    "glob",
    "host",
    "http_headers",
    "mode",
    "name",
    "names",
    "number",
    "path",
    "percent",
    "port",
    "regex",
    "rlimit",
    "secrets",
    "shown",
    "signal_name",
    "size",
    "text",
    "url",
]
