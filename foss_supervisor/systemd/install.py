"""``install-service``: the units for this installation (its paths, user, limits, the running daemon's
overrides), planned and written; the templates themselves are :mod:`foss_supervisor.systemd.units`.

``python -m foss_supervisor.systemd.install DIR`` renders the shipped units (default options) into DIR.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shlex
import shutil
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from foss_supervisor.base.atomicfile import atomic_write
from foss_supervisor.config.programs import user_exists
from foss_supervisor.systemd.units import (
    DEFAULT_SERVICE_USER,
    HOME_DIRS,
    SERVICE,
    SOCKET,
    SYSTEM_STATE_DIR,
    SYSTEM_UNIT_DIR,
    InstallPlan,
    UnitOptions,
    render_units,
    shipped_units,
    state_directory_of,
)

if TYPE_CHECKING:
    from foss_supervisor.config import Config, ProgramConfig

__all__ = ["installed_exec_argv", "memory_max_for", "options_for", "plan_install", "stop_budget_s", "write_units"]


def installed_exec_argv() -> tuple[str, ...]:
    """How systemd should run this installation: its console script, else ``python -m foss_supervisor``.

    Paths are kept as they are, not resolved: a venv's ``bin/python`` is a symlink that must stay one.
    """
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name == "foss-supervisor" and argv0.is_absolute() and os.access(argv0, os.X_OK):
        return (str(argv0),)
    beside = Path(sys.executable).parent / "foss-supervisor"
    if os.access(beside, os.X_OK):
        return (str(beside),)
    if found := shutil.which("foss-supervisor"):
        return (str(Path(found).absolute()),)
    return (sys.executable, "-m", "foss_supervisor")


def stop_budget_s(programs: Mapping[str, ProgramConfig], margin_s: float = 30.0, minimum_s: int = 90) -> int:
    """A ``TimeoutStopSec`` that outlasts the ordered stop: each level's longest stop_timeout, summed."""
    from foss_supervisor.core.supervisor import stop_levels

    levels = stop_levels(programs)
    total = sum(max(programs[name].stop_timeout_s for name in level) for level in levels if level)
    return max(minimum_s, int(total + margin_s + 0.999))


def _under_home(paths: Iterable[Path]) -> list[Path]:
    found = []
    for path in paths:
        for candidate in {path, Path(os.path.realpath(path))}:
            if any(candidate.is_relative_to(home) for home in HOME_DIRS):
                found.append(candidate)
    return found


GIB = 2**30
DAEMON_ROOM_BYTES = GIB  # the daemon, its dashboard and ordinary programs, beside the DuckDB worker


