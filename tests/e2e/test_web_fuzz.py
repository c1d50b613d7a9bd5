"""Hostile input at every HTTP endpoint, driven by the OpenAPI description (issue 11): random paths, query
strings, headers and command bodies never get a 5xx, and errors keep their JSON shape. With the read-only
viewer token: a fuzzer with the owner's would stop programs or rewrite the config, which is the point of it."""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from helpers import PY, DaemonHandle, free_port, request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SKIP_PATHS = {"/api/events"}  # a stream never ends: covered by its own tests

text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonHandle, dict[str, Any]]]:
    handle = DaemonHandle(Path(tmp_path_factory.mktemp("fuzz")), free_port())
    handle.write_config(f"programs:\n  app: {{command: [{PY!r}, '-c', 'import time; time.sleep(600)']}}\n")
    handle.start()
    try:
        status, _, body = request(handle.port, "GET", "/api/v1/openapi.json", headers=handle.viewer(), timeout_s=30)
        assert status == 200
        yield handle, json.loads(body)
    finally:
        handle.cleanup()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_command_bodies_never_get_a_server_error(fuzzed: tuple[DaemonHandle, dict[str, Any]], data: Any) -> None:
    d, spec = fuzzed
    reads = sorted(
        p
        for p, ops in spec["paths"].items()
        if p.startswith("/api/commands/") and "{" not in p and not ops["post"]["x-mutating"]
    )
    path = data.draw(st.sampled_from(reads))
    props = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
    args = data.draw(
        st.dictionaries(st.sampled_from(sorted(props)) | text, json_value, max_size=4)
        if props
        else st.just({}) | st.dictionaries(text, json_value, max_size=2)
    )
    if "timeout_s" in args and isinstance(args["timeout_s"], int | float):
        args["timeout_s"] = 1.0  # a query may run for its timeout: keep the run short
    raw = data.draw(st.sampled_from(["json", "garbage"]))
    body = json.dumps(args).encode() if raw == "json" else data.draw(st.binary(max_size=200))
    status, _, reply = request(
        d.port, "POST", path, body, {"Content-Type": "application/json", **d.viewer()}, timeout_s=30
    )
    assert status < 500, (path, args, reply[:300])
    if status >= 400:
        error = json.loads(reply)["error"]
        assert error["type"] and isinstance(error["message"], str)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_get_route_survives_hostile_paths_queries_and_headers(
    fuzzed: tuple[DaemonHandle, dict[str, Any]], data: Any
) -> None:
    d, spec = fuzzed
    routes = sorted(p for p, ops in spec["paths"].items() if "get" in ops and p not in SKIP_PATHS)
    template = data.draw(st.sampled_from(routes))
    path = "/".join(quote(data.draw(text), safe="") if part.startswith("{") else part for part in template.split("/"))
    names = st.sampled_from(
        ["format", "_sort", "_desc", "_page", "_size", "_search", "token", "next", "sql", "table"]
    ) | st.text(string.ascii_letters, min_size=1, max_size=8)
    query = data.draw(st.dictionaries(names, text, max_size=4))
    headers = data.draw(
        st.fixed_dictionaries(
            {},
            optional={
                "Accept": st.sampled_from(["text/html", "application/json", "*/*", "x/y"]),
                "Last-Event-ID": text.filter(lambda s: s.isprintable()),
                "Cookie": st.just("foss_token=") | st.just("foss_token=wrong"),
            },
        )
    )
    url = path + ("?" + urlencode(query) if query else "")
    headers = {k: v.encode("latin-1", "ignore").decode("latin-1") for k, v in headers.items()}
    status, _, body = request(
        d.port, "GET", url, headers=headers if "Cookie" in headers else {**d.viewer(), **headers}, timeout_s=30
    )
    assert status < 500, (url, headers, body[:300])
    assert d.ping() is not None  # and the daemon is still there
