"""Real hook deliveries (command and webhook) from a real daemon, with a receiver that is down and one that is
slow, neither holding supervision back; and a pipeline run delivered to its hook."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from helpers import PY, DaemonHandle, free_port, wait_for


class _Receiver(BaseHTTPRequestHandler):
    got: list[dict[str, object]]
    delay_s = 0.0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(self.delay_s)
        type(self).got.append({"auth": self.headers.get("Authorization"), **json.loads(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _serve(delay_s: float) -> tuple[ThreadingHTTPServer, list[dict[str, object]]]:
    got: list[dict[str, object]] = []
    handler = type("Handler", (_Receiver,), {"got": got, "delay_s": delay_s})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads, server.block_on_close = True, False  # a slow handler must not hold the teardown
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, got


@pytest.fixture
def receivers() -> Iterator[tuple[int, list[dict[str, object]], int]]:
    fast, got = _serve(0.0)
    slow, _ = _serve(30.0)
    try:
        yield fast.server_address[1], got, slow.server_address[1]
    finally:
        for server in (fast, slow):
            server.shutdown()
            server.server_close()


def test_real_deliveries_and_receivers_that_fail_do_not_hold_supervision(
    daemon: DaemonHandle, receivers: tuple[int, list[dict[str, object]], int]
) -> None:
    fast_port, got, slow_port = receivers
    seen = daemon.tmp / "events.jsonl"
    record = f"import sys; open('{seen}', 'a').write(sys.stdin.read() + chr(10))"
    daemon.env["HOOK_TOKEN"] = "t0k"
    crashy = daemon.tmp / "crashy.py"  # runs once (RUNNING, then exits 7), then fails at every start: FATAL
    marker = daemon.tmp / "ran-once"
    crashy.write_text(
        f"import pathlib, sys, time\nm = pathlib.Path('{marker}')\nif m.exists(): sys.exit(3)\n"
        "m.touch(); time.sleep(0.3); sys.exit(7)\n"
    )
    daemon.write_config(
        "programs:\n"
        f"  crashy: {{command: ['{PY}', '{crashy}'], start_timeout: 0.1, start_retries: 1,"
        " backoff: {initial: 0.05}}\n"
        f"  steady: {{command: ['{PY}', '-c', 'import time; time.sleep(600)']}}\n"
        "hooks:\n"
        f"  record: {{on: all, select: [crashy], command: ['{PY}', '-c', \"{record}\"]}}\n"
        f"  web: {{on: [program_fatal], url: 'http://127.0.0.1:{fast_port}/h',"
        " headers: {Authorization: 'Bearer ${HOOK_TOKEN}'}}\n"
        f"  down: {{on: [program_fatal], url: 'http://127.0.0.1:{free_port()}/h', retries: 2, timeout: 1s}}\n"
        f"  slow: {{on: [program_fatal], url: 'http://127.0.0.1:{slow_port}/h', retries: 0, timeout: 0.5s}}\n"
    )
    daemon.start()
    wait_for(lambda: daemon.program("crashy")["state"] == "FATAL", 30, "crashy FATAL")

    def recorded() -> list[str]:
        return [json.loads(x)["kind"] for x in seen.read_text().splitlines() if x.strip()] if seen.exists() else []

    wait_for(lambda: "program_fatal" in recorded(), 20, "program_fatal recorded")
    kinds = recorded()
    assert kinds.count("program_exited") >= 1 and kinds.count("program_fatal") == 1
    wait_for(lambda: got, 20, "webhook POST")
    assert got[0]["kind"] == "program_fatal" and got[0]["program"] == "crashy" and got[0]["auth"] == "Bearer t0k"
    # the failing receivers: retried, then logged; supervision went on meanwhile
    log_file = daemon.state_dir / "foss-supervisor.log"
    failures = wait_for(
        lambda: (
            [r for r in map(json.loads, log_file.read_text().splitlines()) if r.get("event") == "hook_failed"]
            if len([ln for ln in log_file.read_text().splitlines() if '"hook_failed"' in ln]) >= 2
            else None
        ),
        30,
        "both failing hooks given up",
    )
    assert {(f["hook"], f["attempts"]) for f in failures} == {("down", 3), ("slow", 1)}
    assert daemon.program("steady")["state"] == "RUNNING"
    assert daemon.cli("ctl", "restart", "steady").returncode == 0


def test_a_pipeline_run_is_delivered_to_its_hook(daemon: DaemonHandle) -> None:
    seen = daemon.tmp / "runs.jsonl"
    record = f"import sys; open('{seen}', 'a').write(sys.stdin.read() + chr(10))"
    daemon.write_config(
        "pipelines:\n  orders: {on_new_files: false, demo_data: false}\n"
        "hooks:\n  runs: {on: [pipeline_succeeded, pipeline_failed], select: [orders],"
        f" command: ['{PY}', '-c', \"{record}\"]}}\n"
    )
    daemon.start()
    daemon.call("demo_data", orders=300)
    run = daemon.call("pipeline_run", name="orders", wait=True)
    delivered = wait_for(lambda: seen.exists() and seen.read_text().strip(), 20, "the run's hook")
    payload = json.loads(delivered.splitlines()[0])
    assert payload["kind"] == "pipeline_succeeded" and payload["run_id"] == run["run_id"]
    assert payload["pipeline"] == "orders" and payload["status"] == run["status"]
