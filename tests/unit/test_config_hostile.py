"""Hostile config files: every input of the loader is bounded, every refusal is a located ConfigError.

Unit cases per kind (alias expansion, recursive alias, nesting, size, program count, merge keys,
all errors at once), property-based tests (hypothesis) that nothing but a ConfigError ever comes
out of the loader (the real daemon refusing a bomb: tests/e2e/test_config_hostile_daemon.py).
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from helpers import examples
from helpers.strategies import BILLION_LAUGHS, regex_class
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.config import MAX_PROGRAMS, load_config, parse_config
from foss_supervisor.config.yamlload import MAX_FILE_BYTES, MAX_NODES, load_yaml
from foss_supervisor.control.protocol import MAX_DEPTH, decode_request
from foss_supervisor.errors import ConfigError, ProtocolError

FILE = Path("/etc/fs/c.yaml")


# The 502-byte kind: nine levels of nine aliases each, 9^9 (387 million) strings once expanded.
def refused(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, FILE, {})
    return info.value


def test_alias_bomb_is_refused_with_line_and_key() -> None:
    err = refused(BILLION_LAUGHS)
    assert "expands to more than" in err.reason
    assert err.file == str(FILE)
    assert err.line is not None and 6 <= err.line <= 14
    assert err.key.startswith("lol.")


def test_recursive_alias_is_a_config_error_not_a_recursion_error() -> None:
    for text in ("a: &x [1, *x]\n", "a: &x {b: *x}\n", "programs:\n  p: &p\n    command: [x]\n    env: *p\n"):
        err = refused(text)
        assert "refers to a node that contains it" in err.reason
        assert err.line is not None


def test_nesting_deeper_than_the_bound_is_refused() -> None:
    block = "".join("  " * i + "k:\n" for i in range(200)) + "  " * 200 + "v: 1\n"
    assert "nested deeper" in refused(block).reason
    flow = "a: " + "[" * (MAX_NODES // 1000) + "]" * (MAX_NODES // 1000) + "\n"
    assert "nested deeper" in refused(flow).reason or "invalid YAML" in refused(flow).reason


def test_big_file_is_refused_before_it_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("# " + "x" * MAX_FILE_BYTES + "\n")
    with pytest.raises(ConfigError, match="larger than"):
        load_config(path, {})


def test_an_env_file_is_read_bounded(tmp_path: Path) -> None:
    (tmp_path / "big.env").write_text("A=" + "x" * (2 * 1024 * 1024) + "\n")
    (tmp_path / "bin.env").write_bytes(b"A=\xff\n")
    for name, reason in (("/dev/zero", "larger than"), ("big.env", "larger than"), ("bin.env", "not UTF-8")):
        with pytest.raises(ConfigError) as info:
            parse_config(f"programs:\n  a: {{command: [x], env_file: {name}}}\n", tmp_path / "c.yaml", {})
        assert info.value.key == "programs.a.env_file" and reason in info.value.reason


def test_too_many_programs_are_refused() -> None:
    err = refused(
        f"programs:\n  a: {{command: [x], replicas: 1000}}\n  b: {{command: [x], replicas: 1000}}\n"
        f"  c: {{command: [x], replicas: {MAX_PROGRAMS}}}\n"
    )
    assert err.key == "programs.c" and f"more than {MAX_PROGRAMS} programs" in err.reason


def test_aliases_within_bounds_and_merge_keys_work() -> None:
    cfg = parse_config(
        "programs:\n"
        "  a: &base\n    command: [x]\n    stop_timeout: 2\n    env: {A: '1'}\n"
        "  b:\n    <<: *base\n    env: {B: '2'}\n",
        FILE,
        {},
    )
    assert cfg.programs["b"].stop_timeout_s == 2.0
    assert dict(cfg.programs["b"].env) == {"B": "2"}  # a key written out wins over the merged one
    assert cfg.programs["b"].command == ("x",)


def test_every_error_of_a_file_is_reported_at_once() -> None:
    err = refused(
        "dashboard: {port: 70000}\n"
        "programs:\n"
        "  a: {command: [x], stop_timeout: soon, restart: always}\n"
        "  b: {cwd: /}\n"
        "  c: {command: '${NOPE}'}\n"
    )
    found = {(e.key, e.line) for e in err.errors}
    assert found == {
        ("dashboard.port", 1),
        ("programs.a.stop_timeout", 3),
        ("programs.a.restart", 3),
        ("programs.b", 4),
        ("programs.c.command", 5),
    }
    assert str(err).startswith("5 errors:\n  /etc/fs/c.yaml:1: dashboard.port:")


# ------------------------------------------------------------------------------------------ properties

_FAST = settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FAST
@given(st.text(max_size=400))
def test_any_text_gives_a_config_or_a_config_error(text: str) -> None:
    try:
        parse_config(text, FILE, {})
    except ConfigError as exc:
        assert exc.file == str(FILE)


_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20), st.floats(allow_nan=False))


def _containers(inner: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)


_values = st.recursive(_scalar, _containers, max_leaves=20)


@_FAST
@given(st.dictionaries(st.sampled_from(["programs", "dashboard", "log", "state_dir", "junk"]), _values, max_size=4))
def test_any_structure_gives_a_config_or_a_config_error(data: dict[str, object]) -> None:
    text = json.dumps(data)  # JSON is YAML: any shape, any type in any place
    try:
        parse_config(text, FILE, {})
    except ConfigError as exc:
        assert exc.errors and all(e.file in (str(FILE), "environment") or e.file.endswith(".env") for e in exc.errors)


@_FAST
@given(st.integers(1, 12), st.integers(1, 12), st.booleans())
def test_alias_trees_of_any_shape_are_measured_before_they_are_built(fanout: int, levels: int, mapping: bool) -> None:
    lines = ["root:", "  l0: &l0 [x]"]
    for i in range(1, levels + 1):
        refs = ", ".join(f"k{j}: *l{i - 1}" for j in range(fanout)) if mapping else ", ".join([f"*l{i - 1}"] * fanout)
        lines.append(f"  l{i}: &l{i} " + ("{" + refs + "}" if mapping else f"[{refs}]"))
    text = "\n".join(lines) + "\n"
    sizes = [2]  # l0: a sequence and its scalar
    for _ in range(levels):
        sizes.append(1 + fanout * (sizes[-1] + (1 if mapping else 0)))  # the collection, its (keys and) values
    expanded = 2 + sum(1 + size for size in sizes)  # the document's mapping, "root", each key and its value
    try:
        data, _ = load_yaml(text, "t.yaml")
    except ConfigError as exc:
        assert "expands to more than" in exc.reason
        assert expanded > MAX_NODES  # refused exactly when the expansion is that large
    else:
        assert expanded <= MAX_NODES
        assert len(data["root"]) == levels + 1


@_FAST
@given(st.recursive(st.integers() | st.text(max_size=5), lambda i: st.lists(i, max_size=3), max_leaves=40))
def test_control_requests_are_bounded_in_depth(args_value: object) -> None:
    line = json.dumps({"v": 1, "id": 1, "cmd": "x", "args": {"a": args_value}}).encode()

    def depth(v: object) -> int:
        return 1 + max((depth(c) for c in v), default=0) if isinstance(v, list) else 0

    if depth(args_value) + 2 > MAX_DEPTH:
        with pytest.raises(ProtocolError, match="nested deeper"):
            decode_request(line)
    else:
        assert decode_request(line)[1] == "x"


@_FAST
@given(
    st.binary(max_size=300)
    | st.builds(lambda v: json.dumps(v).encode(), _values)
    | st.builds(lambda v: json.dumps({"v": 1, "id": 1, "cmd": "status", "args": v}).encode(), _values)
)
def test_any_control_request_line_is_answered_or_refused_as_a_protocol_error(line: bytes) -> None:
    try:
        _, cmd, args = decode_request(line)
    except ProtocolError:
        return
    assert isinstance(cmd, str) and cmd and isinstance(args, dict)


def test_control_request_deeper_than_python_recursion_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="nested deeper"):
        decode_request(b'{"v":1,"cmd":"x","args":{"a":' + b"[" * 200_000 + b"]" * 200_000 + b"}}")


# ------------------------------------------------------------------------------------------ real daemon


def test_a_pipeline_spec_is_bounded_the_same_way(tmp_path: Path) -> None:
    from foss_supervisor.pipeline.engine.spec import load_pipeline
    from foss_supervisor.pipeline.errors import PipelineConfigError

    spec = tmp_path / "p.yaml"
    spec.write_text("name: p\n" + BILLION_LAUGHS[BILLION_LAUGHS.index("lol:") :])
    with pytest.raises(PipelineConfigError, match="expands to more than"):
        load_pipeline(spec)
    spec.write_text("name: p\nsteps: &s [*s]\n")
    with pytest.raises(PipelineConfigError, match=r"p.yaml:2: steps\[0\]: alias \*s refers to a node that contains it"):
        load_pipeline(spec)


_spec_values = st.dictionaries(
    st.sampled_from(["name", "description", "folders", "setup", "steps", "checks", "junk"]), _values, max_size=5
)


@_FAST
@given(st.text(max_size=300) | st.builds(json.dumps, _spec_values))
def test_any_pipeline_spec_gives_a_spec_or_a_located_error(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    from foss_supervisor.pipeline.engine.spec import load_pipeline
    from foss_supervisor.pipeline.errors import PipelineConfigError

    spec = tmp_path_factory.mktemp("spec") / "p.yaml"
    spec.write_text(text)
    try:
        load_pipeline(spec)
    except PipelineConfigError as exc:
        assert exc.file == str(spec)


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ('command: ["x\\0y"]', "programs.a.command"),
        ('command: "sleep 1", cwd: "a\\0b"', "programs.a.cwd"),
        ('command: "sleep 1", env_file: "a\\0b"', "programs.a.env_file"),
        ('command: "sleep 1", pidfile: "a\\0b"', "programs.a.pidfile"),
        ('command: "sleep 1", env: {X: "a\\0b"}', "programs.a.env"),
        ('command: "sleep 1", log: {file: "a\\0b"}', "programs.a.log.file"),
        ('command: "sleep 1", health: {exec: ["a\\0b"]}', "programs.a.health.exec"),
    ],
)
def test_a_nul_byte_in_any_string_is_a_located_error(section: str, key: str) -> None:
    """YAML's "\\0" escape gives a NUL byte, which no path, argument or environment value can hold."""
    with pytest.raises(ConfigError) as refused:
        parse_config(f"programs:\n  a: {{{section}}}\n", Path("/tmp/x.yaml"), {})
    assert key in str(refused.value) and "NUL byte" in str(refused.value)


