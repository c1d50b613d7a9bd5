"""What is checked at load, with file, line and key: numbers in digits other than 0-9 refused wherever a number
goes (the file and the environment overrides), a boolean override that is neither true nor false, a backoff
whose start passes its cap, and a program's ``cwd`` or ``user`` that does not exist on this host."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import examples
from helpers.gate_strategies import unicode_digits
from helpers.strategies import regex_class
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_gates import CONFIG_LEAVES, FILE, _at, _config_with

from foss_supervisor.config import parse_config
from foss_supervisor.config.gates.base import NUMERIC_KINDS
from foss_supervisor.errors import ConfigError

PROPERTY = settings(max_examples=examples(150), deadline=None, suppress_health_check=list(HealthCheck))
NUMERIC_LEAVES = [(d, g) for d, g in CONFIG_LEAVES if g.kind in NUMERIC_KINDS | {"mode", "address"}]


def _errors(text: str, environ: dict[str, str] | None = None, file: Path = FILE) -> list[ConfigError]:
    try:
        parse_config(text, file, environ or {})
    except ConfigError as exc:
        return list(exc.errors)
    return []


@PROPERTY
@given(st.sampled_from([(d, g) for d, g in NUMERIC_LEAVES if not d.endswith("<name>")]), unicode_digits())
def test_digits_other_than_0_to_9_are_no_number_anywhere(leaf: tuple[str, Any], digits: str) -> None:
    doc, key = _config_with(leaf[0], digits)
    errors = _at(_errors(yaml.safe_dump(doc, allow_unicode=True)), key)
    assert errors and all(e.line is not None for e in errors), f"{leaf[0]} = {digits!r} was accepted"


@PROPERTY
@given(st.sampled_from(["FOSS_SUPERVISOR_PORT", "FOSS_SUPERVISOR_DEBUG"]), unicode_digits())
def test_environment_overrides_refuse_other_digits(variable: str, digits: str) -> None:
    errors = _errors("programs: {}\n", {variable: digits})
    assert [e for e in errors if e.key == variable and e.file == "environment"], errors


@PROPERTY
@given(
    st.text(min_size=1, max_size=12).filter(
        lambda t: t.strip().lower() not in {"1", "0", "true", "false", "yes", "no", "on", "off"}
    )
)
def test_a_boolean_override_is_true_or_false_or_refused(text: str) -> None:
    errors = _errors("programs: {}\n", {"FOSS_SUPERVISOR_DEBUG": text})
    assert [e.reason for e in errors if e.key == "FOSS_SUPERVISOR_DEBUG"], text


@pytest.mark.parametrize(("text", "debug"), [("1", True), ("on", True), ("FALSE", False), ("no", False)])
def test_a_boolean_override_reads_its_words(text: str, debug: bool) -> None:
    assert parse_config("programs: {}\n", FILE, {"FOSS_SUPERVISOR_DEBUG": text}).debug is debug


@PROPERTY
@given(st.integers(0, 3_600_000), st.integers(1, 3_600_000))
def test_a_backoff_start_past_its_cap_is_refused(initial_ms: int, cap_ms: int) -> None:
    initial, cap = initial_ms / 1000, cap_ms / 1000
    text = f"programs: {{p: {{command: [x], backoff: {{initial: {initial:.3f}, max: {cap:.3f}}}}}}}\n"
    errors = _errors(text)
    assume(not _at(errors, "programs.p.backoff.max"))  # a cap its own gate refuses is not this test's
    assert bool(_at(errors, "programs.p.backoff.initial")) is (initial > cap)


@PROPERTY
@given(regex_class(string.ascii_lowercase, string.ascii_lowercase + string.digits + "_-", 20, 2))
def test_a_cwd_or_user_that_does_not_exist_is_refused_at_its_line(tmp_path_factory: Any, name: str) -> None:
    base = tmp_path_factory.mktemp("cfg")
    text = f"programs:\n  p:\n    command: [x]\n    cwd: missing-{name}\n  q:\n    command: [x]\n    user: zz-{name}\n"
    errors = _errors(text, file=base / "c.yaml")
    assert [e.located for e in errors if e.key == "programs.p.cwd"] == [
        f"{base / 'c.yaml'}:4: programs.p.cwd: no such directory: {base.resolve() / ('missing-' + name)}"
    ]
    assert [e.located for e in errors if e.key == "programs.q.user"] == [
        f"{base / 'c.yaml'}:7: programs.q.user: no such user on this host: 'zz-{name}'"
    ]
    (base / f"missing-{name}").mkdir()
    assert not [e for e in _errors(text, file=base / "c.yaml") if e.key == "programs.p.cwd"]
