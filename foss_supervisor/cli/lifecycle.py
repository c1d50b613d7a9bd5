"""The CLI's instance lifecycle: ``start`` (idempotent: a healthy instance is left alone, an unhealthy or
stale one replaced), ``stop`` (also of a frozen or half-dead daemon, and what it left) and ``restart``.

Split out of :mod:`foss_supervisor.cli.dispatch`, which parses arguments and dispatches to these.

``restart`` (which config the new daemon runs) is in :mod:`foss_supervisor.cli.restart`.

``start`` hears why a daemon it started could not start through a pipe (the SysV daemon's way, see
daemon(7)): the write end is passed to the daemon, named in ``$FOSS_SUPERVISOR_START_REPORT_FD``, and the
daemon writes its reason there before it exits. Its stderr file may be on a full disk and stay empty.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foss_supervisor.base.poll import poll_until
from foss_supervisor.cli.terminal import EXIT_FAIL, EXIT_OK, say
from foss_supervisor.control.client import call
from foss_supervisor.errors import SupervisorError

if TYPE_CHECKING:
    from foss_supervisor.base.procinfo import ProcessIdentity
    from foss_supervisor.config import Config

__all__ = ["HEALTH_BOUND_S", "cmd_start", "cmd_stop", "ping_daemon"]

# An instance that does not answer within this bound is unhealthy and gets replaced by `start`.
HEALTH_BOUND_S = 3.0
# How long `start` waits for a new daemon to report ready.
READY_TIMEOUT_S = 90.0
# The descriptor of the pipe a daemon started by `start` writes why it could not start into (see above).
START_REPORT_ENV = "FOSS_SUPERVISOR_START_REPORT_FD"
MAX_REPORT_BYTES = 64 * 1024


def ping_daemon(config: Config, timeout_s: float) -> dict[str, Any] | None:
    try:
        result = call(config.control_socket, "ping", timeout_s=timeout_s)
        return result if isinstance(result, dict) else None
    except (OSError, SupervisorError, ValueError):
        return None


def _http_health(config: Config, timeout_s: float) -> tuple[int | None, dict[str, Any]]:
    """GET /health with the owner's token (the whole report): (status code, body), or (None, {}) when
    nothing answers in time. Without a readable token the answer is the summary (no ``problems``)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(config.dashboard_url + "health")  # noqa: S310 (our own http:// URL)
    if token := _owner_token(config):
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except ValueError:
            return exc.code, {}
    except (OSError, ValueError):
        return None, {}


# ------------------------------------------------------------------------------------------ start/stop


def _stop_instance(config: Config, pid: int | None, graceful: bool) -> bool:
    """Stop a running daemon: the shutdown command when it answers, else SIGTERM (and SIGCONT), then SIGKILL.

    A daemon that had to be SIGKILLed leaves its programs behind: they are stopped here from its
    ``children.json`` record, whole process groups, so ``stop`` never leaves a program running.
    A stopped daemon (SIGSTOP, state T) is continued first, so it answers and stops its programs itself.
    Only the process that holds the PID lock is signalled, and the shutdown command goes only to the one
    that answers with that lock's instance id.
    """
    from foss_supervisor.base.pidfile import PidFile, answers_as_holder
    from foss_supervisor.base.procinfo import identity_of, read_stat, terminate, wait_gone
    from foss_supervisor.cli.holder import proven_holder  # psutil with it: only when stopping

    pidfile = PidFile(config.pid_file)
    holder = proven_holder(pidfile, pid, lambda: ping_daemon(config, HEALTH_BOUND_S), config.control_socket)
    ident = identity_of(holder) if holder else None
    longest = max((p.stop_timeout_s for p in config.programs.values()), default=0.0)

    def gone() -> bool:
        return not pidfile.inspect().locked and (ident is None or not ident.alive())

    stat = read_stat(ident.pid) if ident is not None else None
    if ident is not None and stat is not None and stat.state in ("T", "t"):
        say(
            "WARN",
            f"the daemon (pid {ident.pid}) is stopped (state {stat.state}: SIGSTOP or a debugger); "
            "sending SIGCONT so it can stop its programs",
        )
        _continue(ident)
    if graceful and not answers_as_holder(ping_daemon(config, HEALTH_BOUND_S), pidfile):
        graceful = False  # whatever answers there is not the daemon that holds the lock: no command to it
    if graceful:
        try:
            call(config.control_socket, "shutdown", timeout_s=HEALTH_BOUND_S)
        except (OSError, SupervisorError):
            graceful = False
        else:
            if (ident is None or wait_gone(ident, longest * 2 + 30.0)) and poll_until(gone, 5.0):
                return True
            say("WARN", "the daemon did not exit after the shutdown command; sending signals")
    if ident is not None:
        # SIGCONT with the SIGTERM lets a stopped daemon wake up and stop its programs itself
        grace = max(5.0, longest + 5.0)
        say("INFO", f"stopping pid {ident.pid}: SIGTERM, then SIGKILL after {grace:g}s")
        outcome = terminate(ident, grace)
        say("INFO", f"pid {ident.pid} {outcome}")
        if outcome == "killed":
            _stop_leftovers(config)
    return bool(poll_until(gone, 10.0)) and _programs_gone(config)


