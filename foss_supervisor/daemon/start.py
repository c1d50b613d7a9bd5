"""Starting the daemon in this process: the steps before the event loop, in the order that keeps them safe.

Lock the PID file -> stop what a crashed predecessor left -> bind the dashboard port -> run the
:class:`~foss_supervisor.daemon.lifecycle.Daemon` -> release. Each step can refuse with a clear reason
before anything runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import os
import sys

import structlog

from foss_supervisor.base.configlock import ConfigLock
from foss_supervisor.base.filemodes import make_private
from foss_supervisor.base.pidfile import PidFile
from foss_supervisor.base.procinfo import describe
from foss_supervisor.base.redact import Redactor
from foss_supervisor.base.resources import default_config_path
from foss_supervisor.base.writefailures import WriteFailures
from foss_supervisor.config import Config
from foss_supervisor.config.history import remove_leftover_temps
from foss_supervisor.core.logsetup import configure_logging
from foss_supervisor.core.statestore import StateStore, record_config
from foss_supervisor.daemon.fdlimits import open_files_shortfall, raise_open_files_limit
from foss_supervisor.daemon.instance import bind_dashboard, clean_leftovers
from foss_supervisor.daemon.lifecycle import Daemon
from foss_supervisor.errors import DaemonError, PortInUse
from foss_supervisor.systemd.notify import (
    Notifier,
    listen_sockets,
    strip_systemd_environ,
    watchdog_interval_s,
)

__all__ = ["leave_launch_directory", "open_files_shortfall", "raise_open_files_limit", "run_daemon"]

log = structlog.get_logger("foss_supervisor.daemon")


def _loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is a loopback bind."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def leave_launch_directory() -> None:
    """Run from ``/`` and drop the launch directory from ``sys.path``, so no module is imported from it.

    ``python -m`` puts the working directory first on ``sys.path``; the daemon imports modules lazily
    (the web layer, pipelines), and a stray ``aiohttp/`` or ``yaml.py`` where it was started from
    must never be run. The package itself is already imported and finds its submodules by its own path.
    """
    launch = os.path.realpath(os.getcwd()) if os.path.isdir(".") else None
    os.chdir("/")
    sys.path[:] = [p for p in sys.path if p not in ("", ".") and os.path.realpath(p) != launch]


def _end_leftovers(config: Config) -> list[tuple[str, int, str]]:
    """End every program a killed predecessor left (the PID lock must be held); returns what was ended."""
    stops = {name: (p.stop_signal, p.stop_timeout_s) for name, p in config.programs.items()}
    ended = clean_leftovers(StateStore(config.state_dir), stops)
    for name, pid, outcome in ended:
        log.warning("leftover_stopped", program=name, pid=pid, outcome=outcome)
    return ended


def run_daemon(config: Config, *, take_over_port: bool = False, stderr_logs: bool = True) -> int:
    """Run the daemon in this process (``start --foreground``) and return its exit code.

    Raises :class:`AlreadyRunning`, :class:`InstanceConflict`, :class:`PortInUse` or another
    :class:`DaemonError` when it cannot start; nothing is left running then.
    """
    config = dataclasses.replace(config, source=config.source.resolve())  # still right after the chdir
    make_private()  # what the daemon writes is 0600/0700; programs get the operator's umask back (filemodes)
    leave_launch_directory()
    # what systemd handed us, read once; then gone from os.environ so no child inherits it
    notifier = Notifier.from_environ()
    watchdog_s = watchdog_interval_s()
    activated = listen_sockets()
    strip_systemd_environ(os.environ)
    write_failures = WriteFailures()
    redactor = Redactor()
    redactor.learn(config)
    try:
        config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        configure_logging(
            config.state_dir / "foss-supervisor.log",
            debug=config.debug,
            stderr=stderr_logs,
            max_bytes=config.log_max_bytes,
            backups=config.log_backups,
            write_failures=write_failures,
            redactor=redactor,
        )
    except OSError as exc:
        raise DaemonError(f"cannot use the state dir {config.state_dir}: {exc}") from None
    raise_open_files_limit()
    if (short := open_files_shortfall(len(config.programs))) is not None:
        log.error("open_files_limit_too_low", error=short)
        raise DaemonError(short)  # refused before anything runs, rather than programs failing one by one
    pidfile = PidFile(config.pid_file)
    stale = pidfile.lock()
    config_lock = ConfigLock(config.source)  # one daemon per config file, wherever the file says it lives
    try:
        if config.source.resolve() != default_config_path().resolve():  # the embedded default: one per state dir
            config_lock.acquire(config.state_dir)
        if stale is not None and stale != os.getpid():
            holder = describe(stale)
            why = "no such process" if holder["cmdline"] is None else f"PID now belongs to {holder['cmdline']!r}"
            log.warning("stale_pid_file_replaced", pid=stale, reason=why)
        try:
            pidfile.write_pid()
        except DaemonError as exc:  # a full disk: we hold the lock, so what a killed daemon left is ours to end
            ended = ", ".join(f"{name} (pid {pid})" for name, pid, _outcome in _end_leftovers(config))
            raise DaemonError(f"{exc}; ended what the previous daemon left: {ended}" if ended else str(exc)) from None
        for stray in remove_leftover_temps(config.source, config.state_dir):  # a killed save's copy may hold secrets
            log.warning("stray_temp_file_removed", path=str(stray))
        _end_leftovers(config)
        try:  # what `restart` and `logs` use when no --config is given
            record_config(config.state_dir, config.source)
        except OSError as exc:
            log.warning("last_config_not_recorded", error=str(exc))
        if activated:
            sock = activated[0]  # socket activation: systemd owns the port, we serve on what it passed
            sock.setblocking(False)
            log.info("socket_activated", address=str(sock.getsockname()), passed=len(activated))
        else:
            try:
                sock = bind_dashboard(config.dashboard_host, config.dashboard_port, take_over=take_over_port)
            except PortInUse as exc:
                log.error("port_in_use", host=exc.host, port=exc.port, holder=exc.holder)
                raise
        if not _loopback(config.dashboard_host):
            log.warning(
                "dashboard_exposed",
                host=config.dashboard_host,
                port=config.dashboard_port,
                detail="listening beyond loopback: every request but the health verdict and /login needs the API token",
            )
        log.info(
            "daemon_starting",
            pid=os.getpid(),
            config=str(config.source),
            state_dir=str(config.state_dir),
            dashboard=config.dashboard_url,
        )
        with sock:
            daemon = Daemon(config, sock, notifier, watchdog_s, write_failures, redactor, pidfile.instance_id)
            return asyncio.run(daemon.run())
    finally:
        config_lock.release()
        pidfile.release()
