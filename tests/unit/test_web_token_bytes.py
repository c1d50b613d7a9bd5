"""Whatever bytes a client puts where a token goes (Authorization, the session cookie, the CSRF header), the
comparison answers yes or no: an undecodable byte (aiohttp keeps it as a surrogate) once made /api/v1 answer
500 with a traceback in the dashboard's log, for anyone who could connect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from helpers import examples
from helpers.webcore import LocalCore
from hypothesis import given, settings
from hypothesis import strategies as st

from foss_supervisor.base.tokens import load_or_create_token
from foss_supervisor.config import parse_config
from foss_supervisor.daemon import Daemon
from foss_supervisor.web.app import create_app
from foss_supervisor.web.auth import token_matches, token_role

_ANY = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()), max_size=40)


@settings(max_examples=examples(500), deadline=None)
@given(given_text=_ANY)
def test_any_text_is_compared_and_only_the_token_matches(given_text: str) -> None:
    token = "t" * 43
    assert token_matches(given_text, token) is (given_text == token)
    assert token_role(given_text, token) is None or given_text == token


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[int]:
    state = tmp_path / "state"
    state.mkdir()
    daemon = Daemon(parse_config(f"state_dir: {state}\nprograms: {{}}\n", tmp_path / "config.yaml"), None)
    core = LocalCore(daemon, daemon.events)
    app = create_app(core, load_or_create_token(state / "api-token"), dashboard_host="127.0.0.1")
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        assert client.port is not None
        yield client.port
    finally:
        await client.close()
        await core.close()


@pytest.mark.parametrize(
    "header",
    [b"Authorization: Bearer \xed\xb2\x80", b"Authorization: Bearer \xc3", b"Cookie: foss_token=\xff\xfe"],
)
async def test_undecodable_bytes_where_a_token_goes_get_401_not_500(server: int, header: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    try:
        writer.write(
            b"GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\nConnection: close\r\n\r\n" % (server, header)
        )
        await writer.drain()
        async with asyncio.timeout(10):
            status_line = await reader.readline()
    finally:
        writer.close()
    assert status_line.split()[1] == b"401", status_line
