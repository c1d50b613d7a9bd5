"""Query isolation (issue 11): one client's long queries cannot starve another's, and no result is unbounded."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import Any

from conftest import DaemonHandle, owner_headers, wait_for

PIPELINE_CONFIG = "pipelines:\n  orders: {on_new_files: false}\n"
LONG_SQL = "SELECT sum(i * i % 7) FROM range(4000000000) t(i)"  # interrupted at its time limit


def post_query(port: int, sql: str, timeout_s: float) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"sql": sql, "timeout_s": timeout_s}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/commands/query", data=body, method="POST",
                                 headers={"Content-Type": "application/json", **owner_headers(port)})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {"text": exc.read().decode(errors="replace")}


def test_long_queries_of_one_client_leave_room_for_others(daemon: DaemonHandle) -> None:
    daemon.write_config(PIPELINE_CONFIG)
    daemon.start()
    daemon.call("query", sql="SELECT 1")  # the worker is up
    results: list[tuple[int, dict[str, Any]]] = []
    started = [threading.Thread(target=lambda: results.append(post_query(daemon.port, LONG_SQL, 8.0)))
               for _ in range(4)]  # fmt: skip
    for t in started:
        t.start()
    try:
        # two of one client's four long queries are refused at once: the per-client cap is two
        refused = [r for r in _wait_results(results, 2) if r[0] == 429]
        assert len(refused) == 2 and "at most 2" in refused[0][1]["text"]
        # another client (the control socket) is answered while those two still run
        assert daemon.call("query", sql="SELECT 42")["rows"] == [[42]]
        assert len(results) == 2
    finally:
        for t in started:
            t.join(timeout=60)
    admitted = [(code, body) for code, body in results if code != 429]
    assert len(admitted) == 2  # each ran to its end or to its time limit, never refused
    assert all(code == 200 or "time limit" in json.dumps(body) for code, body in admitted)


def test_a_huge_result_is_cut_with_the_reason_and_the_worker_survives(daemon: DaemonHandle) -> None:
    daemon.write_config(PIPELINE_CONFIG)
    daemon.start()
    daemon.call("query", sql="SELECT 1")
    before = daemon.call("status")["pipelines"]["worker"]
    result = daemon.call("query", sql="SELECT repeat('x', 2000) AS wide FROM range(100000)", max_rows=100000)
    assert result["truncated"] and "MiB" in result["truncated_reason"]
    assert 0 < len(result["rows"]) < 100000
    after = daemon.call("status")["pipelines"]["worker"]
    assert after["pid"] == before["pid"] and after["starts"] == before["starts"]  # not killed, not restarted


def _wait_results(results: list[tuple[int, dict[str, Any]]], count: int) -> list[tuple[int, dict[str, Any]]]:
    wait_for(lambda: len(results) >= count, 30, f"{count} answers")
    return list(results)
