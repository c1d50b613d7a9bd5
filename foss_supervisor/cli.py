"""The ``foss-supervisor`` command line.

Everything but ``start --foreground`` talks to the daemon over the control socket. Heavy modules
(psutil, structlog, aiohttp, asyncio) are imported only by the commands that need them, so that
``foss-supervisor status`` starts fast.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from foss_supervisor import __version__
from foss_supervisor.cli_pipelines import (
    args_demo_data,
    args_export,
    args_pipeline,
    args_query,
    cmd_demo_data,
    cmd_export,
    cmd_pipeline,
    cmd_query,
)
from foss_supervisor.cli_programs import (
    args_ctl,
    args_logs,
    args_status,
    cmd_ctl,
    cmd_logs,
    cmd_status,
    cmd_top,
)
from foss_supervisor.control.client import call
from foss_supervisor.errors import CommandError, ConfigError, ConfigRefused, NotRunning, SupervisorError
from foss_supervisor.resources import locate_control_socket
from foss_supervisor.terminal import (
    EXIT_FAIL,
    EXIT_NOT_RUNNING,
    EXIT_OK,
    EXIT_USAGE,
    guard_output,
    say,
)

if TYPE_CHECKING:
    from foss_supervisor.config import Config
    from foss_supervisor.procinfo import ProcessIdentity


class Target(Protocol):
    """What the socket-only commands need of the config: where the control socket is."""

    @property
    def control_socket(self) -> Path: ...


class SocketTarget:
    """A Target found without loading the config (see resources.locate_control_socket)."""

    __slots__ = ("control_socket",)

    def __init__(self, control_socket: Path) -> None:
        self.control_socket = control_socket


# These only talk to the daemon: they find its socket without PyYAML and the typed config, which are
# about half of a CLI call's start-up (and so of the time `ctl stop` takes before the daemon hears it).
SOCKET_ONLY = frozenset({"status", "ctl", "logs", "query", "pipeline", "demo-data", "export", "top", "reload"})

__all__ = ["main"]

DESCRIPTION = "One daemon for a data-platform host: supervised programs, the dashboard, the medallion pipeline."
# An instance that does not answer within this bound is unhealthy and gets replaced by `start`.
HEALTH_BOUND_S = 3.0
# How long `start` waits for a new daemon to report ready.
READY_TIMEOUT_S = 90.0


def _bounded_poll(check: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``check`` with growing intervals (5 ms to 100 ms) until true or the timeout; never a bare sleep."""
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 0.1)


def _ping(config: Config, timeout_s: float) -> dict[str, Any] | None:
    try:
        result = call(config.control_socket, "ping", timeout_s=timeout_s)
        return result if isinstance(result, dict) else None
    except (OSError, SupervisorError, ValueError):
        return None


def _http_health(config: Config, timeout_s: float) -> tuple[int | None, dict[str, Any]]:
    """GET /health: (status code, body), or (None, {}) when nothing answers in time."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(config.dashboard_url + "health", timeout=timeout_s) as resp:  # noqa: S310
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
    """
    from foss_supervisor.pidfile import PidFile
    from foss_supervisor.procinfo import identity_of, read_stat, terminate, wait_gone

    pidfile = PidFile(config.pid_file)
    ident = identity_of(pid) if pid else None
    longest = max((p.stop_timeout_s for p in config.programs.values()), default=0.0)

    def gone() -> bool:
        return not pidfile.inspect().locked and (ident is None or not ident.alive())

    stat = read_stat(ident.pid) if ident is not None else None
    if ident is not None and stat is not None and stat.state in ("T", "t"):
        say("WARN", f"the daemon (pid {ident.pid}) is stopped (state {stat.state}: SIGSTOP or a debugger); "
                    "sending SIGCONT so it can stop its programs")  # fmt: skip
        _continue(ident)
    if graceful:
        try:
            call(config.control_socket, "shutdown", timeout_s=HEALTH_BOUND_S)
        except (OSError, SupervisorError):
            graceful = False
        else:
            if (ident is None or wait_gone(ident, longest * 2 + 30.0)) and _bounded_poll(gone, 5.0):
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
    return _bounded_poll(gone, 10.0) and _programs_gone(config)


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
    from foss_supervisor.instance import leftover_processes
    from foss_supervisor.statestore import StateStore

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
    from foss_supervisor.instance import clean_leftovers
    from foss_supervisor.statestore import StateStore

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
    from foss_supervisor.pidfile import PidFile
    from foss_supervisor.procinfo import describe

    pidfile = PidFile(config.pid_file)
    status = pidfile.inspect()
    if status.locked:
        pong = _ping(config, HEALTH_BOUND_S)
        healthy = pong is not None  # answering on its control socket proves it alive
        if pong is not None and not _same_config(pong, config):
            other = f"pid {pong.get('pid')}, config {pong.get('config')}, state dir {pong.get('state_dir')}"
            if not args.restart:
                say("ERROR", f"foss-supervisor is already running with another config ({other}); "
                             f"stop it first, or pass --restart to replace it with {config.source}")  # fmt: skip
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


