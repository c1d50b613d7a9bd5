"""/metrics read as Prometheus reads it: prometheus_client's own parser, and the naming rules ``promtool check
metrics`` checks (counters end in ``_total``, base units end the name) plus ours (the ``foss_supervisor_``
prefix, monotonic totals typed counter)."""

from __future__ import annotations

import functools
import re

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

__all__ = ["lint", "samples"]

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# words that say a unit, and the base-unit suffix Prometheus wants the name to end with
_UNITS = {
    r"(duration|uptime|latency|age|seconds|time)": ("_seconds", "_timestamp_seconds", "_seconds_total"),
    r"(bytes|memory|size)": ("_bytes", "_bytes_total"),
}
_MONOTONIC_WORDS = ("spawns", "starts", "runs_finished", "runs", "restarts")  # totals that only grow


@functools.lru_cache(maxsize=4)
def _families(text: str) -> tuple[Metric, ...]:
    """``text`` parsed by prometheus_client, once for the checks of one text (raises where it does not parse);
    the callers only read the families."""
    return tuple(text_string_to_metric_families(text))


def lint(text: str) -> list[str]:
    """What ``promtool check metrics`` would object to in ``text``, plus our own prefix and unit rules."""
    problems = []
    for family in _families(text):  # raises on text that does not parse
        name, kind = family.name, family.type
        if not _NAME.fullmatch(name) or not name.startswith(("foss_supervisor_", "process_")):
            problems.append(f"{name}: not a foss_supervisor_ name")
        if not family.documentation:
            problems.append(f"{name}: no HELP")
        samples = {s.name for s in family.samples}
        if kind == "counter" and not all(s.endswith(("_total", "_created")) for s in samples):
            problems.append(f"{name}: counter samples {samples} must end in _total")
        if kind == "gauge" and name.endswith(("_total", "_count", "_sum", "_bucket")):
            problems.append(f"{name}: a gauge named like a counter or histogram")
        if kind == "gauge" and any(word in name for word in _MONOTONIC_WORDS) and "last_run" not in name:
            problems.append(f"{name}: a monotonic total typed gauge")
        if re.search(r"(_rate|percent)$", name):
            problems.append(f"{name}: a 0..1 value is a _ratio")
        for words, suffixes in _UNITS.items():
            if re.search(words, name) and not name.endswith(suffixes) and kind != "counter":
                problems.append(f"{name}: a unit word without its base unit at the end {suffixes}")
    return problems


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The values of the samples named ``name`` in ``text``, by their sorted labels."""
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in _families(text):
        for s in family.samples:
            if isinstance(s, Sample) and s.name == name:
                found[tuple(sorted(s.labels.items()))] = s.value
    return found
