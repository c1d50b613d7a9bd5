"""Every key of the config and of a pipeline file has a gate, and each gate refuses its kind's hostile class.

The tests walk :data:`SCHEMA` and :data:`PIPELINE_SCHEMA` (the only place the loaders take keys and gates
from), plant values drawn from ``gate_strategies`` at each key of a small valid file, and check that the
loader refuses every hostile one with the file, the line and that key, accepts the valid ones, and that
each gate returns what the value means. YAML tags and the ``%``/``$`` escapes are generated the same way.
"""

from __future__ import annotations

import copy
import math
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import REPO, config_literal, examples
from helpers.gate_strategies import KINDS, hostile, tagged_yaml, valid
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.config import gates, parse_config
from foss_supervisor.config.gates import MAX_ARGV_BYTES, Gate, GateError, argv, shown
from foss_supervisor.config.interpolate import expand
from foss_supervisor.config.schema import PIPELINE_SCHEMA, SCHEMA, leaves
from foss_supervisor.errors import ConfigError
from foss_supervisor.pipeline.engine.spec import load_pipeline
from foss_supervisor.pipeline.errors import PipelineConfigError

FILE = Path("/etc/fs/c.yaml")
PROPERTY = settings(max_examples=examples(300), deadline=None, suppress_health_check=list(HealthCheck))
CONFIG_LEAVES = leaves(SCHEMA)
PIPELINE_LEAVES = leaves(PIPELINE_SCHEMA)


def test_every_kind_has_strategies() -> None:
    kinds = {gate.kind for _, gate in CONFIG_LEAVES + PIPELINE_LEAVES}
    assert kinds <= set(KINDS), f"kinds without hostile/valid strategies: {kinds - set(KINDS)}"
    assert len(CONFIG_LEAVES) > 60  # the walk reaches every section (programs, health, backoff, hooks, ...)


def test_the_walk_reaches_the_objectives_and_alerts() -> None:
    """The property tests below generate each kind's hostile class at these keys too (issue 20)."""
    walked = {dotted: gate.kind for dotted, gate in CONFIG_LEAVES}
    assert walked["programs.<name>.uptime"] == "uptime"
    assert walked["pipelines.<name>.fresh_within"] == walked["tables.<name>.fresh_within"] == "duration"
    assert walked["alerts.renotify_after"] == walked["alerts.backoff_for"] == "duration"
    assert walked["tables.<name>"] == "name" and walked["alerts.on"] == "names"


def test_every_documented_key_has_a_gate() -> None:
    """Each key ``configs/default.yaml`` documents (commented or not) is a key of the schema."""
    text = (REPO / "configs" / "default.yaml").read_text()
    known = {part for dotted, _ in CONFIG_LEAVES for part in dotted.split(".")}
    examples = {"orders", "api", "programs", "pipelines", "phone", "mail"}  # names of the examples, not keys
    documented = set(re.findall(r"^#?\s{0,6}([a-z_]+):", text, re.M)) - examples
    assert documented <= known, documented - known


# --------------------------------------------------------------------------------- the daemon config


