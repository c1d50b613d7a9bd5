"""The systemd units, rendered from one set of templates with this installation's paths.

The templates below are the single source of truth: ``systemd/`` in the repository holds their rendering
with the default options (``/usr/bin/foss-supervisor``, a ``foss-supervisor`` system user), which a test
compares byte for byte, and ``foss-supervisor install-service [--user] [--print]`` renders them with the
paths of the running installation. Nothing here runs ``sudo`` or ``systemctl``: the commands are returned
for the operator to run. How an installation's options are found, and the files written, is
:mod:`foss_supervisor.systemd.install`.

Regenerate the shipped files after editing a template::

    python -m foss_supervisor.systemd.install systemd/
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

__all__ = [
    "DEFAULT_EXEC",
    "DEFAULT_SERVICE_USER",
    "HOME_DIRS",
    "SERVICE",
    "SOCKET",
    "SYSTEM_STATE_DIR",
    "SYSTEM_UNIT_DIR",
    "InstallPlan",
    "UnitOptions",
    "render_units",
    "shipped_units",
    "state_directory_of",
]

SERVICE: Final = "foss-supervisor.service"
SOCKET: Final = "foss-supervisor.socket"
DEFAULT_EXEC: Final = "/usr/bin/foss-supervisor"
DEFAULT_SERVICE_USER: Final = "foss-supervisor"
SYSTEM_STATE_DIR: Final = Path("/var/lib/foss-supervisor")
SYSTEM_UNIT_DIR: Final = Path("/etc/systemd/system")
# ProtectHome=yes hides these; an installation that lives there needs ProtectHome=read-only.
HOME_DIRS: Final = (Path("/home"), Path("/root"), Path("/run/user"))

# Template syntax: ``${name}`` is substituted; a line that is only ``${name}`` disappears when the value is
# empty; a line starting with ``@tag `` is kept only when the tag holds: ``system``, ``user`` (the
# ``systemctl --user`` variant), ``unprivileged`` (system, run as a dedicated user) or ``root`` (system, run
# as root so that programs may set ``user:``).
SERVICE_TEMPLATE: Final = """\
# foss-supervisor as a ${scope} service, rendered by `foss-supervisor install-service${user_flag}` from
# foss_supervisor/systemd/units.py. Re-render rather than edit; local changes go in a drop-in
# (`systemctl${user_flag} edit foss-supervisor`). Checked by systemd/check-units.sh.
[Unit]
Description=foss-supervisor process supervisor and dashboard
@system After=network.target
StartLimitIntervalSec=300
StartLimitBurst=5

[Service]
Type=notify
# Only the daemon reports readiness; a program with `ready: notify` gets a NOTIFY_SOCKET of its own.
NotifyAccess=main
ExecStart=${exec} start --foreground
# Synchronous: returns once the new config is applied, and fails when it is refused (the old one stays).
# The daemon also sends RELOADING=1 ... READY=1, so the unit suits Type=notify-reload (systemd >= 253).
ExecReload=${exec} reload
# SIGTERM goes to the daemon alone: it stops the programs itself, in reverse dependency order, then
# exits; whatever is still left in the cgroup after that gets SIGKILL.
KillMode=mixed
Restart=on-failure
RestartSec=2s
TimeoutStartSec=120s
# Longer than the programs' stop timeouts summed over the stop levels; a long stop that makes progress
# also extends it (EXTEND_TIMEOUT_USEC).
TimeoutStopSec=${timeout_stop_s}s
# The daemon pings every WatchdogSec/2 while its event loop and supervision make progress.
WatchdogSec=${watchdog_s}s
${environment}
@unprivileged User=${service_user}
@unprivileged Group=${service_user}
${state_directory}
UMask=0077
# The limits of the old dashboard service; they bind the daemon and every program together.
MemoryMax=${memory_max}
CPUQuota=${cpu_quota}

# Sandbox. Each setting binds the supervised programs too (they are children of the daemon).
NoNewPrivileges=yes
@unprivileged CapabilityBoundingSet=
@root # Root only to start `user:` programs as their users and signal them: these capabilities, no others.
@root CapabilityBoundingSet=CAP_SETUID CAP_SETGID CAP_KILL CAP_CHOWN CAP_DAC_OVERRIDE
@system AmbientCapabilities=
@system PrivateTmp=yes
@system PrivateDevices=yes
@system PrivateMounts=yes
@system ProtectSystem=strict
${read_write_paths}
@system ProtectHome=${protect_home}
@system ProtectKernelTunables=yes
@system ProtectKernelModules=yes
@system ProtectKernelLogs=yes
@system ProtectControlGroups=yes
@system ProtectClock=yes
@system ProtectHostname=yes
@unprivileged # Other users' processes stay invisible; psutil still needs /proc/stat, hence no ProcSubset=pid.
@unprivileged ProtectProc=invisible
@user # A user manager can only build mount namespaces (PrivateTmp=, ProtectSystem=, ...) where unprivileged
@user # user namespaces are allowed; those settings are left out so the unit starts everywhere.
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
# Python, DuckDB and the pipeline worker run with W^X enforced; a program with a JIT (Node.js, Java,
# PyPy, LuaJIT) needs MemoryDenyWriteExecute=no in a drop-in.
MemoryDenyWriteExecute=${memory_deny_write_execute}
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
SystemCallArchitectures=native
@unprivileged RemoveIPC=yes

[Install]
WantedBy=${wanted_by}
"""

SOCKET_TEMPLATE: Final = """\
# The dashboard port, held by systemd: the daemon serves on the socket it is passed (LISTEN_FDS) instead
# of binding, so the port never goes away across restarts. Rendered from foss_supervisor/systemd/units.py.
[Unit]
Description=foss-supervisor dashboard socket