def _continue(ident: ProcessIdentity) -> None:
    """SIGCONT to ``ident``, through a pidfd opened before its identity is checked (never a reused PID)."""
    import signal

    try:
        fd = os.pidfd_open(ident.pid)
    except OSError:
        return
    try:
        if ident.alive():
            signal.pidfd_send_signal(fd, signal.SIGCONT)
    except OSError:
        pass
    finally:
        os.close(fd)


def _programs_gone(config: Config) -> bool:
    """After the daemon exited: is nothing it recorded still running? Stops what is; says what stays."""
    from foss_supervisor.core.statestore import StateStore
    from foss_supervisor.daemon.instance import leftover_processes

    recorded = StateStore(config.state_dir).leftovers()

    def left() -> list[int]:  # their groups, sessions and spawn tags, each checked by start time
        return sorted(m.pid for members in leftover_processes(recorded).values() for m in members)

    if not left():
        return True
    _stop_leftovers(config)
    if still := left():
        say("ERROR", f"programs of the stopped daemon are still running: pids {', '.join(map(str, still[:20]))}")
        return False
    return True


def _stop_leftovers(config: Config) -> None:
    from foss_supervisor.core.statestore import StateStore
    from foss_supervisor.daemon.instance import clean_leftovers

    stops = {name: (p.stop_signal, p.stop_timeout_s) for name, p in config.programs.items()}
    for name, pid, outcome in clean_leftovers(StateStore(config.state_dir), stops):
        say("INFO", f"program {name} (pid {pid}) left by the killed daemon: {outcome}")


def _same_config(pong: dict[str, Any], config: Config) -> bool:
    """Does the answering daemon run ``config``? (An older daemon that does not say is taken as yes.)"""
    theirs = pong.get("config")
    return not theirs or Path(str(theirs)).resolve() == config.source.resolve()


