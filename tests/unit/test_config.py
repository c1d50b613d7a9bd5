"""The config loader: typed values, defaults, env overrides, and errors that name file, line, key, reason."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from foss_supervisor.config import default_config_path, load_config, parse_config
from foss_supervisor.errors import ConfigError


def parse(text: str, environ: dict[str, str] | None = None, tmp: Path = Path("/etc/fs/c.yaml")):
    return parse_config(text, tmp, environ or {})


def refused(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return info.value


def test_embedded_default_config_loads_with_documented_defaults() -> None:
    cfg = load_config(default_config_path(), environ={})
    assert cfg.dashboard_host == "127.0.0.1"
    assert cfg.dashboard_port == 5000
    assert cfg.programs == {}


def test_program_defaults_and_units() -> None:
    cfg = parse("""
programs:
  api:
    command: python3 -m http.server "8080"
    stop_timeout: 500ms
    start_timeout: 2
    stop_signal: int
    start_retries: forever
    backoff: {max: 1m}
    log: {max_bytes: 1MiB, timestamps: true}
""")
    api = cfg.programs["api"]
    assert api.command == ("python3", "-m", "http.server", "8080")
    assert api.stop_timeout_s == 0.5 and api.start_timeout_s == 2.0
    assert api.stop_signal is signal.SIGINT
    assert api.start_retries is None
    assert api.backoff.max_s == 60.0
    assert api.log.max_bytes == 1024 * 1024 and api.log.timestamps
    assert api.kill_group is True and api.autorestart == "on-failure" and api.exit_codes == {0}


def test_shell_only_when_asked() -> None:
    text = "programs:\n  a: {command: 'echo $HOME | wc', shell: true}\n  b: {command: 'echo $$HOME | wc'}\n"
    cfg = parse(text)
    assert cfg.programs["a"].command == ("/bin/sh", "-c", "echo $HOME | wc")  # the shell expands it
    assert cfg.programs["b"].command == ("echo", "$HOME", "|", "wc")


def test_unknown_key_names_file_line_and_key() -> None:
    err = refused("dashboard:\n  port: 5000\nprograms:\n  api:\n    command: [x]\n    restart: always\n")
    assert err.file == "/etc/fs/c.yaml"
    assert err.key == "programs.api.restart"
    assert err.line == 6
    assert "unknown key" in err.reason
    assert str(err).startswith("/etc/fs/c.yaml:6: programs.api.restart: unknown key")


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("dashboard: {port: 70000}", "dashboard.port", "port from 1 to 65535"),
        ("dashboard: {port: '80'}", "dashboard.port", "must be a port"),
        ("programs: {a: {command: [x], autorestart: sometimes}}", "programs.a.autorestart", "always, on-failure"),
        ("programs: {a: {command: [x], stop_timeout: soon}}", "programs.a.stop_timeout", "duration"),
        ("programs: {a: {command: [x], stop_signal: NOPE}}", "programs.a.stop_signal", "must be a signal name"),
        ("programs: {a: {command: []}}", "programs.a.command", "1 to 4096 arguments"),
        ("programs: {a: {cwd: /}}", "programs.a", "missing required key 'command'"),
        ("programs: {a: {command: [x], depends_on: [b]}}", "programs.a.depends_on", "unknown program 'b'"),
        ("programs: {a: {command: [x], health: {tcp: 1, http: 'http://x'}}}", "programs.a.health", "exactly one"),
        ("programs: {a: {command: [x], autostart: 'yes'}}", "programs.a.autostart", "true or false"),
        ("programs: {a: {command: [x], umask: 'rw'}}", "programs.a.umask", "octal mode"),
        ("programs: {a: {command: [x], umask: '1777'}}", "programs.a.umask", "from 000 to 777"),
        (
            "programs: {a: {command: [x], rlimits: {files: 10}}}",
            "programs.a.rlimits.files",
            "unknown key; known keys: as, core",
        ),
        ("programs: {a: {command: [x], rlimits: {nofile: '9:8'}}}", "programs.a.rlimits.nofile", "must not exceed"),
        ("programs: {a: {command: [x], rlimits: {core: -1}}}", "programs.a.rlimits.core", "or unlimited"),
        (
            "programs: {a: {command: [x], replicas: 2, health: {tcp: 'h:x{replica}'}}}",
            "programs.a.health.tcp",
            "port or host:port",
        ),
    ],
)
def test_bad_values_are_refused_with_reason(text: str, key: str, reason: str) -> None:
    err = refused(text)
    assert err.key == key
    assert reason in err.reason
    assert err.line == 1


def test_depends_on_takes_a_condition_per_dependency_in_list_or_mapping_form() -> None:
    cfg = parse("""
