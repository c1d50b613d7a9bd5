"""Variables in config values: one test per form, per interpolated key, per error (a real child that sees them:
tests/e2e/test_config_interpolate_daemon.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from foss_supervisor.config import parse_config
from foss_supervisor.config.interpolate import expand
from foss_supervisor.errors import ConfigError

ENV = {"HOME": "/home/op", "EMPTY": "", "PORT": "8080"}


def lookup(name: str) -> str | None:
    return ENV.get(name)


@pytest.mark.parametrize(
    ("text", "out"),
    [
        ("$HOME/x", "/home/op/x"),
        ("${HOME}x", "/home/opx"),
        ("${NOPE:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${EMPTY-fallback}", ""),
        ("${NOPE-fallback}", "fallback"),
        ("${NOPE:-${HOME:-x}/y}", "/home/op/y"),
        ("${PORT:?port needed}", "8080"),
        ("cost $$5 and $$HOME", "cost $5 and $HOME"),
        ("%(ENV_HOME)s/%(program_name)s", "/home/op/api"),
        ("100% sure, $ alone, $1 and %s stay", "100% sure, $ alone, $1 and %s stay"),
    ],
)
def test_each_form(text: str, out: str) -> None:
    assert expand(text, lookup, {"program_name": "api"}) == out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("$NOPE", "variable NOPE is not set"),
        ("${NOPE}", "variable NOPE is not set"),
        ("${EMPTY:?give a port}", "variable EMPTY is empty: give a port"),
        ("${NOPE?}", "variable NOPE is not set"),
        ("%(ENV_NOPE)s", "NOPE (in %(ENV_NOPE)s) is not set"),
        ("%(nope)s", "unknown expansion %(nope)s"),
        ("${HOME", "has no closing"),
        ("${1abc}", "bad substitution"),
        ("${A:-" * 20 + "}" * 20, "nested more than"),
    ],
)
def test_each_error(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        expand(text, lookup)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("%%(asctime)s - %%(levelname)s", "%(asctime)s - %(levelname)s"),  # supervisord's escape
        ("%%%(ENV_PORT)s", "%8080"),  # a pair, then a form
        ("-Xloggc:gc_%t_%p.log 100% %2B %%s", "-Xloggc:gc_%t_%p.log 100% %2B %%s"),  # no "(": text as written
        ("pa$$word", "pa$word"),  # docker compose's escape
    ],
)
def test_percent_and_dollar_escapes(text: str, expected: str) -> None:
    assert expand(text, lookup) == expected


def test_a_string_command_is_split_like_sh_and_single_quotes_stay_literal(tmp_path: Path) -> None:
    cfg = parse(
        "programs:\n"
        "  a:\n"
        "    command: \"run --fmt '%(asctime)s' 'pa$$word' \\\"$HOME\\\" $SPACED --port=%(ENV_PORT)s \\\\$HOME\"\n",
        tmp_path,
        {**ENV, "SPACED": "two words; $(rm -rf x)"},
    )
    assert cfg.programs["a"].command == (
        "run",
        "--fmt",
        "%(asctime)s",
        "pa$$word",
        "/home/op",
        "two words; $(rm -rf x)",
        "--port=8080",
        "$HOME",
    )


def test_a_shell_command_is_given_to_the_shell_exactly_as_written(tmp_path: Path) -> None:
    cfg = parse(
        'programs:\n  a:\n    shell: true\n    command: "exec x \\"$HOME\\" \'%(x)s\' %(ENV_NOPE)s $$"\n', tmp_path
    )
    assert cfg.programs["a"].command == ("/bin/sh", "-c", "exec x \"$HOME\" '%(x)s' %(ENV_NOPE)s $$")


def parse(text: str, tmp: Path, environ: dict[str, str] | None = None):
    path = tmp / "c.yaml"
    return parse_config(text, path, ENV if environ is None else environ)


def test_every_interpolated_key(tmp_path: Path) -> None:
    (tmp_path / "app-8080").mkdir()  # a cwd must exist at load
    cfg = parse(
        "programs:\n"
        "  api:\n"
        "    command: [srv, --home, $HOME, '${PORT}']\n"
        "    cwd: '%(here)s/app-${PORT}'\n"
        "    env: {PATH: '/opt/bin:${HOME}', LIT: '$$HOME'}\n"
        "    log: {file: '%(here)s/logs/%(program_name)s.log'}\n"
        "    health: {http: 'http://127.0.0.1:${PORT}/health'}\n"
        "  sh:\n"
        "    command: 'echo $HOME %(ENV_PORT)s'\n"
        "    shell: true\n"
        "    health: {exec: 'check ${PORT:-1}'}\n"
        "  tcp:\n"
        "    command: srv\n"
        "    health: {tcp: '127.0.0.1:${PORT}'}\n",
        tmp_path,
    )
    api = cfg.programs["api"]
    assert api.command == ("srv", "--home", "/home/op", "8080")
    assert api.cwd == tmp_path.resolve() / "app-8080"
    assert dict(api.env) == {"PATH": "/opt/bin:/home/op", "LIT": "$HOME"}
    assert api.log.file == tmp_path.resolve() / "logs" / "api.log"
    assert api.health is not None and api.health.url == "http://127.0.0.1:8080/health"
    sh = cfg.programs["sh"]
    assert sh.command == ("/bin/sh", "-c", "echo $HOME %(ENV_PORT)s")  # the shell's to expand
    assert sh.health is not None and sh.health.command == ("check", "8080")
    tcp = cfg.programs["tcp"].health
    assert tcp is not None and tcp.port == 8080


def test_env_file_values_are_interpolated_and_usable(tmp_path: Path) -> None:
    (tmp_path / "app.env").write_text("# comment\nDATA=${HOME}/data\nexport LEVEL=${LEVEL:-info}\nUSE=$DATA/x\n")
    cfg = parse(
        "programs:\n  a:\n    command: [run, '${DATA}']\n    env_file: app.env\n    env: {LEVEL: debug}\n", tmp_path
    )
    a = cfg.programs["a"]
    assert a.command == ("run", "/home/op/data")
    assert dict(a.env) == {"DATA": "/home/op/data", "LEVEL": "debug", "USE": "/home/op/data/x"}  # env wins


def test_unset_variables_are_all_reported_with_file_line_key(tmp_path: Path) -> None:
    (tmp_path / "bad.env").write_text("OK=1\nBAD=${MISSING_IN_FILE}\n")
    with pytest.raises(ConfigError) as info:
        parse(
            "programs:\n"
            "  a:\n"
            "    command: [x, $MISSING_A]\n"
            "    env: {B: '${MISSING_B}'}\n"
            "    env_file: bad.env\n"
            "  b:\n"
            "    command: x\n"
            "    env_file: nowhere.env\n",
            tmp_path,
        )
    found = {(Path(e.file).name, e.key, e.line) for e in info.value.errors}
    assert found == {
        ("c.yaml", "programs.a.command[1]", 3),
        ("c.yaml", "programs.a.env.B", 4),
        ("bad.env", "BAD", 2),
        ("c.yaml", "programs.b.env_file", 8),
    }
    assert "MISSING_A is not set" in str(info.value)
