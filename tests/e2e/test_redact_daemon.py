"""No secret leaves a real daemon: generated secrets are planted in every string field of a generated config
(env values, env_file, arguments, cwd, log path, health URL and exec probe, hook URL and headers, the
``secrets:`` list), the daemon runs it, and nothing that leaves holds one: the reply of every read command
(and its error), a state-changing reply, every web page and JSON twin, the event stream, the hook payloads,
and the daemon's log.
"""

from __future__ import annotations

import http.client
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from helpers import PY, DaemonHandle, free_port, request, wait_for
from helpers.strategies import SECRET, SECRET_NAME
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.commands import COMMANDS
from foss_supervisor.errors import SupervisorError

APP = """import os, sys, http.server
print("env", sorted(os.environ.items()), "argv", sys.argv, "cwd", os.getcwd(), flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler).serve_forever()
"""
WEB_PATHS = (
    "/",
    "/?format=json",
    "/api/status",
    "/config",
    "/config?format=json",
    "/logs?format=json",
    "/logs/app?format=json",
    "/logs/daemon?format=json",
    "/health",
    "/api/v1/health",
    "/metrics",
)


def _arg_forms(secret: str) -> list[list[str]]:
    return [
        [f"--password={secret}"],
        ["--api-token", secret],
        [f"DB_PASSWORD={secret}"],
        [f"postgres://u:{secret}@db/x"],
        [f"host=db password={secret}"],
    ]


@st.composite
def planted(draw: st.DrawFn) -> dict[str, Any]:
    """Secrets, one per string field, and how each is worded (names, schemes, argument forms)."""
    secrets = draw(st.lists(SECRET, min_size=11, max_size=11, unique=True))
    return {
        "secrets": secrets,
        "scheme": draw(st.sampled_from(["postgres", "redis", "amqp", "mongodb+srv", "mysql"])),
        "user": draw(st.sampled_from(["", "app", "svc_1"])),
        "env_name": draw(SECRET_NAME.filter(lambda n: re.fullmatch(r"[A-Za-z_]\w*", n) is not None)),
        "file_name": draw(SECRET_NAME.filter(lambda n: re.fullmatch(r"[A-Za-z_]\w*", n) is not None)),
        "arg_form": draw(st.integers(0, len(_arg_forms("x")) - 1)),
    }


def _config(tmp: Path, plan: dict[str, Any], app_port: int, closed_port: int) -> str:
    s = plan["secrets"]
    listed = s[0]  # in `secrets:`; planted in paths, a plain env value, an argument and a probe's path
    workdir = tmp / f"work-{listed}"
    workdir.mkdir()
    (tmp / "app.env").write_text(f"{plan['file_name']}={s[1]}\n")
    probe = tmp / f"probe-{listed}.sh"
    probe.write_text("#!/bin/sh\nexit 1\n")
    probe.chmod(0o755)
    hooks_out = tmp / "hooks.jsonl"
    recorder = f"import sys; open({str(hooks_out)!r}, 'ab').write(sys.stdin.buffer.read() + b'\\n')"
    args = [str(app_port), *_arg_forms(s[2])[plan["arg_form"]], f"--greeting={listed}"]
    env = {
        "DATABASE_URL": f"{plan['scheme']}://{plan['user']}:{s[3]}@db.example:5432/x",
        plan["env_name"]: s[4],
        "GREETING": f"hello {listed}",
        "MODE": "prod",
    }
    config = {
        "secrets": [listed, "${FOSS_TEST_LISTED}"],
        "programs": {
            "app": {
                "command": [PY, "-c", APP, *args],
                "cwd": str(workdir),
                "env": env,
                "env_file": str(tmp / "app.env"),
                "start_timeout": 0.2,
                "log": {"file": str(tmp / f"logs-{listed}" / "app.log")},
                "health": {"http": f"http://probe:{s[5]}@127.0.0.1:{app_port}/", "interval": "300ms"},
            },
            "sick": {
                "command": [PY, "-c", "import time; time.sleep(300)", s[6]],
                "start_timeout": 0.1,
                "autorestart": "never",
                "health": {"exec": [str(probe)], "interval": "200ms", "failure_threshold": 1},
            },
        },
        "hooks": {
            "recorder": {"on": "all", "command": [PY, "-c", recorder]},
            "pager": {
                "on": "all",
                "url": f"http://hook:{s[7]}@127.0.0.1:{closed_port}/x?token={s[8]}",
                "headers": {"Authorization": f"Bearer {s[9]}", "X-Api-Key": s[10]},
                "retries": 0,
                "timeout": "1s",
            },
        },
    }
    return yaml.safe_dump(config, default_flow_style=False)