def memory_max_for(config: Config) -> tuple[str, str]:
    """``MemoryMax=`` for the service of ``config`` and a note saying why: 1 GiB for the daemon, the dashboard
    and programs, plus the DuckDB worker's ``warehouse.memory_limit`` (2 GiB when unset) when pipelines run.
    A worker bounded by the unit's cgroup below its own limit would be killed by the kernel mid-query."""
    if not config.pipelines:
        size = DAEMON_ROOM_BYTES
        return f"{size // GIB}G", "MemoryMax=1G: no pipelines (the daemon, its dashboard and the programs)"
    worker = config.worker_memory_limit or 2 * GIB
    size = -(-(worker + DAEMON_ROOM_BYTES) // GIB) * GIB  # rounded up to whole GiB
    return (
        f"{size // GIB}G",
        f"MemoryMax={size // GIB}G: the DuckDB worker's memory_limit ({worker / GIB:g} GiB) and 1 GiB for the "
        "daemon, its dashboard and the programs; raise it in the unit if the programs need more",
    )


def options_for(
    config: Config | None,
    *,
    user_mode: bool,
    run_as_root: bool | None = None,
    exec_argv: Sequence[str] | None = None,
    write_paths: Iterable[Path] = (),
) -> tuple[UnitOptions, list[str]]:
    """Options for this installation and ``config``, plus notes for the operator.

    ``run_as_root`` None means: root only when a program sets ``user:`` (a dedicated user cannot switch
    users; root with five capabilities can, at the price of a weaker sandbox).
    """
    from foss_supervisor.config import default_config_path, default_state_dir

    notes: list[str] = []
    argv = tuple(exec_argv) if exec_argv is not None else installed_exec_argv()
    config_path = state_dir = None
    extra = list(write_paths)
    timeout_stop_s, listen, needs_root = 90, "127.0.0.1:5000", False
    environment: list[str] = []
    memory_max = UnitOptions().memory_max
    if config is not None:
        # what the operator exported reaches the service too (the config was loaded with it)
        exported = {"FOSS_SUPERVISOR_HOST": config.dashboard_host, "FOSS_SUPERVISOR_PORT": str(config.dashboard_port)}
        environment += [f"{k}={v}" for k, v in exported.items() if os.environ.get(k)]
        if config.debug and os.environ.get("FOSS_SUPERVISOR_DEBUG"):
            environment.append("FOSS_SUPERVISOR_DEBUG=1")
        memory_max, why = memory_max_for(config)
        notes.append(why)
        if config.source.resolve() != default_config_path().resolve():
            config_path = config.source.resolve()
        if config.state_dir != default_state_dir():
            state_dir = config.state_dir.absolute()
        timeout_stop_s = stop_budget_s(config.programs)
        host = f"[{config.dashboard_host}]" if ":" in config.dashboard_host else config.dashboard_host
        listen = f"{host}:{config.dashboard_port}"
        needs_root = any(p.user for p in config.programs.values())
        extra += [p.log.file.parent for p in config.programs.values() if p.log.file is not None]
    root = needs_root if run_as_root is None else run_as_root
    if needs_root and not root and not user_mode:
        notes.append("programs set `user:`, which only a root daemon can honour; they will be refused")
    if root and not user_mode:
        notes.append(
            "the service runs as root (bounded capabilities) so that `user:` programs can switch users; "
            "its exposure score is higher than the shipped unit's"
        )
    opts = UnitOptions(
        user_mode=user_mode,
        exec_argv=argv,
        config=config_path,
        state_dir=state_dir,
        write_paths=tuple(dict.fromkeys(extra)),
        service_user=None if root else DEFAULT_SERVICE_USER,
        timeout_stop_s=timeout_stop_s,
        listen=listen,
        environment=tuple(environment),
        memory_max=memory_max,
    )
    if not user_mode:
        installation = [
            Path(argv[0]),
            Path(sys.executable),
            Path(sys.prefix),
            Path(sys.base_prefix),
            Path(__file__).resolve().parents[1],  # the package
            *([config_path] if config_path else []),
            *([state_dir] if state_dir else []),
            *extra,
        ]
        if homes := _under_home(installation):
            opts = replace(opts, protect_home="read-only")
            notes.append(f"ProtectHome=read-only instead of yes: the installation uses {homes[0]}")
            if opts.service_user and any(p.is_relative_to("/root") for p in homes):
                notes.append(
                    f"user {opts.service_user} cannot read {homes[0]} (under /root): install the package "
                    "elsewhere, e.g. a venv in /opt"
                )
    return opts, notes


def _user_unit_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def plan_install(
    opts: UnitOptions,
    *,
    unit_dir: Path | None = None,
    socket_activation: bool = False,
    sudo: bool | None = None,
    notes: Sequence[str] = (),
) -> InstallPlan:
    """The files ``install-service`` writes and the commands it prints (with ``sudo`` when not root)."""
    files = render_units(opts)
    if not socket_activation:
        del files[SOCKET]
    units = [SOCKET, SERVICE] if socket_activation else [SERVICE]
    if opts.user_mode:
        commands = ["systemctl --user daemon-reload", f"systemctl --user enable --now {' '.join(units)}"]
        all_notes = [*notes, f"to keep it running while you are logged out: loginctl enable-linger {_whoami()}"]
        return InstallPlan(unit_dir or _user_unit_dir(), files, commands, all_notes)
    prefix = "sudo " if (os.geteuid() != 0 if sudo is None else sudo) else ""
    commands = []
    owner = opts.service_user
    if owner and not user_exists(owner):
        commands.append(
            f"useradd --system --user-group --home-dir {SYSTEM_STATE_DIR} --no-create-home "
            f"--shell /usr/sbin/nologin {owner}"
        )
    _, rw_paths = state_directory_of(opts)
    for path in rw_paths:  # a state dir systemd does not create itself (outside /var/lib)
        ownership = f"-o {owner} -g {owner} " if owner else ""
        commands.append(f"install -d -m 0700 {ownership}{shlex.quote(str(path))}")
    commands += ["systemctl daemon-reload", f"systemctl enable --now {' '.join(units)}"]
    return InstallPlan(unit_dir or SYSTEM_UNIT_DIR, files, [prefix + c for c in commands], list(notes))


def _whoami() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def write_units(plan: InstallPlan) -> list[Path]:
    """Write the plan's files atomically (mode 0644); raises PermissionError when the unit dir is not ours."""
    plan.unit_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in plan.files.items():
        target = plan.unit_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, text, mode=0o644)
        written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Regenerate the shipped units: ``python -m foss_supervisor.systemd.install systemd/``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    for path in write_units(InstallPlan(args.directory, shipped_units(), [])):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
