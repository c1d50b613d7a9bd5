"""Health probes in-process: a tcp probe passes only when it gets what it waits for (a real server on a real
socket, for every behaviour hypothesis draws), and ``send``/``expect`` belong to tcp probes only."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from helpers import make_config
from hypothesis import given, settings
from hypothesis import strategies as st

from foss_supervisor.config.model import HealthConfig
from foss_supervisor.core.health import probe
from foss_supervisor.errors import ConfigError


@st.composite
def exchanges(draw: st.DrawFn) -> tuple[str, str, bool, str, str]:
    """(server behaviour, its answer, whether it closes after it, the probe's send, the probe's expect)."""
    behaviour = draw(st.sampled_from(["answer", "silent", "close", "refuse"]))
    text = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=30)
    answer = draw(text) if behaviour == "answer" else ""
    send = draw(st.just("") | text)
    expect = draw(st.just("") | text | (st.just(answer[1:4]) if len(answer) > 3 else st.just("")))
    return behaviour, answer, draw(st.booleans()), send, expect


async def _exchange(behaviour: str, answer: str, closes: bool, send: str, expect: str) -> tuple[bool, str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if behaviour == "answer":
            writer.write(answer.encode())
            await writer.drain()
        if behaviour == "close" or (behaviour == "answer" and closes):
            writer.close()
            return
        await reader.read()  # silent, or the answer given: wait for the probe to leave

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    if behaviour == "refuse":
        server.close()
        await server.wait_closed()
    cfg = HealthConfig(kind="tcp", port=port, send=send, expect=expect, timeout_s=0.3)
    try:
        return await probe(cfg)
    finally:
        server.close()


@settings(max_examples=120, deadline=None)
@given(exchanges())
def test_a_tcp_probe_passes_only_when_it_gets_what_it_waits_for(exchange: tuple[str, str, bool, str, str]) -> None:
    behaviour, answer, _, send, expect = exchange
    ok, detail = asyncio.run(_exchange(*exchange))
    talks = bool(send or expect)
    if behaviour == "refuse":
        wanted = False
    elif not talks:
        wanted = True  # a plain tcp probe proves the port listens (the process state is checked apart)
    elif behaviour == "answer":
        wanted = expect in answer if expect else True
    else:
        wanted = False  # accepted, then silent or closed: no answer
    assert ok is wanted, detail
    if behaviour == "silent" and talks:
        assert "accepted but gave no answer within 0.3s" in detail


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