def _event_stream(port: int, token: str, since: str, until: float) -> str:
    """What /api/events sends from the first event on, read until ``until`` (monotonic seconds)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10.0)
    conn.request("GET", f"/api/events?since={since}", headers={"Authorization": f"Bearer {token}"})
    resp = conn.getresponse()
    got = b""
    try:
        while (left := until - time.monotonic()) > 0:
            assert conn.sock is not None
            conn.sock.settimeout(left)
            try:
                chunk = resp.read1(65536)
            except TimeoutError:
                break  # the stream stays open: what it had to send by now was sent
            if not chunk:
                break
            got += chunk
    finally:
        conn.close()
    return got.decode("utf-8", "replace")


def _read_commands(d: DaemonHandle) -> dict[str, str]:
    """Every read-only command, asked over the control socket: its reply or its refusal, as text."""
    args = {
        "log_read": [{"source": s} for s in ("app", "sick", "daemon")],
        "query": [{"sql": "SELECT 1"}],
        "pipeline_report": [{"name": "x"}],
        "pipeline_run_info": [{"run_id": "x"}],
        "pipeline_sources": [{"name": "x"}],
        "logs": [{"names": ["all"]}],
    }
    out = {}
    for name, cmd in COMMANDS.items():
        if cmd.mutating:
            continue
        for i, given_args in enumerate(args.get(name, [{}])):
            try:
                out[f"{name}#{i}"] = json.dumps(d.call(name, **given_args))
            except SupervisorError as exc:
                out[f"{name}#{i}"] = str(exc)
    return out


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(planted())
def test_no_planted_secret_leaves_a_running_daemon(plan: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="redact-") as tmp_name:
        tmp = Path(tmp_name)
        d = DaemonHandle(tmp, free_port())
        d.env["FOSS_TEST_LISTED"] = plan["secrets"][6]  # listed as ${FOSS_TEST_LISTED}: interpolated
        app_port, closed_port = free_port(), free_port()
        d.write_config(_config(tmp, plan, app_port, closed_port))
        seen: dict[str, str] = {}
        try:
            d.start()
            token = (d.state_dir / "api-token").read_text().strip()
            wait_for(lambda: d.program("app")["health"] == "healthy", 20, "app healthy (http probe with userinfo)")
            wait_for(lambda: d.program("sick")["health"] == "unhealthy", 20, "sick unhealthy (exec probe)")
            seen["restart"] = json.dumps(d.call("restart", names=["app"]))
            wait_for(lambda: d.program("app")["health"] == "healthy", 20, "app healthy again")
            hooks_out = tmp / "hooks.jsonl"
            wait_for(lambda: hooks_out.exists() and b"program_unhealthy" in hooks_out.read_bytes(), 20, "hooks")
            seen |= _read_commands(d)
            for path in WEB_PATHS:
                seen[path] = request(
                    d.port, "GET", path, headers={"Authorization": f"Bearer {token}", "Accept": "text/html"}
                ).text
            boot = re.search(r'name="events-since" content="([0-9a-f]+)-\d+"', seen["/"])
            assert boot, "the page names its event stream"
            seen["/api/events"] = _event_stream(d.port, token, f"{boot[1]}-0", time.monotonic() + 2.0)
            assert "StateChanged" in seen["/api/events"] and "HealthChanged" in seen["/api/events"]
            seen["hook payloads"] = hooks_out.read_text()
            wait_for(lambda: "hook_failed" in (d.state_dir / "foss-supervisor.log").read_text(), 20, "the url hook")
        finally:
            d.cleanup()
        seen["daemon log"] = (d.state_dir / "foss-supervisor.log").read_text()
        seen["daemon stderr"] = d.stderr()
        assert (tmp / f"logs-{plan['secrets'][0]}" / "app.log").exists()  # the planted values were really used
    leaks = {where: [s for s in plan["secrets"] if s in text] for where, text in seen.items()}
    assert not {where: found for where, found in leaks.items() if found}
    assert "hello ***" in seen["logs#0"]  # the program printed its environment: read back redacted


def test_passwords_in_urls_under_harmless_env_names_are_redacted(daemon: DaemonHandle) -> None:
    """Repro 27: DATABASE_URL, REDIS_URL, AMQP held passwords that status --json, /api/status, /config and /
    showed in clear, while the same URL as an argument was redacted."""
    env = {
        "DATABASE_URL": "postgres://user:pw-in-env-1@db/x",
        "REDIS_URL": "redis://:pw-in-env-2@cache:6379/0",
        "AMQP": "amqp://guest:pw-in-env-3@mq//",
    }
    command = [PY, "-c", "import time; time.sleep(300)", "--db", "postgres://user:argpw@db/x"]
    daemon.write_config(yaml.safe_dump({"programs": {"api": {"command": command, "env": env, "start_timeout": 0.1}}}))
    daemon.start()
    token = (daemon.state_dir / "api-token").read_text().strip()
    shown = {"status --json": daemon.cli("status", "--json").stdout}
    for path in ("/api/status", "/config?format=json", "/?format=json", "/"):
        shown[path] = request(
            daemon.port, "GET", path, headers={"Authorization": f"Bearer {token}", "Accept": "text/html"}
        ).text
    leaks = {
        where: [pw for pw in ("pw-in-env-1", "pw-in-env-2", "pw-in-env-3", "argpw") if pw in text]
        for where, text in shown.items()
    }
    assert not {where: found for where, found in leaks.items() if found}
    assert json.loads(shown["status --json"])["programs"][0]["env"] == {
        "DATABASE_URL": "postgres://user:***@db/x",
        "REDIS_URL": "redis://:***@cache:6379/0",
        "AMQP": "amqp://guest:***@mq//",
    }
