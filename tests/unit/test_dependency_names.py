"""Replica names are program names wherever ``depends_on`` takes one (issue 21): every name ``status`` lists is
accepted, with its condition and ``restart: true``, and nothing else is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from foss_supervisor.config import parse_config
from foss_supervisor.errors import ConfigError

FILE = Path("/etc/foss-supervisor/config.yaml")


def _config(replicas: int, deps: dict[str, dict[str, object]]) -> str:
    return (
        f"state_dir: /tmp/never-made\nprograms:\n  web: {{command: [x], replicas: {replicas}}}\n"
        f"  api: {{command: [x], depends_on: {json.dumps(deps)}}}\n"
    )


@settings(max_examples=examples(200), deadline=None)
@given(
    replicas=st.integers(1, 5),
    picks=st.lists(st.integers(-1, 7), min_size=1, max_size=4, unique=True),
    condition=st.sampled_from(["started", "healthy", "process_started"]),
    restart=st.booleans(),
)
def test_depends_on_takes_exactly_the_names_status_lists(
    replicas: int, picks: list[int], condition: str, restart: bool
) -> None:
    listed = ["web"] if replicas == 1 else [f"web-{i}" for i in range(replicas)]
    names = ["web" if i == -1 else f"web-{i}" for i in picks]  # the set's name, replica names, and ones past it
    deps = {n: {"condition": condition, "restart": restart} for n in names}
    unknown = [n for n in names if n != "web" and n not in listed]
    if unknown:
        with pytest.raises(ConfigError, match=f"unknown program '{unknown[0]}'") as caught:
            parse_config(_config(replicas, deps), FILE, {})
        assert all(e.key == "programs.api.depends_on" and e.line == 4 for e in caught.value.errors)
        return
    api = parse_config(_config(replicas, deps), FILE, {}).programs["api"]
    expected = [m for n in names for m in (listed if n == "web" else [n])]
    assert api.depends_on == tuple(dict.fromkeys(expected))
    assert {api.condition_for(d) for d in api.depends_on} == {condition.removeprefix("process_")}
    assert api.part_of == (frozenset(api.depends_on) if restart else frozenset())