programs:
  db: {command: [db], health: {tcp: 5432}}
  migrate: {command: [m], autorestart: never}
  cache: {command: [c], replicas: 2}
  api:
    command: [api]
    depends_on:
      db: {condition: healthy}
      migrate: {condition: service_completed_successfully}
      cache: started
  worker: {command: [w], depends_on: [db, cache]}
""")
    api, worker = cfg.programs["api"], cfg.programs["worker"]
    assert api.depends_on == ("db", "migrate", "cache-0", "cache-1")
    assert [api.condition_for(d) for d in api.depends_on] == ["healthy", "completed_successfully", "started", "started"]
    assert [worker.condition_for(d) for d in worker.depends_on] == ["healthy"] * 3


def test_a_bad_dependency_condition_names_its_line_and_key() -> None:
    err = refused(
        "programs:\n  db: {command: [db]}\n  api:\n    command: [a]\n    depends_on:\n      db: {condition: ready}\n"
    )
    assert (err.key, err.line) == ("programs.api.depends_on.db.condition", 6)
    assert "started, healthy, completed_successfully" in err.reason
    err = refused("programs:\n  api:\n    command: [a]\n    depends_on:\n      nope: started\n")
    assert (err.key, err.line) == ("programs.api.depends_on", 5) and "unknown program 'nope'" in err.reason


def test_retry_defaults_give_tens_of_seconds_before_fatal() -> None:
    from foss_supervisor.core.backoff import Backoff

    prog = parse("programs: {a: {command: [x]}}").programs["a"]
    assert prog.start_retries == 10
    backoff = Backoff(prog.backoff, rand=lambda: 0.5)
    window = sum(backoff.next_delay_s() for _ in range(prog.start_retries))
    assert 20.0 <= window <= 120.0


def test_umask_and_rlimits() -> None:
    cfg = parse("""
programs:
  a:
    command: [x]
    umask: "027"
    rlimits: {nofile: 4096, core: 0, nproc: "512:1024", memlock: unlimited}
  b: {command: [x], umask: 0o22}
""")
    a = cfg.programs["a"]
    assert a.umask == 0o027 and cfg.programs["b"].umask == 0o22
    assert a.rlimits == {"nofile": (4096, 4096), "core": (0, 0), "nproc": (512, 1024), "memlock": (-1, -1)}


def test_replica_is_filled_in_every_string_probes_included(tmp_path: Path) -> None:
    for i in (0, 1):
        (tmp_path / f"slot-{i}").mkdir()  # a cwd must exist at load
    cfg = parse(
        """
programs:
  web:
    command: [srv]
    replicas: 2
    cwd: "slot-{replica}"
    pidfile: "run/web-{replica}.pid"
    log: {file: "logs/web-{replica}.log"}
    health: {http: "http://127.0.0.1:80{replica}/health"}
  tcp:
    command: [srv, "{replica}"]
    replicas: 2
    health: {tcp: "127.0.0.1:90{replica}"}
  ex:
    command: [srv]
    replicas: 2
    health: {exec: [test, -f, "ok-{replica}"]}