def _config_with(dotted: str, value: Any) -> tuple[dict[str, Any], str]:
    """A small valid config with ``value`` at ``dotted`` (``<name>`` read as ``p``), and the key to expect."""
    parts = dotted.split(".")
    if parts[-1] == "<name>" and isinstance(value, str):  # the name itself
        section = parts[0]
        entry: Any = {"command": ["x"]} if section == "programs" else {"on": "all", "url": "http://x/"}
        entry = {"programs": {"command": ["x"]}, "hooks": entry, "pipelines": {}, "groups": ["p"], "tables": {}}[
            section
        ]
        return {"programs": {"p": {"command": ["x"]}}, section: {value: entry}}, f"{section}.{value}".rstrip(".")
    doc: dict[str, Any] = {"programs": {"p": {"command": ["x"]}}}
    if parts[0] == "hooks":
        doc["hooks"] = {"p": {"on": "all", "url": "http://x/"}}
        if parts[-1] == "command" or parts[2] in ("ntfy", "email"):
            del doc["hooks"]["p"]["url"]  # a hook has one sender
        if parts[2] == "email" and parts[-1] != "to":
            doc["hooks"]["p"]["email"] = {"to": "ops@example.com"}  # what an email hook needs
        if parts[-1] in ("username", "password"):
            doc["hooks"]["p"]["email"] |= {"username": "u", "password": "p"}  # they go together
    if parts[0] == "pipelines":
        doc["pipelines"] = {"orders": {}}  # the shipped pipeline: a file that loads
    if parts[0] == "groups":
        doc["groups"] = {"p": value}
        return doc, "groups.p"
    holder: Any = doc
    name = {"pipelines": "orders", "tables": "gold.t"}.get(parts[0], "p")
    path = [p if p != "<name>" else name for p in parts]
    for part in path[:-1]:
        holder = holder.setdefault(part, {})
    if path[:3] == ["programs", "p", "health"] and path[-1] not in ("http", "tcp", "exec"):
        holder["tcp"] = 1
    holder[path[-1]] = value
    if path[-1] == "shell":
        holder["command"] = "x"  # a shell command is text
    return doc, ".".join(path)


def _refusals(doc: dict[str, Any]) -> list[ConfigError]:
    text = yaml.safe_dump(doc, allow_unicode=True, width=10**9)
    try:
        parse_config(text, FILE, {})
    except ConfigError as exc:
        return list(exc.errors)
    return []


def _at(errors: list[ConfigError], key: str) -> list[ConfigError]:
    return [e for e in errors if e.key == key or e.key.startswith((key + "[", key + "."))]


@PROPERTY
@given(st.data())
def test_each_config_key_refuses_its_kinds_hostile_class_with_file_line_and_key(data: st.DataObject) -> None:
    dotted, gate = data.draw(st.sampled_from(CONFIG_LEAVES))
    value = data.draw(hostile(gate))
    if dotted.endswith("<name>") and not isinstance(value, str):
        return  # a mapping key is text as written: 5 is the name "5"
    doc, key = _config_with(dotted, value)
    errors = _at(_refusals(doc), key)
    assert errors, f"{dotted} = {shown(value)} was accepted"
    assert all(e.file == str(FILE) and e.line is not None for e in errors)


_NEEDS_CONTEXT = {  # valid alone, but they name files, programs or pipelines that must exist
    "programs.<name>.env_file",
    "programs.<name>.depends_on",
    "pipelines.<name>.file",
    "pipelines.<name>.after",
    "groups.<name>",
    "pipelines.<name>",
    "programs.<name>.user",
    "programs.<name>.cwd",  # an existing directory
    "programs.<name>.backoff.initial",  # at most backoff.max
}


@PROPERTY
@given(st.data())
def test_each_config_key_accepts_values_in_its_range(data: st.DataObject) -> None:
    dotted, gate = data.draw(st.sampled_from([(d, g) for d, g in CONFIG_LEAVES if d not in _NEEDS_CONTEXT]))
    value, _ = data.draw(valid(gate))
    if gate.kind == "argv" and isinstance(value, list):  # a command, a probe's or a hook's: interpolated
        value = [v.replace("$", "$$").replace("%", "%%") for v in value]  # values, not variables
    if dotted.startswith("hooks.<name>.email.") and isinstance(value, str):  # interpolated like a URL
        value = value.replace("$", "$$").replace("%", "%%")
    if "{replica}" in str(value) or "${" in str(value) or (dotted.endswith(".env") and "$" in str(value)):
        return
    doc, _ = _config_with(dotted, value)
    assert not _refusals(doc), (dotted, shown(value), [str(e)[:200] for e in _refusals(doc)])


@PROPERTY
@given(st.data())
def test_each_gate_returns_what_a_valid_value_means(data: st.DataObject) -> None:
    _, gate = data.draw(st.sampled_from(CONFIG_LEAVES + PIPELINE_LEAVES))
    value, expected = data.draw(valid(gate))
    got = gate(value)
    if isinstance(expected, float):
        assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-12)
    else:
        assert got == expected


