"""Access settings at load: an unknown ``dashboard.public`` part is refused, the default opens nothing, and
docs/security.md's table matches the route table and the command registry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import REPO

from foss_supervisor.commands import COMMANDS
from foss_supervisor.config import parse_config
from foss_supervisor.errors import ConfigError
from foss_supervisor.web.routes import ROUTES


@pytest.mark.parametrize("value", ["[logs, secrets]", "all", "[1]", "{health: true}"])
def test_an_unknown_public_part_is_refused_at_load(tmp_path: Path, value: str) -> None:
    text = f"dashboard:\n  port: 8080\n  public: {value}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "c.yaml", environ={})
    message = str(caught.value)
    assert "dashboard.public" in message and ":3" in message and "metrics" in message


def test_the_default_config_opens_nothing(tmp_path: Path) -> None:
    from foss_supervisor.base.resources import default_config_path

    config = parse_config(default_config_path().read_text(), tmp_path / "c.yaml", environ={})
    assert config.dashboard_public == ()


def test_the_security_doc_matches_the_route_table_and_the_registry() -> None:
    """docs/security.md's table per route and role says what the code does (it cannot drift)."""
    text = (REPO / "docs" / "security.md").read_text()
    rows = dict(re.findall(r"^\| `([A-Z]+ /[^`]*)` \| (\w+) \|", text, re.M))
    assert {f"{r.method} {r.path}": r.part for r in ROUTES} == {k: v for k, v in rows.items() if "/static" not in k}
    read, mutating = (
        set(re.findall(r"`(\w+)`", line.split("|")[1]))
        for line in text.splitlines()
        if line.startswith(("| read: ", "| mutating: "))
    )
    assert read == {n for n, c in COMMANDS.items() if not c.mutating}
    assert mutating == {n for n, c in COMMANDS.items() if c.mutating}
