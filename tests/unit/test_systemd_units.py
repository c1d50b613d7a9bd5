"""The unit templates, the shipped renderings and install plans (systemd-analyze's checks:
tests/process/test_systemd_verify.py)."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import pytest
from helpers import REPO

from foss_supervisor.config import (
    Config,
    LogConfig,
    PipelineConfig,
    ProgramConfig,
    default_config_path,
    default_state_dir,
)
from foss_supervisor.systemd.install import installed_exec_argv, options_for, plan_install, stop_budget_s, write_units
from foss_supervisor.systemd.units import SERVICE, SOCKET, InstallPlan, UnitOptions, render_units, shipped_units

SHIPPED = REPO / "systemd"


def settings(text: str) -> dict[str, list[str]]:
    """``Key`` -> every value it is given, sections flattened (systemd allows repeated keys)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def one(text: str, key: str) -> str:
    values = settings(text)[key]
    assert len(values) == 1, f"{key} given {len(values)} times"
    return values[0]


# ---------------------------------------------------------------------------------------------- shipped files


def test_shipped_units_are_the_renderings_of_the_templates() -> None:
    """One source of truth: edit the templates, then `python -m foss_supervisor.systemd.install systemd/`."""
    expected = shipped_units()
    for rel, text in expected.items():
        assert (SHIPPED / rel).read_text(encoding="utf-8") == text, f"systemd/{rel} is stale: re-render it"
    on_disk = {str(p.relative_to(SHIPPED)) for p in SHIPPED.rglob("*") if p.suffix in (".service", ".socket")}
    assert on_disk == set(expected)
    assert set(expected) == {SERVICE, SOCKET, f"user/{SERVICE}", f"user/{SOCKET}"}


def test_the_system_service_has_what_the_issue_asks_for() -> None:
    unit = render_units()[SERVICE]
    assert one(unit, "Type") == "notify"
    assert one(unit, "NotifyAccess") == "main"
    assert one(unit, "ExecStart") == "/usr/bin/foss-supervisor start --foreground"
    assert one(unit, "ExecReload") == "/usr/bin/foss-supervisor reload"
    assert one(unit, "Restart") == "on-failure"
    assert one(unit, "KillMode") == "mixed"
    assert one(unit, "WatchdogSec") == "30s"
    assert one(unit, "TimeoutStopSec") == "90s"
    assert one(unit, "MemoryMax") == "3G"  # 1 GiB beside the worker's default 2 GiB memory_limit
    assert one(unit, "CPUQuota") == "50%"
    assert one(unit, "UMask") == "0077"
    assert one(unit, "User") == one(unit, "Group") == "foss-supervisor"
    assert one(unit, "StateDirectory") == "foss-supervisor"
    assert one(unit, "Environment") == "FOSS_SUPERVISOR_STATE_DIR=/var/lib/foss-supervisor"
    hardening = {
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "LockPersonality": "yes",
        "SystemCallFilter": "@system-service",
        "SystemCallArchitectures": "native",
        "RestrictNamespaces": "yes",
        "RestrictRealtime": "yes",
        "RestrictSUIDSGID": "yes",
        "MemoryDenyWriteExecute": "yes",
        "CapabilityBoundingSet": "",
        "ProtectProc": "invisible",
    }
    assert {k: one(unit, k) for k in hardening} == hardening
    assert one(unit, "WantedBy") == "multi-user.target"
    assert "${" not in unit and "\n@" not in unit


def test_the_user_service_leaves_out_what_a_user_manager_cannot_do() -> None:
    unit = render_units(UnitOptions(user_mode=True))[SERVICE]
    keys = settings(unit)
    for absent in (
        "User",
        "Group",
        "StateDirectory",
        "Environment",
        "CapabilityBoundingSet",
        "PrivateTmp",
        "ProtectSystem",
        "ProtectHome",
        "ReadWritePaths",
        "After",
    ):
        assert absent not in keys, absent
    assert one(unit, "Type") == "notify"
    assert one(unit, "NoNewPrivileges") == "yes"  # what makes the seccomp settings work unprivileged
    assert one(unit, "WantedBy") == "default.target"
    assert "systemctl --user edit" in unit


def test_the_socket_unit_listens_on_the_dashboard_port() -> None:
    unit = render_units()[SOCKET]
    assert one(unit, "ListenStream") == "127.0.0.1:5000"
    assert one(unit, "FileDescriptorName") == "dashboard"
    assert one(unit, "WantedBy") == "sockets.target"
    assert one(render_units(UnitOptions(listen="[::1]:8080"))[SOCKET], "ListenStream") == "[::1]:8080"


