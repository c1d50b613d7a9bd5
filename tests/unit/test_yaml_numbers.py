"""YAML 1.1's number forms (octal, ``1_000``, hex, sexagesimal, exponents, ``.inf``/``.nan``, integers past 4,300
digits): one gate decides by the key's kind. A text key takes the text as written; a numeric key refuses
them with file, line, key and reason; ``umask`` reads ``017`` and ``0o17`` as the octal they are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import examples
from helpers.gate_strategies import yaml_number_form
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_gates import CONFIG_LEAVES, FILE, _at, _config_with

from foss_supervisor.config import parse_config
from foss_supervisor.config.gates.base import NUMERIC_KINDS
from foss_supervisor.errors import ConfigError

PROPERTY = settings(max_examples=examples(200), deadline=None, suppress_health_check=list(HealthCheck))
NUMERIC_LEAVES = [(d, g) for d, g in CONFIG_LEAVES if g.kind in NUMERIC_KINDS and not d.endswith("<name>")]
MARK = "PLANTED_FORM"


def _parse(doc: dict[str, Any], form: str) -> Any:
    return parse_config(yaml.safe_dump(doc, width=10**9).replace(MARK, form), FILE, {})


@PROPERTY
@given(st.sampled_from(NUMERIC_LEAVES), yaml_number_form())
def test_a_numeric_key_refuses_every_non_decimal_form_at_its_line(leaf: tuple[str, Any], form: str) -> None:
    dotted, _gate = leaf
    doc, key = _config_with(dotted, MARK)
    with pytest.raises(ConfigError) as refused:
        _parse(doc, form)
    errors = _at(list(refused.value.errors), key)
    assert errors and all(e.line is not None and e.file == str(FILE) for e in errors), str(refused.value)
    assert "Traceback" not in str(refused.value)


@PROPERTY
@given(yaml_number_form())
def test_a_text_key_takes_the_form_as_written(form: str) -> None:
    doc = {"programs": {"p": {"command": ["x", MARK], "env": {"V": MARK}, "stop_signal": "TERM"}}}
    program = _parse(doc, form).programs["p"]
    assert program.env["V"] == form and program.command == ("x", form)


@pytest.mark.parametrize(("written", "bits"), [("017", 0o17), ("0o27", 0o27), ("'022'", 0o22), ("0o777", 0o777)])
def test_umask_reads_octal_forms_as_octal(written: str, bits: int) -> None:
    config = parse_config(f"programs: {{p: {{command: [x], umask: {written}}}}}", FILE, {})
    assert config.programs["p"].umask == bits


@pytest.mark.parametrize("written", ["1_000", "0x1F", ".nan", "1:30", "1e3", "9" * 5000])
def test_umask_refuses_other_number_forms(written: str) -> None:
    with pytest.raises(ConfigError, match=r"c\.yaml:1: programs\.p\.umask: "):
        parse_config(f"programs: {{p: {{command: [x], umask: {written}}}}}", FILE, {})


def test_an_explicit_int_past_the_digit_limit_is_a_located_error(tmp_path: Path) -> None:
    text = "programs:\n  p:\n    command: [x]\n    replicas: !!int '" + "9" * 5000 + "'\n"
    with pytest.raises(ConfigError) as refused:
        parse_config(text, tmp_path / "c.yaml", {})
    assert "c.yaml:4: programs.p.replicas: must be an integer of at most 4300 digits" in str(refused.value)