# --------------------------------------------------------------------------------- a pipeline file

_PIPELINE = {
    "name": "p",
    "folders": {"landing": "landing", "reference": ".", "warehouse": "w.duckdb", "reports": "reports"},
    "steps": [{"name": "s", "sql": "s.sql"}],
}


@pytest.fixture(scope="module")
def spec_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("spec")
    (home / "s.sql").write_text("SELECT 1 AS rows_in, 1 AS rows_out;\n")
    return home


def _pipeline_with(dotted: str, value: Any) -> tuple[dict[str, Any], tuple[str, ...]]:
    doc = copy.deepcopy(_PIPELINE)
    head, _, tail = dotted.partition(".")
    if head == "steps":
        doc["steps"][0][tail] = value
        return doc, (f"steps.s.{tail}", f"steps[0].{tail}")
    if head == "folders":
        doc["folders"][tail] = value
        return doc, (dotted,)
    if head == "checks":
        doc["checks"] = [value]
        return doc, ("checks[0]",)
    doc[head] = value
    return doc, (head,)


@PROPERTY
@given(st.data())
def test_each_pipeline_key_refuses_its_kinds_hostile_class(spec_home: Path, data: st.DataObject) -> None:
    dotted, gate = data.draw(st.sampled_from(PIPELINE_LEAVES))
    value = data.draw(hostile(gate))
    doc, keys = _pipeline_with(dotted, value)
    path = spec_home / "p.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, width=10**9))
    with pytest.raises(PipelineConfigError) as refused:
        load_pipeline(path)
    assert refused.value.key.startswith(keys), (dotted, shown(value), str(refused.value)[:200])
    assert refused.value.file == str(path) and refused.value.line is not None


# --------------------------------------------------------------------------------- YAML tags

_TAG_PLACES = [  # (text with {tag}, the line it is on)
    ("programs:\n  p:\n    command: {tag}\n", 3),
    ("programs:\n  p:\n    command: [x, {tag}]\n", 3),
    ("programs:\n  p:\n    command: [x]\n    env: {{A: {tag}}}\n", 4),
    ("programs:\n  p:\n    command: [x]\n    stop_timeout: {tag}\n", 4),
    ("programs:\n  ? {tag}\n  : {{command: [x]}}\n", 2),
    ("programs:\n  p:\n    command: [x]\n    ? {tag}\n    : 1\n", 4),
    ("dashboard: {tag}\n", 1),
]


@PROPERTY
@given(st.sampled_from(_TAG_PLACES), tagged_yaml())
def test_a_yaml_tag_outside_the_core_schema_is_refused_at_its_line(place: tuple[str, int], tag: str) -> None:
    template, line = place
    with pytest.raises(ConfigError) as refused:
        parse_config(template.format(tag=tag), FILE, {})
    assert refused.value.line == line and "YAML tag" in refused.value.reason, refused.value


@PROPERTY
@given(tagged_yaml())
def test_a_pipeline_file_refuses_tags_too(spec_home: Path, tag: str) -> None:
    path = spec_home / "t.yaml"
    path.write_text(f"name: p\nsteps:\n  - name: s\n    sql: {tag}\n")
    with pytest.raises(PipelineConfigError, match="YAML tag") as refused:
        load_pipeline(path)
    assert refused.value.line == 4


# --------------------------------------------------------------------------------- escapes


_PIECES = st.sampled_from(["$", "$$", "%", "%%", "(", ")s", "%(ENV_HOME)s", "${HOME}", "$HOME", "{", "}", "a", " "])


@PROPERTY
@given(st.lists(_PIECES | st.text(max_size=4), max_size=12).map("".join))
def test_any_text_can_be_written_literally_with_the_escapes(text: str) -> None:
    assert expand(config_literal(text), {"HOME": "/h"}.get, {"here": "/c"}) == text