def cmd_start(args: argparse.Namespace, config: Config) -> int:
    """Smart start: leave a healthy instance alone, replace an unhealthy one, else start fresh.

    An instance that answers on the control socket but runs another config file is refused
    (exit 1), unless ``--restart`` asks to replace it.
    """
    from foss_supervisor.base.pidfile import PidFile, answers_as_holder
    from foss_supervisor.base.procinfo import describe

    pidfile = PidFile(config.pid_file)
    status = pidfile.inspect()
    if status.locked:
        pong = ping_daemon(config, HEALTH_BOUND_S)
        if pong is not None and not answers_as_holder(pong, pidfile):
            say(
                "WARN",
                f"{config.control_socket} answers, but not with the instance id of the daemon holding "
                f"{pidfile.lock_path}: taken as not answering",
            )
            pong = None
        healthy = pong is not None  # answering on its control socket as the lock's holder proves it alive
        if pong is not None and not _same_config(pong, config):
            other = f"pid {pong.get('pid')}, config {pong.get('config')}, state dir {pong.get('state_dir')}"
            if not args.restart:
                say(
                    "ERROR",
                    f"foss-supervisor is already running with another config ({other}); "
                    f"stop it first, or pass --restart to replace it with {config.source}",
                )
                return EXIT_FAIL
            say("INFO", f"replacing the instance that runs another config ({other})")
        if pong is not None and not args.restart:
            code, body = _http_health(config, HEALTH_BOUND_S)
            say("INFO", f"foss-supervisor is already running (pid {status.pid}, {pong.get('phase')})")
            if code is None:
                say("WARN", f"its dashboard does not answer on {config.dashboard_url}")
            elif code != 200:
                say("WARN", f"it reports problems: {'; '.join(body.get('problems', [])) or code}")
            say("SUCCESS", f"Dashboard: {config.dashboard_url}")
            _print_login(config)
            return EXIT_OK
        if healthy:
            say("INFO", f"stopping the running instance (pid {status.pid}) gracefully, to replace it")
        else:
            say("WARN", f"the running instance (pid {status.pid}) is not answering within {HEALTH_BOUND_S:g}s")
        if not _stop_instance(config, status.pid, graceful=healthy):
            say("ERROR", f"could not stop pid {status.pid}; giving up")
            return EXIT_FAIL
        say("INFO", "the old instance is stopped")
    elif status.pid is not None:
        holder = describe(status.pid)
        what = "no such process" if holder["cmdline"] is None else f"now {holder['cmdline']!r}"
        say("INFO", f"stale PID file (pid {status.pid}: {what}); replacing it")
    if args.foreground:
        return _run_foreground(args, config)
    return _start_background(args, config)


def _start_report_fd() -> int | None:
    """The pipe `start` reads our failure from, when it started us; taken out of the environment (no program
    sees it) and never inherited."""
    text = os.environ.pop(START_REPORT_ENV, "")
    try:
        fd = int(text)
        os.set_inheritable(fd, False)
    except (ValueError, OSError):
        return None
    return fd


def _report_failure(fd: int | None, reason: str) -> None:
    """Tell `start` why (best effort: it may have gone), then say it on stderr (which may be a full disk)."""
    if fd is not None:
        with contextlib.suppress(OSError):
            os.write(fd, reason.encode("utf-8", "replace")[:MAX_REPORT_BYTES])
    with contextlib.suppress(OSError):
        say("ERROR", reason)


def _run_foreground(args: argparse.Namespace, config: Config) -> int:
    from foss_supervisor.daemon import run_daemon
    from foss_supervisor.errors import DaemonError, PortInUse

    report = _start_report_fd()
    try:
        code = run_daemon(config, take_over_port=args.take_over_port, stderr_logs=not args.daemonized)
        # every program is stopped and the PID file released: the heap (the web stack's included) dies with
        # the process, so the interpreter's last collection of it would only delay the exit (by up to 0.7 s)
        gc.freeze()
        return code
    except DaemonError as exc:  # another instance, the port, the control socket: nothing was left running
        _report_failure(report, str(exc))
        if isinstance(exc, PortInUse):
            with contextlib.suppress(OSError):
                say("INFO", "pass --take-over-port to stop that process, or set FOSS_SUPERVISOR_PORT")
        return EXIT_FAIL
    except OSError as exc:  # a file or device the daemon needs failed it (a full disk): the reason, not a trace
        where = f" ({exc.filename})" if exc.filename else ""
        _report_failure(report, f"the daemon failed: {exc.strerror or exc}{where}")
        return EXIT_FAIL
    finally:
        if report is not None:
            os.close(report)


def _read_report(fd: int) -> str:
    """What a daemon that exited wrote into its report pipe (bounded; never blocks for long)."""
    import select

    data = b""
    while len(data) < MAX_REPORT_BYTES and select.select([fd], [], [], 1.0)[0]:
        chunk = os.read(fd, MAX_REPORT_BYTES)
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace").strip()


