"""What the CLI shows: tagged lines, exit codes, the columns of a program, and a closed pipe survived.

Stdlib only (the CLI starts fast). A closed pipe (``foss-supervisor restart | head -1``) must not
abort a command halfway: ``restart`` that dies after stopping the old daemon and before starting the
new one leaves nothing running. :func:`guard_output` wraps stdout and stderr so that the first
``BrokenPipeError`` points the descriptor at ``/dev/null`` and the command carries on in silence;
:func:`output_closed` tells loops that only print (``logs -f``) to end.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import time

from foss_supervisor.base.processstates import ProcessState
from foss_supervisor.base.wanted import as_wanted
from foss_supervisor.errors import ConfigRefused, DaemonBusy, NotRunning, SupervisorError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ``status`` imports this module
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, TextIO

__all__ = [
    "EXIT_BUSY",
    "EXIT_FAIL",
    "EXIT_NOT_AS_WANTED",
    "EXIT_NOT_RUNNING",
    "EXIT_OK",
    "EXIT_USAGE",
    "MAX_DURATION_S",
    "as_wanted",
    "duration_s",
    "exit_code",
    "fmt_uptime",
    "guard_output",
    "info_column",
    "output_closed",
    "print_status",
    "say",
    "worker_info",
]

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_NOT_RUNNING = 0, 1, 2, 3
# sysexits' EX_TEMPFAIL: the daemon was too busy to take the connection (after retrying); try again later
EXIT_BUSY = 75
MAX_DURATION_S = 86400.0  # the longest wait or timeout a command line may ask for (a day)


def duration_s(text: str) -> float:
    """The argparse type of every duration option (``--wait``, ``--timeout``): seconds, a finite number from
    0 to :data:`MAX_DURATION_S`. Anything else (``nan``, ``inf``, negative, not a number) is a usage error
    (exit 2) naming the range, never a traceback."""
    import argparse  # only when a duration is given: not a cost of ``status``

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.0 <= value <= MAX_DURATION_S:  # false for nan too
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration from 0 to {MAX_DURATION_S:g} seconds")
    return value


# supervisorctl's convention: `status` exits 3 when a selected program is not in the state it should be in
EXIT_NOT_AS_WANTED = 3


def say(tag: str, message: str) -> None:
    """The old startup script's style of output: ``[INFO] ...``, ``[SUCCESS] ...``."""
    stream = sys.stderr if tag in ("ERROR", "WARN") else sys.stdout
    print(f"[{tag}] {message}", file=stream, flush=True)