# ---------------------------------------------------------------------------------------------- rendering


def test_paths_are_quoted_and_specifiers_escaped() -> None:
    opts = UnitOptions(
        exec_argv=("/opt/my venv/bin/python", "-m", "foss_supervisor"),
        config=Path("/etc/foss/100%.yaml"),
        state_dir=Path("/srv/foss state"),
        write_paths=(Path("/srv/data"),),
    )
    unit = render_units(opts)[SERVICE]
    assert one(unit, "ExecStart") == '"/opt/my venv/bin/python" -m foss_supervisor start --foreground'
    assert settings(unit)["Environment"] == [
        "FOSS_SUPERVISOR_CONFIG=/etc/foss/100%%.yaml",
        '"FOSS_SUPERVISOR_STATE_DIR=/srv/foss state"',
    ]
    assert one(unit, "ReadWritePaths") == '"/srv/foss state" /srv/data'
    assert "StateDirectory" not in settings(unit)
    dollars = render_units(UnitOptions(exec_argv=("/opt/$x/foss-supervisor",)))[SERVICE]
    assert one(dollars, "ExecStart") == "/opt/$$x/foss-supervisor start --foreground"


def test_a_state_dir_under_var_lib_is_created_by_systemd() -> None:
    unit = render_units(UnitOptions(state_dir=Path("/var/lib/foss/prod")))[SERVICE]
    assert one(unit, "StateDirectory") == "foss/prod"
    assert "ReadWritePaths" not in settings(unit)


def test_root_mode_keeps_only_the_capabilities_user_programs_need() -> None:
    unit = render_units(UnitOptions(service_user=None))[SERVICE]
    assert "User" not in settings(unit)
    assert one(unit, "CapabilityBoundingSet") == "CAP_SETUID CAP_SETGID CAP_KILL CAP_CHOWN CAP_DAC_OVERRIDE"
    assert "ProtectProc" not in settings(unit)  # root must see the processes of the users it starts


def test_stop_budget_sums_the_longest_stop_of_each_level() -> None:
    programs = {
        "db": ProgramConfig(name="db", command=("x",), stop_timeout_s=60.0),
        "api": ProgramConfig(name="api", command=("x",), stop_timeout_s=20.0, depends_on=("db",)),
        "web": ProgramConfig(name="web", command=("x",), stop_timeout_s=45.0, depends_on=("db",)),
    }
    assert stop_budget_s(programs) == 60 + 45 + 30
    assert stop_budget_s({}) == 90


def test_options_for_a_config_use_its_paths_port_and_stop_timeouts(tmp_path: Path) -> None:
    config = Config(
        source=tmp_path / "foss.yaml",
        state_dir=tmp_path / "state",
        dashboard_host="::1",
        dashboard_port=5001,
        programs={
            "db": ProgramConfig(name="db", command=("x",), stop_timeout_s=100.0),
            "api": ProgramConfig(
                name="api", command=("x",), depends_on=("db",), log=LogConfig(file=tmp_path / "logs" / "api.log")
            ),
        },
    )
    opts, _ = options_for(config, user_mode=False, exec_argv=("/opt/foss/bin/foss-supervisor",))
    assert opts.config == config.source.resolve()
    assert opts.state_dir == tmp_path / "state"
    assert opts.listen == "[::1]:5001"
    assert opts.timeout_stop_s == 100 + 5 + 30
    assert opts.write_paths == (tmp_path / "logs",)
    assert opts.service_user == "foss-supervisor"
    unit = render_units(opts)[SERVICE]
    assert one(unit, "ReadWritePaths") == f"{tmp_path / 'state'} {tmp_path / 'logs'}"
    assert one(unit, "ExecStart") == "/opt/foss/bin/foss-supervisor start --foreground"


def test_programs_with_user_make_the_service_run_as_root(tmp_path: Path) -> None:
    config = Config(
        source=tmp_path / "c.yaml",
        state_dir=default_state_dir(),
        programs={"pg": ProgramConfig(name="pg", command=("x",), user="postgres")},
    )
    opts, notes = options_for(config, user_mode=False, exec_argv=("/usr/bin/foss-supervisor",))
    assert opts.service_user is None and opts.state_dir is None
    assert any("root" in n for n in notes)
    opts, notes = options_for(config, user_mode=False, run_as_root=False, exec_argv=("/usr/bin/foss-supervisor",))
    assert opts.service_user == "foss-supervisor"
    assert any("refused" in n for n in notes)


def test_the_embedded_default_config_is_not_pinned() -> None:
    config = Config(source=default_config_path(), state_dir=default_state_dir())
    opts, _ = options_for(config, user_mode=True, exec_argv=("/usr/bin/foss-supervisor",))
    assert opts.config is None and opts.state_dir is None
    assert "Environment" not in settings(render_units(opts)[SERVICE])


