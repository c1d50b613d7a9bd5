"""The machine under test: this interpreter, the repository, free ports, bounded waits, and ending processes
by PID (never by name)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from foss_supervisor.base.poll import poll_until

__all__ = [
    "PY",
    "REPO",
    "deep_dir",
    "fifo_writer",
    "fill",
    "free_port",
    "full_backlog",
    "is_gone",
    "kill_recorded_children",
    "kill_tree_by_pid",
    "need",
    "need_root",
    "tmpfs",
    "wait_for",
    "wait_until",
]

PY = sys.executable
#: the repository's root (tests/..): the package, configs/, docs/, README.md, benchmarks/
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick, never 5000 by design)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout_s: float = 10.0, what: str = "condition") -> Any:
    """Bounded poll with growing intervals (:func:`~foss_supervisor.base.poll.poll_until`); returns the first
    truthy value of ``check``, raises ``TimeoutError`` naming ``what`` after ``timeout_s``."""
    value = poll_until(check, timeout_s)
    if not value:
        raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")
    return value


async def wait_until(check: Callable[[], Any], timeout_s: float = 10.0, what: str = "condition") -> Any:
    """:func:`wait_for` on the event loop: polls ``check`` between awaits (the code under test runs meanwhile);
    returns its first truthy value, raises ``TimeoutError`` naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while not (value := check()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.05)
    return value


def deep_dir(tmp: Path, length: int) -> Path:
    """A folder under ``tmp`` whose path is ``length`` bytes long (not created)."""
    return tmp / ("d" * (length - len(os.fsencode(str(tmp))) - 1))


def need(tool: str, install: str, path: str | None = None) -> str:
    """The path of ``tool`` (looked up on ``path``, default ``$PATH``). A test that needs it fails when it is
    missing, saying ``install`` (the line .ci/run runs): the test command never skips it silently."""
    found = shutil.which(tool, path=path)
    if found is None:
        pytest.fail(f"{tool} is missing: {install} (.ci/run installs it)", pytrace=False)
    return found


def need_root(why: str) -> None:
    """Fail the test (never skip it) unless it runs as root, as .ci/run does; ``why`` says what needs root."""
    if os.geteuid() != 0:
        pytest.fail(f"needs root ({why}): run the tests as root, as .ci/run does", pytrace=False)


def is_gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for its (re)parent to reap it."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def kill_tree_by_pid(pid: int) -> None:
    """SIGKILL a process and every descendant we can still see (by PID, nothing else)."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(procs, timeout=5)


def kill_recorded_children(state_dir: Path) -> None:
    """Kill what a daemon recorded in children.json, checking the start time first."""
    path = state_dir / "children.json"
    if not path.exists():
        return
    with contextlib.suppress(ValueError, OSError):
        for rec in json.loads(path.read_text()).values():
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError, PermissionError):
                if abs(psutil.Process(rec["pid"]).create_time() - rec["create_time"]) < 0.01:
                    os.killpg(rec["pid"], signal.SIGKILL)


@contextlib.contextmanager
def full_backlog(path: Path) -> Iterator[tuple[socket.socket, list[socket.socket]]]:
    """A real listening Unix socket at ``path`` whose backlog is full: the next connect gets EAGAIN.

    Yields the listener and the connections that fill its queue; closes them all on the way out.
    """
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(0)
    fillers: list[socket.socket] = []
    try:
        for _ in range(64):  # Linux queues backlog + 1 connections
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(str(path))
            except BlockingIOError:
                s.close()
                break
            fillers.append(s)
        else:
            pytest.fail("the backlog never filled")
        yield server, fillers
    finally:
        for s in fillers:
            s.close()
        server.close()


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """``path`` as a fresh tmpfs of ``size`` (e.g. ``"2m"``) for the block; unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    if result.returncode != 0:
        pytest.fail(
            f"cannot mount a tmpfs: {result.stderr.strip() or result.returncode} (needs root, as .ci/run runs)",
            pytrace=False,
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10)


def fill(folder: Path) -> Path:
    """Fill the filesystem of ``folder`` to the last byte; returns the filler file (delete it to free)."""
    filler = folder / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as f:
        for _ in range(1 << 16):  # bounded: 4 GB at most
            try:
                f.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    for size in (4096, 512, 1):  # the last partial blocks too
        with contextlib.suppress(OSError), filler.open("ab", buffering=0) as f:
            for _ in range(1024):
                f.write(b"\0" * size)
    return filler


def fifo_writer(path: Path) -> int | None:
    """A write end (an fd, the caller closes it) of the FIFO ``path`` once a reader has it open, else None (Linux:
    ENXIO until then): with :func:`wait_for`, a deterministic way to wait until code under test blocks reading it."""
    try:
        return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return None
        raise