@PROPERTY
@given(
    st.lists(
        st.lists(_PIECES | st.text(min_size=1, max_size=4), min_size=1, max_size=6).map("".join), min_size=1, max_size=5
    )
)
def test_single_quoted_arguments_of_a_string_command_arrive_as_written(args: list[str]) -> None:
    args = [a for a in args if "\x00" not in a and "{replica}" not in a and a]
    if not args:
        return
    text = yaml.safe_dump({"programs": {"p": {"command": shlex.join(args)}}}, width=10**9)  # escaped: NEL...
    assert parse_config(text, FILE, {"HOME": "/h"}).programs["p"].command == tuple(args)


def test_a_value_never_adds_arguments() -> None:
    text = 'programs:\n  p:\n    command: "run $ARGS \\"${ARGS}\\" %(ENV_ARGS)s"\n'
    cfg = parse_config(text, FILE, {"ARGS": "a b 'c' $(id)"})
    assert cfg.programs["p"].command == ("run", "a b 'c' $(id)", "a b 'c' $(id)", "a b 'c' $(id)")


def test_gates_say_the_range_in_the_error() -> None:
    for text, reason in [
        ("programs: {p: {command: [x], stop_timeout: .inf}}", "must be a finite duration, got .inf"),
        ("programs: {p: {command: [x], start_timeout: .nan}}", "must be a finite duration, got .nan"),
        ("programs: {p: {command: [x], backoff: {multiplier: .nan}}}", "must be a finite factor, got .nan"),
        ("programs: {p: {command: [x], backoff: {max: 2d}}}", "from 0s to 1d, got '2d'"),
        ("programs: {p: {command: [x], health: {tcp: 1, interval: 0}}}", "from 10ms to 1d, got 0"),
        ("programs: {p: {command: [x], replicas: 0}}", "from 1 to 1000, got 0"),
        ("programs: {p: {command: [x], log: {max_bytes: 2TiB}}}", "from 0 to 1TiB bytes, got '2TiB'"),
        ("programs: {p: {command: [x], stop_signal: STOP}}", "not STOP"),
    ]:
        with pytest.raises(ConfigError) as refused:
            parse_config(text, FILE, {})
        assert reason in refused.value.reason and refused.value.line == 1, refused.value


def test_an_argv_is_bounded_as_a_whole() -> None:
    """A file cannot hold a megabyte of arguments (it is bounded first), but variables can fill one in."""
    with pytest.raises(GateError, match=f"at most {MAX_ARGV_BYTES} bytes together"):
        argv()(["x" * 100_000] * 11)


def test_environment_overrides_pass_the_same_gates() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config("programs: {}\n", FILE, {"FOSS_SUPERVISOR_PORT": "70000", "FOSS_SUPERVISOR_HOST": "a b"})
    found = {(e.file, e.key) for e in refused.value.errors}
    assert found == {("environment", "FOSS_SUPERVISOR_PORT"), ("environment", "FOSS_SUPERVISOR_HOST")}


@given(st.sampled_from(["state", "./state", "../x/state", "state/../s", "~user"]))
def test_a_relative_state_dir_from_the_environment_is_refused(relative: str) -> None:
    """The daemon runs from /, and a shell's working folder is not the config's: only an absolute path is clear."""
    with pytest.raises(ConfigError) as refused:
        parse_config("programs: {}\n", FILE, {"FOSS_SUPERVISOR_STATE_DIR": relative})
    [error] = refused.value.errors
    assert (error.file, error.key) == ("environment", "FOSS_SUPERVISOR_STATE_DIR")
    assert "absolute path" in str(error)


def test_a_gate_is_the_only_way_a_key_is_read() -> None:
    """Reading a key the schema does not name is our bug, caught at once (not a silent default)."""
    from foss_supervisor.config.reader import Reader

    r = Reader({"x": 1}, "", "f", {}, [], {"y": SCHEMA["debug"]})
    with pytest.raises(KeyError, match="no gate"):
        r.get("x", 0)
    assert isinstance(SCHEMA["debug"], Gate)


_NUMBER, _REGEX = gates.number(), gates.regex()