[Socket]
ListenStream=${listen}
FileDescriptorName=dashboard
Backlog=128

[Install]
WantedBy=sockets.target
"""

_PLACEHOLDER: Final = re.compile(r"\$\{([a-z_]+)\}")
_TAGGED: Final = re.compile(r"@([a-z]+) ")


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitOptions:
    """What varies between installations; the defaults render the files shipped in ``systemd/``."""

    user_mode: bool = False  # the `systemctl --user` variant
    exec_argv: tuple[str, ...] = (DEFAULT_EXEC,)  # the console script, or (python, "-m", "foss_supervisor")
    config: Path | None = None  # None: the daemon's own choice ($FOSS_SUPERVISOR_CONFIG, else the embedded one)
    state_dir: Path | None = None  # None: /var/lib/foss-supervisor (system), the daemon's XDG default (user)
    write_paths: tuple[Path, ...] = ()  # more ReadWritePaths= (program and pipeline data)
    service_user: str | None = DEFAULT_SERVICE_USER  # system only; None runs as root so programs may set `user:`
    timeout_stop_s: int = 90
    watchdog_s: int = 30
    # the whole service: daemon, dashboard and programs (about 1 GiB) plus the DuckDB worker's memory_limit
    # (2 GiB by default); install-service sizes it from the config (install.memory_max_for)
    memory_max: str = "3G"
    environment: tuple[str, ...] = ()  # more Environment= (NAME=value): the operator's exported overrides
    cpu_quota: str = "50%"
    listen: str = "127.0.0.1:5000"
    memory_deny_write_execute: bool = True
    protect_home: str = "yes"  # "read-only" when the installation lives under /home, /root or /run/user


@dataclass(frozen=True, slots=True)
class InstallPlan:
    """What ``install-service`` writes where, and what the operator runs afterwards (it runs none of it)."""

    unit_dir: Path
    files: dict[str, str]
    commands: list[str]
    notes: list[str] = field(default_factory=list)


def _escape_specifiers(text: str) -> str:
    return text.replace("%", "%%")


def _quote(word: str, *, exec_line: bool = False) -> str:
    """One word of a unit setting, quoted when needed; ``%`` (and ``$`` on Exec lines) escaped."""
    text = _escape_specifiers(word)
    if exec_line:
        text = text.replace("$", "$$")
    if text and not re.search(r"[\s\"'\\;]", text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def state_directory_of(opts: UnitOptions) -> tuple[str, list[Path]]:
    """``StateDirectory=`` when systemd can create the state dir (under /var/lib), else ReadWritePaths."""
    if opts.user_mode:
        return "", [opts.state_dir] if opts.state_dir is not None else []
    state_dir = opts.state_dir or SYSTEM_STATE_DIR
    if state_dir.is_relative_to("/var/lib") and state_dir != Path("/var/lib"):
        relative = _quote(str(state_dir.relative_to("/var/lib")))
        return f"StateDirectory={relative}\nStateDirectoryMode=0700", []
    return "", [state_dir]


def render_units(opts: UnitOptions | None = None) -> dict[str, str]:
    """``{filename: text}`` for the service and its socket, rendered with ``opts``."""
    opts = opts or UnitOptions()
    tags = {"user"} if opts.user_mode else {"system", "unprivileged" if opts.service_user else "root"}
    state_directory, rw_paths = state_directory_of(opts)
    env: list[str] = []
    if opts.config is not None:
        env.append(f"FOSS_SUPERVISOR_CONFIG={opts.config}")
    if opts.state_dir is not None or not opts.user_mode:
        env.append(f"FOSS_SUPERVISOR_STATE_DIR={opts.state_dir or SYSTEM_STATE_DIR}")
    env += list(opts.environment)
    rw_paths += list(opts.write_paths)
    values = {
        "scope": "user" if opts.user_mode else "system",
        "user_flag": " --user" if opts.user_mode else "",
        "exec": " ".join(_quote(a, exec_line=True) for a in opts.exec_argv),
        "timeout_stop_s": str(opts.timeout_stop_s),
        "watchdog_s": str(opts.watchdog_s),
        "environment": "\n".join(f"Environment={_quote(e)}" for e in env),
        "service_user": opts.service_user or "",
        "state_directory": state_directory,
        "memory_max": opts.memory_max,
        "cpu_quota": opts.cpu_quota,
        "read_write_paths": ""
        if opts.user_mode or not rw_paths
        else "ReadWritePaths=" + " ".join(_quote(str(p)) for p in dict.fromkeys(rw_paths)),
        "protect_home": opts.protect_home,
        "memory_deny_write_execute": "yes" if opts.memory_deny_write_execute else "no",
        "wanted_by": "default.target" if opts.user_mode else "multi-user.target",
        "listen": opts.listen,
    }
    return {SERVICE: _render(SERVICE_TEMPLATE, values, tags), SOCKET: _render(SOCKET_TEMPLATE, values, tags)}


def _render(template: str, values: Mapping[str, str], tags: set[str]) -> str:
    lines = []
    for line in template.splitlines():
        if tagged := _TAGGED.match(line):
            if tagged.group(1) not in tags:
                continue
            line = line[tagged.end() :]
        whole = _PLACEHOLDER.fullmatch(line)
        text = _PLACEHOLDER.sub(lambda m: values[m.group(1)], line)
        if whole and not text:
            continue
        lines.append(text)
    return "\n".join(lines) + "\n"


def shipped_units() -> dict[str, str]:
    """The files in the repository's ``systemd/`` folder (relative paths): the renderings with defaults."""
    files = dict(render_units())
    for name, text in render_units(UnitOptions(user_mode=True)).items():
        files[f"user/{name}"] = text
    return files


# ------------------------------------------------------------------------------------------ this installation
