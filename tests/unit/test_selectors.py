"""Selectors resolve each kind: a name, ``all``, a group, a replica set, a glob."""

from __future__ import annotations

import pytest

from foss_supervisor.core.selectors import resolve
from foss_supervisor.errors import CommandError


def test_selectors_resolve_each_kind() -> None:
    programs = ["web-0", "web-1", "api", "worker"]
    sets = {"web": ["web-0", "web-1"], "api": ["api"], "worker": ["worker"]}
    groups = {"backend": ["api", "worker"], "front": ["web"]}

    def sel(*names: str) -> list[str]:
        return resolve(names, programs, sets, groups)

    assert sel("all") == programs
    assert sel("api") == ["api"]
    assert sel("backend") == ["api", "worker"]
    assert sel("front") == ["web-0", "web-1"]
    assert sel("web") == ["web-0", "web-1"]
    assert sel("w*") == ["web-0", "web-1", "worker"]
    assert sel("web-[1]", "api", "api") == ["web-1", "api"]  # config order, each once
    with pytest.raises(CommandError, match=r"no such program, group or replica set: 'nope'; known programs: api, web,"):
        sel("nope")
    with pytest.raises(CommandError, match="no program matches 'x\\*'"):
        sel("x*")