@settings(max_examples=examples(60), deadline=None)
@given(
    st.lists(st.sampled_from(["regex", "flag", "signal", "number"]), min_size=0, max_size=4),
    st.lists(
        st.builds("{}-{}".format, regex_class("", string.ascii_lowercase, 8, 3), st.sampled_from(string.digits)),
        min_size=1,
        max_size=3,
        unique=True,
    ),
)
def test_unknown_dependencies_are_listed_with_every_other_error_at_once(broken: list[str], unknown: list[str]) -> None:
    """Broken programs and unknown dependency names in one file: one refusal lists every one of them (a
    dependency on a program that is there but broken is not another error: that program's own is)."""
    bad = {
        "regex": "ready: {log: '(['}",
        "flag": "disabled: maybe",
        "signal": "stop_signal: NOPE",
        "number": "start_timeout: .nan",
    }
    lines = [f"  broken{i}: {{command: [x], {bad[kind]}}}" for i, kind in enumerate(broken)]
    deps = ", ".join([*unknown, *(f"broken{i}" for i in range(len(broken)))])
    lines.append(f"  user: {{command: [x], depends_on: [{deps}]}}")
    errors = refused("state_dir: /tmp/s\nprograms:\n" + "\n".join(lines) + "\n").errors
    keys = [e.key for e in errors]
    assert [k.split(".")[1] for k in keys if not k.endswith("depends_on")] == [f"broken{i}" for i in range(len(broken))]
    assert sorted(str(e.reason) for e in errors if e.key.endswith("depends_on")) == sorted(
        f"unknown program {name!r}" for name in unknown
    )
