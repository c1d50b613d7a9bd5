"""A second local user against a real daemon run by root (issue 16, items 1 and 4).

User ``nobody`` (``setpriv --reuid=nobody --regid=nogroup --clear-groups``) tries every operation of the
served OpenAPI description over 127.0.0.1, with no token, a wrong Bearer token and a wrong cookie, with
path parameters naming things that exist (the program, its log, a run, a warehouse table) and the SQL of
the reproduction (the table list, a root-only file). It gets nothing beyond /health's verdict and counts:
no program name, no log line, no table name, no run id, no token in any body. It cannot read the token
files, and the control socket refuses it by its uid even when the socket file is made world-writable.

Needs root (to switch users): CI runs as root. ``setpriv`` comes with util-linux, in every Debian.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from helpers import HEALTH_SUMMARY_KEYS, PY, DaemonHandle, free_port, get, need, need_root, wait_for

from foss_supervisor.web.access import HEALTH, OPEN

MARK = "bh-local-log-5d1e"
PROGRAM = "ledger-writer-q7"
SECRET_FILE_TEXT = "root-only-marker-1c9b"
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"

# run as nobody: each request of stdin's JSON list, answered as {status, body (text), headers}
CLIENT = r"""
import json, sys, urllib.error, urllib.request
out = []
for method, url, headers, body in json.load(sys.stdin):
    req = urllib.request.Request(url, data=body.encode() if body is not None else None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            ctype = r.headers.get("Content-Type", "")
            data = r.read(2) if ctype.startswith("text/event-stream") else r.read(1 << 20)
            out.append({"status": r.status, "body": data.decode("utf-8", "replace"), "ctype": ctype})
    except urllib.error.HTTPError as e:
        out.append({"status": e.code, "body": e.read(1 << 20).decode("utf-8", "replace"),
                    "ctype": e.headers.get("Content-Type", "")})
    except Exception as e:
        out.append({"status": 0, "body": repr(e), "ctype": ""})
files = {}
for path in sys.argv[1:]:
    try:
        files[path] = open(path).read()
    except OSError as e:
        files[path] = type(e).__name__
json.dump({"answers": out, "files": files}, sys.stdout)
"""
SOCKET_CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
try:
    s.connect(sys.argv[1])
    refused = s.recv(65536)  # a peer of another uid is answered at once, before it asks anything
    if not refused:
        s.sendall(b'{"id": 1, "cmd": "status", "args": {}}\n')
    print((refused or s.recv(65536)).decode(errors="replace"))
except OSError as e:
    print(type(e).__name__)
"""


def as_nobody(code: str, *args: str, stdin: str = "") -> str:
    """Run ``code`` with the system Python as user nobody (no groups), from /."""
    setpriv = need("setpriv", "apt-get install -y util-linux")
    argv = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", SYSTEM_PYTHON, "-c", code, *args]
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=300, cwd="/")
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def root_daemon() -> Iterator[DaemonHandle]:
    """A daemon of root's with a program that logs a marker and a pipeline whose run filled the warehouse.

    Its folder is 0711 (others may pass, not list) so that the socket's own mode and peer check are what
    refuse nobody; everything in it keeps the modes the daemon gives it.
    """
    need_root("switching to user nobody")
    tmp = Path(tempfile.mkdtemp(prefix="foss-local-user-"))
    tmp.chmod(0o711)
    handle = DaemonHandle(tmp, free_port())
    handle.write_config(
        f"programs:\n  {PROGRAM}:\n    command: [{PY!r}, '-u', '-c', 'import time; print(\"{MARK}\"); "
        f"time.sleep(600)']\n    start_timeout: 0.1\n"
        "pipelines:\n  orders: {on_new_files: false, demo_data: false}\n"
    )
    try:
        handle.start()
        handle.state_dir.chmod(0o711)
        handle.call("demo_data", orders=1500)
        run = handle.call("pipeline_run", name="orders", wait=True)
        assert run["status"] == "succeeded", run
        handle.run_id = run["run_id"]  # type: ignore[attr-defined]
        wait_for(lambda: MARK in "".join(handle.call("log_read", source=PROGRAM)["lines"]), 10, "the marker")
        yield handle
    finally:
        handle.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def _attempts(d: DaemonHandle, spec: dict[str, Any]) -> list[tuple[str, str, dict[str, str], str | None, str]]:
    """(method, URL, headers, body, operation's x-part) for every operation, each as three strangers."""
    tables = _tables(d)
    values = {
        "source": PROGRAM,
        "run_id": d.run_id,
        "name": "orders",
        "table": tables[0],  # type: ignore[attr-defined]
        "file": "latest.html",
    }
    query = {
        "sql": f"SELECT content FROM read_text('{d.tmp / 'secret.txt'}') UNION ALL "
        "SELECT schema_name || '.' || table_name FROM duckdb_tables()",
        "format": "json",
        "next": "/",
        "since": "",
        "_search": "a",
        "table": tables[0],
    }
    out = []
    for template, ops in spec["paths"].items():
        path = "/".join(quote(values[p[1:-1]], safe="") if p.startswith("{") else p for p in template.split("/"))
        for method, op in ops.items():
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
            params = {k: v for k, v in query.items() if k in names}
            if "format" in params:  # a value the operation accepts
                enum = next(p for p in op["parameters"] if p["name"] == "format")["schema"]["enum"]
                params["format"] = "json" if "json" in enum else enum[-1]
            url = f"http://127.0.0.1:{d.port}{path}" + ("?" + urlencode(params) if params else "")
            body = None
            if method == "post":
                example = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("example")
                body = json.dumps(example or {}).replace('"web"', f'"{PROGRAM}"')
            for headers in (
                {},
                {"Authorization": "Bearer not-the-token"},
                {"Cookie": "foss_token=not-the-token"},
                {"Accept": "text/html"},
            ):
                out.append((method.upper(), url, {"Content-Type": "application/json", **headers}, body, op["x-part"]))
    return out


