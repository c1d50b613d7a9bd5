"""Socket activation with a real child: a listening socket passed in by fd (as systemd passes it) is served,
and a passed fd that is not a socket is reported."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

# What systemd does between fork and exec: the socket goes to fd 3, LISTEN_PID is set to the pid the program
# will keep after exec. The launcher does the same with dup2 + execv.
RECV_TIMEOUT_S = 5.0

LAUNCHER = textwrap.dedent(
    """
    import os, sys
    fd = int(sys.argv[1])
    if fd != 3:
        os.dup2(fd, 3)  # inheritable, as systemd passes it
        os.close(fd)
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
    """
)


CHILD = textwrap.dedent(
    """
    import fcntl, json, os, socket
    from foss_supervisor.systemd.notify import listen_sockets, named_listen_sockets
    try:
        pairs = named_listen_sockets()
    except OSError as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        raise SystemExit(0)
    print(json.dumps({
        "pid": os.getpid(),
        "listen_pid": os.environ["LISTEN_PID"],
        "sockets": [
            {"name": name, "fd": s.fileno(), "family": int(s.family), "type": int(s.type),
             "addr": list(s.getsockname()), "cloexec": bool(fcntl.fcntl(s.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC)}
            for name, s in pairs
        ],
        "for_parent": [s.fileno() for s in listen_sockets(os.environ, os.getppid())],
    }), flush=True)
    conn, _ = pairs[0][1].accept()
    conn.sendall(b"served by the passed socket")
    conn.close()
    """
)


@contextlib.contextmanager
def activated_child(tmp_path: Path, fd: int, names: str = "dashboard") -> Iterator[subprocess.Popen[str]]:
    """Run CHILD with ``fd`` passed on as fd 3, LISTEN_FDS=1 and LISTEN_PID = the child's own pid."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "LISTEN_FDS": "1", "LISTEN_FDNAMES": names}
    env.pop("LISTEN_PID", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(fd), str(script)],
        env=env,
        pass_fds=(fd,),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


def _report(proc: subprocess.Popen[str]) -> dict[str, object]:
    assert proc.stdout is not None
    line = proc.stdout.readline()  # bounded: the child prints at once or exits (EOF)
    assert line, f"the child printed nothing (exit {proc.wait(timeout=10)})"
    report: dict[str, object] = json.loads(line)
    return report


def test_socket_activation_with_a_socket_passed_in_by_fd(tmp_path: Path) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    with activated_child(tmp_path, listener.fileno()) as proc:
        listener.close()  # from here on only the child holds the port
        report = _report(proc)
        assert report["listen_pid"] == str(report["pid"]) == str(proc.pid)
        assert report["sockets"] == [
            {
                "name": "dashboard",
                "fd": 3,
                "family": int(socket.AF_INET),
                "type": int(socket.SOCK_STREAM),
                "addr": ["127.0.0.1", port],
                "cloexec": True,
            }
        ]
        assert report["for_parent"] == []
        with socket.create_connection(("127.0.0.1", port), timeout=RECV_TIMEOUT_S) as client:
            client.settimeout(RECV_TIMEOUT_S)
            assert client.recv(100) == b"served by the passed socket"
        assert proc.wait(timeout=10) == 0


def test_a_passed_fd_that_is_not_a_socket_is_reported(tmp_path: Path) -> None:
    with (tmp_path / "not-a-socket").open("w") as f, activated_child(tmp_path, f.fileno()) as proc:
        report = _report(proc)
    assert "fd 3 is not a usable socket" in str(report["error"])