""",
        tmp=tmp_path / "c.yaml",
    )
    web1 = cfg.programs["web-1"]
    assert web1.cwd == tmp_path / "slot-1" and web1.pidfile == tmp_path / "run" / "web-1.pid"
    assert web1.log.file == tmp_path / "logs" / "web-1.log"
    assert web1.health is not None and web1.health.url == "http://127.0.0.1:801/health"
    assert [cfg.programs[f"tcp-{i}"].health.port for i in (0, 1)] == [900, 901]  # type: ignore[union-attr]
    assert cfg.programs["ex-0"].health.command == ("test", "-f", "ok-0")  # type: ignore[union-attr]


def test_dependency_cycle_is_refused() -> None:
    err = refused("programs:\n  a: {command: [x], depends_on: b}\n  b: {command: [x], depends_on: a}\n")
    assert "dependency cycle" in err.reason


def test_broken_yaml_names_the_line() -> None:
    err = refused("programs:\n  a: {command: [x]\n  b: 1\n")
    assert "invalid YAML" in err.reason
    assert err.line is not None


def test_replicas_expand_names_and_placeholders() -> None:
    cfg = parse("""
programs:
  db: {command: [db]}
  web:
    command: [srv, "--port", "80{replica}"]
    env: {SLOT: "s{replica}"}
    replicas: 2
    depends_on: db
  front: {command: [f], depends_on: web}
""")
    assert set(cfg.programs) == {"db", "web-0", "web-1", "front"}
    assert cfg.programs["web-1"].command == ("srv", "--port", "801")
    assert cfg.programs["web-0"].env == {"SLOT": "s0"}
    assert cfg.programs["front"].depends_on == ("web-0", "web-1")


def test_environment_overrides_win(tmp_path: Path) -> None:
    cfg = parse(
        "state_dir: rel/state\ndashboard: {host: 127.0.0.1, port: 5000}\n",
        {"FOSS_SUPERVISOR_PORT": "5055", "FOSS_SUPERVISOR_HOST": "::1", "FOSS_SUPERVISOR_DEBUG": "1"},
        tmp_path / "c.yaml",
    )
    assert cfg.dashboard_port == 5055 and cfg.dashboard_host == "::1" and cfg.debug
    assert cfg.state_dir == (tmp_path / "rel" / "state").resolve()
    assert cfg.dashboard_url == "http://[::1]:5055/"
    with pytest.raises(ConfigError, match="FOSS_SUPERVISOR_PORT"):
        parse("{}", {"FOSS_SUPERVISOR_PORT": "http"})


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("dashboard: {port: 5077}\n")
    assert load_config(None, {"FOSS_SUPERVISOR_CONFIG": str(path)}).dashboard_port == 5077
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml", {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("state_dir: /srv/x\n", "/srv/x"),
        ("state_dir: '/srv/y z'  # comment\n", "/srv/y z"),
        ('state_dir: "/srv/q"\n', "/srv/q"),
        ("state_dir: rel/s # comment\n", "REL/rel/s"),
        ("dashboard: {port: 1}\n  state_dir: /nested/is/not/top/level\n", "DEFAULT"),
        ("state_dir: /a\nstate_dir: /b\n", None),  # the loader refuses duplicates: let it say so
        ("state_dir: &anchor /x\n", None),
        ("state_dir:\n  - x\n", None),
        ("state_dir: ~\n", None),
    ],
)
def test_control_socket_is_found_without_the_yaml_loader(tmp_path: Path, text: str, expected: str | None) -> None:
    """The CLI's fast path agrees with the full loader, or steps aside (None) for it."""
    from foss_supervisor.base.resources import default_state_dir, locate_control_socket

    path = tmp_path / "c.yaml"
    path.write_text(text)
    found = locate_control_socket(path, {})
    if expected is None:
        assert found is None
        return
    want = {"DEFAULT": default_state_dir()}.get(expected) or Path(expected.replace("REL", str(tmp_path)))
    assert found == want / "control.sock"
    if expected != "DEFAULT":
        assert load_config(path, {}).control_socket == found
    assert locate_control_socket(path, {"FOSS_SUPERVISOR_STATE_DIR": "/env"}) == Path("/env/control.sock")
