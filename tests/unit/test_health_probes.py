"""Health probe settings at load: ``send`` and ``expect`` belong to tcp probes only (what a tcp probe makes of
a real server's answers: tests/process/test_health_truth.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import make_config

from foss_supervisor.errors import ConfigError


@pytest.mark.parametrize(
    ("probe_yaml", "error"),
    [
        ("{http: 'http://x/', send: PING}", "programs.a.health.send: only a tcp probe sends and expects text"),
        ("{exec: [true], expect: PONG}", "programs.a.health.expect: only a tcp probe sends and expects text"),
        ("{tcp: 80, expect: ''}", "programs.a.health.expect: must be a non-empty string"),
        (f"{{tcp: 80, send: {'x' * 4097}}}", "programs.a.health.send: string must be at most 4096 bytes, got 4097"),
    ],
)
def test_send_and_expect_belong_to_tcp_probes(tmp_path: Path, probe_yaml: str, error: str) -> None:
    with pytest.raises(ConfigError) as refused:
        make_config(tmp_path, f"a: {{command: [x], health: {probe_yaml}}}\n")
    assert error in str(refused.value)