def test_an_installation_under_home_gets_read_only_home() -> None:
    opts, notes = options_for(None, user_mode=False, exec_argv=("/home/ann/venv/bin/foss-supervisor",))
    assert opts.protect_home == "read-only"
    assert one(render_units(opts)[SERVICE], "ProtectHome") == "read-only"
    assert any("/home/ann" in n for n in notes)


def test_installed_exec_argv_finds_this_installation() -> None:
    argv = installed_exec_argv()
    assert Path(argv[0]).is_absolute() and os.access(argv[0], os.X_OK)
    assert argv == (str(Path(sys.executable).parent / "foss-supervisor"),) or argv[1:] == ("-m", "foss_supervisor")


# ---------------------------------------------------------------------------------------------- install plans


def test_system_plan_prints_commands_and_never_runs_them(tmp_path: Path) -> None:
    plan = plan_install(UnitOptions(service_user="foss-supervisor-no-such-user"), sudo=True)
    assert plan.unit_dir == Path("/etc/systemd/system")
    assert set(plan.files) == {SERVICE}
    assert plan.commands == [
        "sudo useradd --system --user-group --home-dir /var/lib/foss-supervisor --no-create-home "
        "--shell /usr/sbin/nologin foss-supervisor-no-such-user",
        "sudo systemctl daemon-reload",
        "sudo systemctl enable --now foss-supervisor.service",
    ]
    plan = plan_install(
        UnitOptions(service_user="root", state_dir=Path("/srv/foss")), sudo=False, socket_activation=True
    )
    assert set(plan.files) == {SERVICE, SOCKET}
    assert plan.commands == [
        "install -d -m 0700 -o root -g root /srv/foss",
        "systemctl daemon-reload",
        "systemctl enable --now foss-supervisor.socket foss-supervisor.service",
    ]


def test_user_plan(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    plan = plan_install(UnitOptions(user_mode=True))
    assert plan.unit_dir == tmp_path / "cfg" / "systemd" / "user"
    assert plan.commands == ["systemctl --user daemon-reload", "systemctl --user enable --now foss-supervisor.service"]
    assert any("loginctl enable-linger" in n for n in plan.notes)


def test_write_units_replaces_files_atomically(tmp_path: Path) -> None:
    target = tmp_path / "units"
    plan = InstallPlan(target, {SERVICE: "new\n", "user/x.socket": "s\n"}, [])
    (target).mkdir()
    (target / SERVICE).write_text("old\n")
    written = write_units(plan)
    assert written == [target / SERVICE, target / "user" / "x.socket"]
    assert (target / SERVICE).read_text() == "new\n"
    assert (target / SERVICE).stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in target.iterdir()) == [SERVICE, "user"]  # no temp files left


# ---------------------------------------------------------------------------------------------- systemd-analyze


# ---------------------------------------------------------------------------------------------- W^X


def test_the_unit_carries_exported_overrides_and_room_for_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the operator exported reaches the service (issue 21: install-service dropped the port), and the
    unit's memory bound leaves the DuckDB worker its own limit plus 1 GiB."""
    monkeypatch.setenv("FOSS_SUPERVISOR_PORT", "8123")
    monkeypatch.delenv("FOSS_SUPERVISOR_HOST", raising=False)
    plain = Config(source=tmp_path / "f.yaml", state_dir=tmp_path / "s", dashboard_port=8123)
    opts, notes = options_for(plain, user_mode=False, exec_argv=("/opt/f",))
    unit = render_units(opts)[SERVICE]
    assert "Environment=FOSS_SUPERVISOR_PORT=8123" in unit.splitlines()
    assert not any(line.startswith("Environment=FOSS_SUPERVISOR_HOST") for line in unit.splitlines())
    assert one(unit, "MemoryMax") == "1G" and any("no pipelines" in n for n in notes)
    for limit, expected in [(None, "3G"), (4 * 2**30, "5G"), (3 * 2**30 + 1, "5G"), (64 * 2**20, "2G")]:
        config = dataclasses.replace(
            plain,
            pipelines={"orders": PipelineConfig(name="orders", file=tmp_path / "o.yaml", landing=tmp_path)},
            worker_memory_limit=limit,
        )
        opts, notes = options_for(config, user_mode=False, exec_argv=("/opt/f",))
        assert one(render_units(opts)[SERVICE], "MemoryMax") == expected, limit
        assert any(n.startswith(f"MemoryMax={expected}: the DuckDB worker's memory_limit") for n in notes)