def _run_foreground(args: argparse.Namespace, config: Config) -> int:
    from foss_supervisor.daemon import run_daemon
    from foss_supervisor.errors import DaemonError, PortInUse

    try:
        code = run_daemon(config, take_over_port=args.take_over_port, stderr_logs=not args.daemonized)
        # every program is stopped and the PID file released: the heap (the web stack's included) dies with
        # the process, so the interpreter's last collection of it would only delay the exit (by up to 0.7 s)
        gc.freeze()
        return code
    except DaemonError as exc:  # another instance, the port, the control socket: nothing was left running
        say("ERROR", str(exc))
        if isinstance(exc, PortInUse):
            say("INFO", "pass --take-over-port to stop that process, or set FOSS_SUPERVISOR_PORT")
        return EXIT_FAIL


def _start_background(args: argparse.Namespace, config: Config) -> int:
    import subprocess

    config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    stderr_path = config.state_dir / "foss-supervisor.stderr"
    # -P and cwd "/": the daemon never imports a module from the directory `start` was run in
    argv = [sys.executable, "-P", "-m", "foss_supervisor", "start", "--foreground", "--daemonized",
            "--config", str(config.source.resolve())]  # fmt: skip
    if args.take_over_port:
        argv.append("--take-over-port")
    if args.debug:
        argv.append("--debug")
    say("INFO", f"starting foss-supervisor (config {config.source}, state {config.state_dir})")
    with stderr_path.open("wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True,
                                close_fds=True, cwd="/")  # fmt: skip
    state: dict[str, Any] = {}

    def ready() -> bool:
        if proc.poll() is not None:
            return True
        state["pong"] = _ping(config, 1.0)
        return bool(state["pong"]) and state["pong"].get("phase") == "ready"

    _bounded_poll(ready, READY_TIMEOUT_S)
    if proc.poll() is not None:
        say("ERROR", f"the daemon exited with code {proc.returncode}:")
        sys.stderr.write(stderr_path.read_text(encoding="utf-8", errors="replace")[-4000:])
        return EXIT_FAIL
    if not state.get("pong"):
        say("ERROR", f"the daemon (pid {proc.pid}) did not answer within {READY_TIMEOUT_S:g}s; see {stderr_path}")
        return EXIT_FAIL
    try:  # ready means every program settled; some may have failed (FATAL, crash-looping, stuck behind one)
        problems = call(config.control_socket, "status")["daemon"].get("problems", [])
    except SupervisorError:
        problems = []
    if problems:
        say("ERROR", f"foss-supervisor is running (pid {proc.pid}), but not every program started:")
        for line in problems:
            say("ERROR", f"  {line}")
        say("INFO", f"Dashboard: {config.dashboard_url}")
        return EXIT_FAIL
    say("SUCCESS", f"foss-supervisor is running (pid {proc.pid})")
    say("SUCCESS", f"Dashboard: {config.dashboard_url}")
    _print_login(config)
    return EXIT_OK


def _print_login(config: Config) -> None:
    """The one-time login URL, as Jupyter prints it: it sets the cookie that dashboard actions need."""
    token_file = config.state_dir / "api-token"
    try:
        token = token_file.read_text(encoding="ascii").strip()
    except OSError:
        return
    say("INFO", f"To run actions from the browser, open once: {config.dashboard_url}login?token={token}")


def cmd_stop(args: argparse.Namespace, config: Config) -> int:
    from foss_supervisor.pidfile import PidFile

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


def cmd_restart(args: argparse.Namespace, config: Config) -> int:
    args.restart = True
    return cmd_start(args, config)


# ------------------------------------------------------------------------------------------ queries


def cmd_reload(args: argparse.Namespace, config: Target) -> int:
    result = call(config.control_socket, "reload", timeout_s=600.0, dry_run=args.dry_run)
    verb = "would" if args.dry_run else "did"
    for key in ("added", "changed", "removed", "unchanged"):
        if result[key]:
            print(f"{key:>9}: {', '.join(result[key])}")
    for key, names in (result.get("pipelines") or {}).items():
        if names and key != "unchanged":
            print(f"{key:>9}: pipeline {', '.join(names)}")
    if result["needs_daemon_restart"]:
        say("WARN", f"changed {', '.join(result['needs_daemon_restart'])}: takes effect on `foss-supervisor restart`")
    say("SUCCESS", f"reload {verb} apply: {len(result['added'])} added, {len(result['changed'])} changed, "
                   f"{len(result['removed'])} removed")  # fmt: skip
    return EXIT_OK


def cmd_install_service(args: argparse.Namespace, config: Config) -> int:
    """Write the systemd units for this installation and print the systemctl commands (never runs sudo)."""
    from foss_supervisor.systemd_units import options_for, plan_install, write_units

    options, notes = options_for(config if args.config else None, user_mode=args.user)
    plan = plan_install(options, notes=notes, socket_activation=args.socket)
    if args.print:
        for name, text in plan.files.items():
            print(f"# {plan.unit_dir / name}\n{text}")
    else:
        try:
            for path in write_units(plan):
                say("SUCCESS", f"wrote {path}")
        except PermissionError as exc:
            say("ERROR", f"cannot write to {plan.unit_dir} ({exc.strerror}); run as root, or use --print")
            return EXIT_FAIL
    for note in plan.notes:
        say("INFO", note)
    say("INFO", "then run:")
    for command in plan.commands:
        print(f"  {command}")
    return EXIT_OK