def test_nobody_learns_nothing_but_the_health_verdict(root_daemon: DaemonHandle) -> None:
    d = root_daemon
    (d.tmp / "secret.txt").write_text(SECRET_FILE_TEXT + "\n")
    (d.tmp / "secret.txt").chmod(0o600)
    spec = _openapi(d)
    attempts = _attempts(d, spec)
    assert len({(m, u.split("?")[0]) for m, u, *_ in attempts}) == sum(len(ops) for ops in spec["paths"].values())
    token_files = [str(d.state_dir / "api-token"), str(d.state_dir / "viewer-token")]
    reply = json.loads(as_nobody(CLIENT, *token_files, stdin=json.dumps([a[:4] for a in attempts])))
    secrets = [
        PROGRAM,
        MARK,
        SECRET_FILE_TEXT,
        d.run_id,  # type: ignore[attr-defined]
        (d.state_dir / "api-token").read_text().strip(),
        (d.state_dir / "viewer-token").read_text().strip(),
        *[t.split(".")[1] for t in _tables(d)],
    ]
    for (method, url, headers, _, part), answer in zip(attempts, reply["answers"], strict=True):
        where = (method, url, headers)
        if part == HEALTH:
            assert answer["status"] in (200, 503) and set(json.loads(answer["body"])) == HEALTH_SUMMARY_KEYS, where
        elif part == OPEN:
            assert answer["status"] in (200, 403, 415), where  # the login form or icon; a refused token or body
        else:
            assert answer["status"] == 401, (where, answer["status"], answer["body"][:300])
        # a name shows only where the client's own URL echoes it (the login form's next)
        leaked = [s for s in secrets if s in answer["body"] and quote(s, safe="") not in url and s not in url]
        assert leaked == [], (where, leaked, answer["body"][:300])
    assert reply["files"] == dict.fromkeys(token_files, "PermissionError")
    assert d.program(PROGRAM)["state"] == "RUNNING"  # no command of nobody's ran


def test_the_control_socket_refuses_another_uid(root_daemon: DaemonHandle) -> None:
    d = root_daemon
    sock = str(d.socket_path)
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    assert as_nobody(SOCKET_CLIENT, sock).strip() == "PermissionError"  # the file's mode
    os.chmod(sock, 0o666)  # an operator's mistake: the peer check still holds
    try:
        answer = as_nobody(SOCKET_CLIENT, sock)
    finally:
        os.chmod(sock, 0o600)
    assert "permission denied: peer has another uid" in answer and PROGRAM not in answer
    assert pwd.getpwnam("nobody").pw_uid != 0


def _openapi(d: DaemonHandle) -> dict[str, Any]:
    return get(d.port, "/api/v1/openapi.json", timeout_s=30).json()  # type: ignore[no-any-return]


def _tables(d: DaemonHandle) -> list[str]:
    """The pipelines' tables: their names are the operator's. The ``supervision`` schema's (events, host...)
    are the same on every host and documented (docs/history.md): a page saying "host" leaks nothing."""
    sql = "SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name <> 'supervision'"
    return [f"{s}.{t}" for s, t in d.call("query", sql=sql)["rows"]]