def _start_background(args: argparse.Namespace, config: Config) -> int:
    import subprocess

    config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    stderr_path = config.state_dir / "foss-supervisor.stderr"
    # -P and cwd "/": the daemon never imports a module from the directory `start` was run in
    argv = [
        sys.executable,
        "-P",
        "-m",
        "foss_supervisor",
        "start",
        "--foreground",
        "--daemonized",
        "--config",
        str(config.source.resolve()),
    ]
    if args.take_over_port:
        argv.append("--take-over-port")
    if args.debug:
        argv.append("--debug")
    say("INFO", f"starting foss-supervisor (config {config.source}, state {config.state_dir})")
    report_r, report_w = os.pipe()
    try:
        err: Any = stderr_path.open("wb")
    except OSError as exc:
        say("WARN", f"cannot write {stderr_path} ({exc.strerror or exc}): the daemon's stderr goes nowhere")
        err = subprocess.DEVNULL
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            start_new_session=True,
            close_fds=True,
            cwd="/",
            pass_fds=(report_w,),
            env={**os.environ, START_REPORT_ENV: str(report_w)},
        )
    finally:
        os.close(report_w)
        if err is not subprocess.DEVNULL:
            err.close()
    try:
        return _await_started(config, proc, stderr_path, report_r)
    finally:
        os.close(report_r)


def _await_started(config: Config, proc: Any, stderr_path: Path, report_fd: int) -> int:
    state: dict[str, Any] = {}

    def ready() -> bool:
        if proc.poll() is not None:
            return True
        state["pong"] = ping_daemon(config, 1.0)
        return bool(state["pong"]) and state["pong"].get("phase") == "ready"

    poll_until(ready, READY_TIMEOUT_S)
    if proc.poll() is not None:
        reason = _read_report(report_fd)
        say("ERROR", f"the daemon exited with code {proc.returncode}" + (f": {reason}" if reason else ":"))
        with contextlib.suppress(OSError):  # what else it said (hints, a traceback), the reason not twice
            tail = stderr_path.read_text(encoding="utf-8", errors="replace")[-4000:].splitlines(keepends=True)
            sys.stderr.write("".join(line for line in tail if line.strip() != f"[ERROR] {reason}"))
        return EXIT_FAIL
    if not state.get("pong"):
        say("ERROR", f"the daemon (pid {proc.pid}) did not answer within {READY_TIMEOUT_S:g}s; see {stderr_path}")
        return EXIT_FAIL
    try:  # ready means every program settled; some may have failed (FATAL, crash-looping, stuck behind one)
        verdict = call(config.control_socket, "status")["daemon"]
    except SupervisorError:
        verdict = {}
    problems, warnings = verdict.get("problems", []), verdict.get("warnings", [])
    for line in warnings:
        say("WARN", line)
    if problems:
        say("ERROR", f"foss-supervisor is running (pid {proc.pid}), but it is unhealthy:")
        for line in problems:
            say("ERROR", f"  {line}")
        say("INFO", f"Dashboard: {config.dashboard_url}")
        _print_login(config)  # the dashboard is where an operator looks into what failed
        return EXIT_FAIL
    say("SUCCESS", f"foss-supervisor is running (pid {proc.pid})")
    say("SUCCESS", f"Dashboard: {config.dashboard_url}")
    _print_login(config)
    return EXIT_OK


def _owner_token(config: Config) -> str:
    """The owner's API token, or "" when this user cannot read it."""
    try:
        return (config.state_dir / "api-token").read_text(encoding="ascii").strip()
    except OSError:
        return ""


def _print_login(config: Config) -> None:
    """The one-time login URL, as Jupyter prints it: every page needs the cookie it sets (or a token)."""
    if not (token := _owner_token(config)):
        return
    say("INFO", f"To open the dashboard, open once: {config.dashboard_url}login?token={token}")
    say("INFO", f"Read-only token for viewers and Prometheus (bearer_token_file): {config.state_dir / 'viewer-token'}")


def cmd_stop(args: argparse.Namespace, config: Config) -> int:
    from foss_supervisor.base.pidfile import PidFile

    status = PidFile(config.pid_file).inspect()
    if not status.locked:
        say("INFO", "foss-supervisor is not running")
        # a daemon killed with -9 left its programs running: stop means they stop too
        return EXIT_OK if _programs_gone(config) else EXIT_FAIL
    if _stop_instance(config, status.pid, graceful=True):
        say("SUCCESS", f"foss-supervisor (pid {status.pid}) stopped")
        return EXIT_OK
    say("ERROR", f"pid {status.pid} is still running")
    return EXIT_FAIL


# ------------------------------------------------------------------------------------------ queries