@PROPERTY
@given(st.data())
def test_quality_rules_pass_the_number_and_regex_gates(spec_home: Path, data: st.DataObject) -> None:
    """``accepted_range`` bounds and ``pattern`` rules live in a step's params: the same gates guard them."""
    gate, rule = data.draw(st.sampled_from([(_NUMBER, "accepted_range"), (_REGEX, "pattern")]))
    value = data.draw(hostile(gate))
    arg = {"min_value": value} if rule == "accepted_range" else value
    step = {
        "name": "q",
        "kind": "quality",
        "params": {"source": "a.raw", "valid": "a.ok", "rejected": "a.bad", "columns": {"x": [{rule: arg}]}},
    }
    path = spec_home / "q.yaml"
    path.write_text(yaml.safe_dump({**_PIPELINE, "steps": [step]}, allow_unicode=True, width=10**9))
    with pytest.raises(PipelineConfigError) as refused:
        load_pipeline(path)
    assert refused.value.key.startswith("steps.q.params.columns.x"), str(refused.value)[:200]
    assert refused.value.line is not None


@PROPERTY
@given(st.data())
def test_quality_rules_refuse_non_finite_values_and_empty_ranges_at_their_key(
    spec_home: Path, data: st.DataObject
) -> None:
    """``accepted_values`` holding ``.nan``/``.inf``, and an ``accepted_range`` no value can pass (min above max,
    or equal and exclusive): refused with the file, line and key, not a bare gate error."""
    low, high = data.draw(st.integers(-1000, 1000)), data.draw(st.integers(-1000, 1000))
    inclusive = data.draw(st.booleans())
    empty = low > high or (low == high and not inclusive)
    form = data.draw(st.sampled_from([".nan", ".inf", "-.inf", ".NaN"]))
    rule = data.draw(st.sampled_from(["values", "range"]))
    arg: Any = (
        ["a", "PLANTED"]
        if rule == "values"
        else {"accepted_range": {"min_value": low, "max_value": high, "inclusive": inclusive}}
    )
    rules = [{"accepted_values": arg}] if rule == "values" else [arg]
    step = {
        "name": "q",
        "kind": "quality",
        "params": {"source": "a.raw", "valid": "a.ok", "rejected": "a.bad", "columns": {"x": rules}},
    }
    path = spec_home / "q.yaml"
    path.write_text(yaml.safe_dump({**_PIPELINE, "steps": [step]}, width=10**9).replace("PLANTED", form))
    if rule == "range" and not empty:
        load_pipeline(path)
        return
    with pytest.raises(PipelineConfigError) as refused:
        load_pipeline(path)
    assert refused.value.key.startswith("steps.q.params.columns.x"), str(refused.value)
    assert refused.value.line is not None and refused.value.file == str(path)


def _without(doc: dict[str, Any], dotted: str) -> dict[str, Any]:
    """``doc`` without the leaf that ``_config_with`` planted at ``dotted`` (a schema path with ``<name>``)."""
    out = copy.deepcopy(doc)
    holder: Any = out
    name = {"pipelines": "orders", "tables": "gold.t"}.get(dotted.split(".")[0], "p")
    parts = [part if part != "<name>" else name for part in dotted.split(".")]
    for part in parts[:-1]:
        holder = holder[part]
    holder.pop(parts[-1], None)
    return out


def _outcome(doc: dict[str, Any]) -> Any:
    text = yaml.safe_dump(doc, allow_unicode=True, width=10**9)
    try:
        return parse_config(text, FILE, {})
    except ConfigError as exc:
        return sorted(e.key for e in exc.errors)


@pytest.mark.parametrize("dotted", [d for d, _ in CONFIG_LEAVES if not d.endswith("<name>") and d != "groups.<name>"])
def test_a_key_written_empty_is_a_key_not_given(dotted: str) -> None:
    """``key:`` (null) reads as if the key were not there, at every key of the schema: a required key
    written empty is missing, and an empty sender does not count as a hook's one sender (``ntfy:`` with
    nothing after it once passed the check and took every hook down at its first delivery)."""
    doc, key = _config_with(dotted, None)
    assert _outcome(doc) == _outcome(_without(doc, dotted)), key
