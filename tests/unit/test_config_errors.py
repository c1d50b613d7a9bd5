"""Config errors are whole and tell no secret: every bad variable of every ``env`` is reported in one pass, with
its file, line and key, and no error message holds a value of a secret-looking key or a listed secret, however
the gate that refused it quoted it."""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import examples
from helpers.gate_strategies import bad_env_value
from helpers.strategies import SECRET, SECRET_NAME, regex_class
from hypothesis import given, settings
from hypothesis import strategies as st

from foss_supervisor.config import parse_config
from foss_supervisor.errors import ConfigError

ENV_NAME = SECRET_NAME.filter(lambda n: re.fullmatch(r"[A-Za-z_][\w-]*", n) is not None)
PLAIN_NAME = regex_class(string.ascii_uppercase, string.ascii_uppercase + string.digits + "_", 8).filter(
    lambda n: "PASS" not in n
)


@st.composite
def bad_config(draw: st.DrawFn) -> tuple[dict[str, Any], list[str], int]:
    """(a config, the secrets it holds, how many env entries are bad): bad values of secret-looking variables,
    in one or two programs, and listed secrets written where a number or a name belongs."""
    secrets = draw(st.lists(SECRET, min_size=4, max_size=4, unique=True))
    names = draw(st.lists(ENV_NAME, min_size=1, max_size=3, unique_by=str.upper))
    programs: dict[str, Any] = {}
    bad = 0
    for p, program in enumerate(["a", "b"][: draw(st.integers(1, 2))]):
        env = {name: draw(bad_env_value(secrets[i % 2])) for i, name in enumerate(names)}
        env[draw(PLAIN_NAME)] = "fine"
        bad += len(names)
        programs[program] = {"command": ["x"], "env": env}
        if p == 0:
            programs[program]["stop_timeout"] = secrets[2]
            programs[program]["stop_signal"] = secrets[3]
    config = {"secrets": [secrets[2], secrets[3]], "programs": programs}
    return config, secrets, bad


@settings(max_examples=examples(150), deadline=None)
@given(bad_config())
def test_every_env_error_is_reported_and_none_quotes_a_secret(tmp_path_factory: Any, case: Any) -> None:
    config, secrets, bad = case
    file = tmp_path_factory.mktemp("cfg") / "config.yaml"
    text = yaml.safe_dump(config, allow_unicode=True)
    with pytest.raises(ConfigError) as refused:
        parse_config(text, file)
    errors = refused.value.errors
    env_errors = [e for e in errors if ".env." in e.key]
    assert len(env_errors) == bad, str(refused.value)
    assert {e.key for e in errors} >= {"programs.a.stop_timeout", "programs.a.stop_signal"}
    assert all(e.line is not None and e.file == str(file) for e in errors)
    shown = str(refused.value) + "".join(e.reason for e in errors)
    assert not [s for s in secrets if s in shown], shown


def test_a_short_value_of_a_secret_key_is_not_quoted(tmp_path: Path) -> None:
    text = "programs:\n  a:\n    command: [x]\n    env: {DB_PASSWORD: [pw], MODE: [dev]}\n"
    with pytest.raises(ConfigError) as refused:
        parse_config(text, tmp_path / "config.yaml")
    message = str(refused.value)
    assert "env.DB_PASSWORD: must be a string or a number, got ***" in message
    assert "env.MODE: must be a string or a number, got ['dev']" in message  # a harmless value is shown


@given(st.text(max_size=30))
def test_an_error_shows_any_key_visibly_and_unambiguously(key: str) -> None:
    """Whatever characters a key holds (a no-break space, a control character, an escape sequence), the error
    shows it as printable text with no space in it, from which the key can be read back exactly."""
    located = ConfigError("f.yaml", key, "unknown key", 3).located
    assert located.startswith("f.yaml:3: ") and located.endswith(": unknown key")
    shown = located[len("f.yaml:3: ") : -len(": unknown key")]
    assert shown.isprintable() and not any(c.isspace() and c != " " for c in shown)
    if not key:
        assert shown == "<root>"
    elif shown == key:
        assert not any(c.isspace() for c in key)
    else:
        assert ast.literal_eval(shown) == key
