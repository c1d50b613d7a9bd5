"""The groups: section (supervisord's [group:x]): the forms it takes and each refusal, located."""

from __future__ import annotations

from pathlib import Path

import pytest

from foss_supervisor.config import parse_config
from foss_supervisor.errors import ConfigError

PROGRAMS = "programs:\n  api: {command: [x]}\n  worker: {command: [x]}\n  web: {command: [x], replicas: 2}\n"


def parse(groups: str):
    return parse_config(PROGRAMS + groups, Path("/etc/fs/c.yaml"), {})


def test_groups_in_each_form() -> None:
    cfg = parse("groups:\n  backend: [api, worker]\n  front: {programs: [web]}\n  sv: 'api, web'\n")
    assert dict(cfg.groups) == {"backend": ("api", "worker"), "front": ("web",), "sv": ("api", "web")}
    assert cfg.replica_sets == {"api": ["api"], "worker": ["worker"], "web": ["web-0", "web-1"]}


@pytest.mark.parametrize(
    ("groups", "key", "reason"),
    [
        ("groups:\n  g: [api, nope]\n", "groups.g", "unknown program 'nope'"),
        ("groups:\n  all: [api]\n", "groups.all", "'all' is taken"),
        ("groups:\n  api: [worker]\n", "groups.api", "has the name of a program"),
        ("groups:\n  g: []\n", "groups.g", "must be a list of program names"),
        ("groups:\n  g: {programs: [api], priority: 1}\n", "groups.g", "takes only 'programs'"),
    ],
)
def test_each_refusal_names_its_line_and_key(groups: str, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(groups)
    assert info.value.key == key and reason in info.value.reason and info.value.line == 6