# ------------------------------------------------------------------------------------------ parser


def _args_start(p: argparse.ArgumentParser) -> None:
    p.add_argument("--foreground", action="store_true", help="run in this process (systemd, containers)")
    p.add_argument("--restart", action="store_true", help="replace a running instance")
    p.add_argument("--take-over-port", action="store_true", help="stop a foreign process holding the port")
    p.add_argument("--daemonized", action="store_true", help=argparse.SUPPRESS)


def _args_restart(p: argparse.ArgumentParser) -> None:
    p.add_argument("--foreground", action="store_true", help="run the new daemon in this process")
    p.add_argument("--take-over-port", action="store_true", help="stop a foreign process holding the port")
    p.set_defaults(daemonized=False)


def _args_reload(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")


def _args_install_service(p: argparse.ArgumentParser) -> None:
    p.add_argument("--user", action="store_true", help="a unit for systemctl --user")
    p.add_argument("--print", action="store_true", help="print the units instead of writing them")
    p.add_argument("--socket", action="store_true", help="also a .socket unit, so systemd owns the port")


def _no_args(p: argparse.ArgumentParser) -> None:
    pass


Command = Callable[[argparse.Namespace, Any], int]
SUBCOMMANDS: dict[str, tuple[str, Command, Callable[[argparse.ArgumentParser], None]]] = {
    "start": ("start the daemon (idempotent)", cmd_start, _args_start),
    "restart": ("replace the running daemon with a fresh one", cmd_restart, _args_restart),
    "stop": ("stop all programs and the daemon", cmd_stop, _no_args),
    "status": ("daemon and program states (exit 3: a program is not as wanted)", cmd_status, args_status),
    "reload": ("re-read the config and apply the difference", cmd_reload, _args_reload),
    "logs": ("programs' output, the daemon's log, the pipeline's", cmd_logs, args_logs),
    "ctl": ("start, stop, restart, signal or scale programs", cmd_ctl, args_ctl),
    "pipeline": ("run pipelines and read their history", cmd_pipeline, args_pipeline),
    "query": ("a read-only SQL query on the warehouse", cmd_query, args_query),
    "export": ("a whole table as csv, parquet or jsonl (no row cap)", cmd_export, args_export),
    "demo-data": ("write sample orders into a landing folder", cmd_demo_data, args_demo_data),
    "top": ("a terminal UI: live programs, their log, keys to start, stop, restart, signal", cmd_top, _no_args),
    "install-service": ("write systemd units for this installation", cmd_install_service, _args_install_service),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, just that subcommand (argparse's set-up is a visible share of a CLI call)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="config file (default: $FOSS_SUPERVISOR_CONFIG or embedded)")
    common.add_argument("--debug", action="store_true", help="verbose logs")
    parser = argparse.ArgumentParser(prog="foss-supervisor", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"foss-supervisor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (text, func, add_arguments) in SUBCOMMANDS.items():
        if only is None or name == only:
            p = sub.add_parser(name, parents=[common], help=text)
            add_arguments(p)
            p.set_defaults(func=func)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a closed stdout (``| head``) silences it but never stops it halfway."""
    guard_output()
    return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv[0] if argv and argv[0] in SUBCOMMANDS else None).parse_args(argv)
    if args.debug:
        os.environ["FOSS_SUPERVISOR_DEBUG"] = "1"
    if args.command in SOCKET_ONLY:
        sock = locate_control_socket(args.config, os.environ)
        if sock is not None and sock.exists():
            return _run(args, SocketTarget(sock))
    from foss_supervisor.config import load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        say("ERROR", f"config refused: {exc}")
        sock = locate_control_socket(args.config, os.environ) if args.command == "stop" else None
        if sock is None or not sock.exists():
            return EXIT_USAGE
        # a broken file must not keep an operator from stopping the daemon that runs the last good one
        from foss_supervisor.config import Config

        say("WARN", f"stopping the daemon that answers on {sock} anyway")
        return _run(args, Config(source=Path(exc.file), state_dir=sock.parent))
    return _run(args, config)


def _run(args: argparse.Namespace, target: Target) -> int:
    try:
        code: int = args.func(args, target)
        return code
    except NotRunning:
        say("ERROR", f"foss-supervisor is not running (no answer on {target.control_socket})")
        return EXIT_NOT_RUNNING
    except ConfigRefused as exc:
        say("ERROR", str(exc))
        return EXIT_USAGE
    except CommandError as exc:
        say("ERROR", str(exc))
        return EXIT_FAIL
    except SupervisorError as exc:
        say("ERROR", str(exc))
        return EXIT_FAIL
    except KeyboardInterrupt:
        return 130