def fmt_uptime(seconds: float | None) -> str:
    """``H:MM:SS``, or ``DdHh`` past a day; ``-`` when not running."""
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 86400}d{s % 86400 // 3600}h" if s >= 86400 else f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def info_column(p: Mapping[str, Any]) -> str:
    """The INFO column: what an operator needs beyond state and uptime (supervisorctl's last column)."""
    if p["state"] == ProcessState.RUNNING:
        parts = [p.get("status_text") or "", p.get("health_detail") or ""]
        if p.get("spawns", 0) > 1:
            parts.append(f"started {p['spawns']} times")
        return "; ".join(x for x in parts if x)
    reason = str(p["reason"])
    if p["state"] == ProcessState.BACKOFF and isinstance(p.get("next_attempt_at"), int | float):
        # the reason says how long the wait was when it began; this says when the next attempt comes
        at = time.strftime("%H:%M:%S", time.localtime(p["next_attempt_at"]))
        left = max(0.0, p["next_attempt_at"] - time.time())
        reason = f"{reason.split('; retry in ')[0]}; next attempt at {at} (in {left:.1f}s)"
    if p.get("disabled") and p["wanted"] == "stopped":
        return f"disabled; {reason}" if reason else "disabled (start it by name)"
    return reason


def print_status(result: Mapping[str, Any], as_json: bool, services: bool = True) -> int:
    """Print a ``status`` reply (a table, or the JSON with ``all_as_wanted``); return the exit code: 3 when a
    program is not in its wanted state (supervisorctl's convention), 0 otherwise and always with JSON.
    ``services``: list the daemon's own services (the dashboard, the pipeline worker) after the programs."""
    code = EXIT_OK if all(as_wanted(p) for p in result["programs"]) else EXIT_NOT_AS_WANTED
    if as_json:  # a script reads the states from the JSON: exit 0 whenever the daemon answered
        print(json.dumps({**result, "all_as_wanted": code == EXIT_OK}, indent=2))
        return EXIT_OK
    d = result["daemon"]
    print(
        f"foss-supervisor {d['version']}  pid {d['pid']}  {d['phase']}  up {fmt_uptime(d['uptime_s'])}  "
        f"dashboard {d['dashboard_url']}"
    )
    with_ports = any("ports" in p for p in result["programs"])
    rows = [("NAME", "STATE", "HEALTH", "PID", "UPTIME", "INFO")]
    worker = (result.get("pipelines") or {}).get("worker")
    starred = False  # a row not in its wanted state (a service's counts here, not in the exit code)
    for p in result["programs"] + (result.get("services", []) if services else []):
        state = p["state"] if as_wanted(p) else f"{p['state']}*"
        starred = starred or not as_wanted(p)
        info = worker_info(worker, p) if worker is not None and p["name"] == worker["name"] else info_column(p)
        if with_ports:  # what it listens on, before the free text
            info = f"{','.join(p.get('ports') or []) or '-'}  {info}".rstrip()
        rows.append((p["name"], state, p["health"], str(p["pid"] or "-"), fmt_uptime(p["uptime_s"]), info))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        print(("  ".join(c.ljust(w) for c, w in zip(row[:5], widths, strict=True)) + "  " + row[5]).rstrip())
    if starred:
        print("* not in its wanted state (see `foss-supervisor logs NAME`)")
    for o in result.get("objectives") or ():  # freshness and uptime objectives (docs/graph.md)
        print(
            f"objective {o['node']}  {o['kind']}  {o['state'].upper() if o['state'] != 'ok' else 'ok'}  {o['detail']}"
        )
    return code


def worker_info(w: Mapping[str, Any], p: Mapping[str, Any]) -> str:
    """The INFO column of the pipeline worker's row (``p``: its service entry; ``w``: ``pipelines.worker``):
    ``idle  memory 96.4 MiB of 2 GiB  restarts 1 (last: recycled_rss)``, or why it does not run."""
    restarts = ""
    if w.get("restarts"):
        restarts = f"  restarts {w['restarts']} (last: {(w.get('last_restart') or {}).get('reason', '?')})"
    if w["pid"] is None:
        why = (
            "starts on first use" if w["state"] == ProcessState.STOPPED and p["wanted"] == "stopped" else info_column(p)
        )
        return f"{why}{restarts}"
    busy = ", ".join(w["active_runs"]) if w.get("active_runs") else ("busy" if w["busy"] else "idle")
    memory = "-" if w["rss_bytes"] is None else f"{w['rss_bytes'] / 2**20:.1f} MiB"
    limit = f" of {w['memory_limit'] / 2**30:g} GiB" if isinstance(w.get("memory_limit"), int) else ""
    return f"{busy}  memory {memory}{limit}{restarts}"


def exit_code(command: Callable[[], int], control_socket: object) -> int:
    """Run one command and turn what it raised into its tagged message and exit code: 3 when no daemon
    answers on ``control_socket``, 75 when it is too busy, 2 for a refused config, 1 for any other refusal
    or error, 130 on Ctrl-C."""
    try:
        return command()
    except NotRunning:
        say("ERROR", f"foss-supervisor is not running (no answer on {control_socket})")
        return EXIT_NOT_RUNNING
    except DaemonBusy as exc:
        say("ERROR", str(exc))
        return EXIT_BUSY
    except ConfigRefused as exc:
        say("ERROR", str(exc))
        return EXIT_USAGE
    except SupervisorError as exc:  # CommandError and the rest of the tree
        say("ERROR", str(exc))
        return EXIT_FAIL
    except KeyboardInterrupt:
        return 130


# a write to a file on a full disk (or over quota, or a failing device): that output is lost, nothing else
_DEVICE_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


class _Guarded:
    """A text stream whose writes and flushes never raise BrokenPipeError, nor a full disk's errors.

    A closed pipe silences the stream for good; a full disk (``ENOSPC`` and its kin) drops what could not
    be written, and later writes are tried again (the daemon's stderr file is where its startup says why).
    """

    def __init__(self, stream: TextIO, text: _Guarded | None = None) -> None:
        self._stream = stream
        self._text = text  # the text stream this one is the ``buffer`` of
        self._buffer: _Guarded | None = None
        self.closed_pipe = False

    @property
    def buffer(self) -> _Guarded:
        """The binary stream under this one, guarded the same way (``export`` writes bytes to stdout)."""
        if self._buffer is None:
            self._buffer = _Guarded(self._stream.buffer, text=self)  # type: ignore[arg-type]
        return self._buffer

    def write(self, text: Any) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._silence()
        except OSError as exc:
            if exc.errno not in _DEVICE_FULL:
                raise
        return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._silence()
        except OSError as exc:
            if exc.errno not in _DEVICE_FULL:
                raise

    def _silence(self) -> None:
        self.closed_pipe = True
        if self._text is not None:
            self._text.closed_pipe = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())  # what is still buffered goes nowhere, quietly
        finally:
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard_output() -> None:
    """Wrap ``sys.stdout`` and ``sys.stderr`` (once)."""
    if not isinstance(sys.stdout, _Guarded):
        sys.stdout = _Guarded(sys.stdout)
    if not isinstance(sys.stderr, _Guarded):
        sys.stderr = _Guarded(sys.stderr)


def output_closed() -> bool:
    """Whether the reader of stdout has gone."""
    return bool(getattr(sys.stdout, "closed_pipe", False))
