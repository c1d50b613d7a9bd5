"""Login redirects through the real server's three ways in (``GET /login?token=&next=``, ``POST /login``,
the login page of a page asked for without a token) stay on this site, for hostile targets (the gate alone:
tests/unit/test_web_redirects.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from helpers import DaemonHandle, free_port, request
from helpers.strategies import hostile, same_origin
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonHandle, str]]:
    handle = DaemonHandle(Path(tmp_path_factory.mktemp("redirects")), free_port())
    handle.write_config()
    handle.start()
    try:
        yield handle, (handle.state_dir / "api-token").read_text().strip()
    finally:
        handle.cleanup()


def _hidden_next(page: str) -> str:
    found = re.search(r'name="next" value="([^"]*)"', page)
    assert found, page[:500]
    return found[1].replace("&amp;", "&").replace("&#34;", '"').replace("&#39;", "'").replace("&lt;", "<")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=hostile | hostile.map(quote), how=st.sampled_from(["get", "post"]))
@example(target="/\t/evil.example", how="get")  # issue 16's sample, as the URL /login?next=/%09/evil.example
@example(target="/\t/evil.example", how="post")
def test_login_redirects_stay_on_this_site(server: tuple[DaemonHandle, str], target: str, how: str) -> None:
    d, token = server
    base = f"http://127.0.0.1:{d.port}/login"
    if how == "get":
        status, headers, _ = request(d.port, "GET", "/login?" + urlencode({"token": token, "next": target}))
    else:
        status, headers, _ = request(
            d.port,
            "POST",
            "/login",
            urlencode({"token": token, "next": target}),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert status == 303
    assert same_origin(headers["location"], base), (target, headers["location"])
    assert "foss_token=" in headers["set-cookie"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=hostile.map(lambda s: quote(s, safe="/\\:@?&=%")))
@example(target="//evil.example")
@example(target="/%09/evil.example")
def test_the_login_page_of_a_page_without_a_token_comes_back_here(
    server: tuple[DaemonHandle, str], target: Any
) -> None:
    d, _ = server
    reply = request(
        d.port,
        "GET",
        "/" + target.lstrip("/") if not target.startswith("/") else target,
        headers={"Accept": "text/html"},
    )
    if reply.status == 400:  # a request line aiohttp itself refuses reaches no view
        return
    assert reply.status == 401 and "<form" in reply.text
    assert same_origin(_hidden_next(reply.text), f"http://127.0.0.1:{d.port}/login")


def test_a_wrong_token_logs_nobody_in(server: tuple[DaemonHandle, str]) -> None:
    d, token = server
    status, headers, _ = request(d.port, "GET", "/login?" + urlencode({"token": token + "x", "next": "/"}))
    assert status == 403 and "set-cookie" not in headers
