"""A step's ``keys`` (tablekeys.py), pure: a well-formed declaration loads and joins ``declared_keys`` (what
snapshots record and diff pairs rows by), every malformed value is refused at its file, line and key."""

from __future__ import annotations

import itertools
import re
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import examples
from helpers.pipeline import ORDERS_YAML
from helpers.strategies import regex_class
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.pipeline.engine.fingerprint import definition_digest
from foss_supervisor.pipeline.engine.runsnapshots import declared_keys
from foss_supervisor.pipeline.engine.spec import PipelineSpec, load_pipeline
from foss_supervisor.pipeline.errors import PipelineConfigError

HYPOTHESIS = settings(
    max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
_names = itertools.count()


def doc(keys: Any, *, more: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Pipeline ``p`` owning schemas ``s`` and ``t`` (its ledger ``p_meta``): step ``a`` declares ``keys``."""
    return {
        "name": "p",
        "folders": {"landing": "land", "reference": "ref", "warehouse": "wh/w.duckdb"},
        "schemas": ["s", "t"],
        "steps": [{"name": "a", "sql": "a.sql", "keys": keys}, *(more or [])],
    }


def load(folder: Path, document: dict[str, Any]) -> tuple[Path, PipelineSpec]:
    (folder / "a.sql").write_text("SELECT 1 AS rows_in, 1 AS rows_out;")
    path = folder / f"p{next(_names)}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path, load_pipeline(path)


def refused(folder: Path, document: dict[str, Any]) -> tuple[PipelineConfigError, list[str]]:
    """The loader's refusal of ``document`` (asserted to be one) and the YAML's lines as written."""
    with pytest.raises(PipelineConfigError) as caught:
        path, _ = load(folder, document)
    path = Path(caught.value.file)
    assert re.match(re.escape(str(path)) + r":\d+: \S", str(caught.value)), caught.value  # file:line: key: reason
    assert caught.value.line is not None and caught.value.reason
    return caught.value, path.read_text().splitlines()


def test_declared_keys_are_loaded_and_join_the_deduplicate_steps_keys(tmp_path: Path) -> None:
    dedupe = {
        "name": "d",
        "kind": "deduplicate",
        "params": {"source": "s.src", "target": "s.dst", "superseded": "s.old", "key": "id"},  # one column, alone
    }
    _, spec = load(tmp_path, doc({"s.x": ["id"], "t.y": ["day", "Zone"]}, more=[dedupe]))
    assert spec.step("a").keys == (("s.x", ("id",)), ("t.y", ("day", "Zone")))
    assert declared_keys(spec) == {"s.dst": ["id"], "s.x": ["id"], "t.y": ["day", "Zone"]}


def test_the_shipped_orders_declares_its_enriched_and_gold_keys() -> None:
    keys = declared_keys(load_pipeline(ORDERS_YAML))
    assert keys["silver.orders"] == ["order_id"] and keys["silver.orders_enriched"] == ["order_id"]
    assert keys["gold.daily_revenue"] == ["day", "country"] and keys["gold.customer_ltv"] == ["customer_id"]


@pytest.mark.parametrize(
    ("keys", "more", "key", "reason"),
    [
        ({"p_meta.files": ["path"]}, [], "steps.a.keys.p_meta.files", "ledger schema 'p_meta'"),
        ({"gold.x": ["id"]}, [], "steps.a.keys.gold.x", "schema 'gold' is not the pipeline's (it owns: s, t)"),
        (
            {"s.x": ["id"]},
            [{"name": "b", "sql": "a.sql", "keys": {"s.x": ["id"]}}],
            "steps.b.keys.s.x",
            "keyed twice: also by step 'a'",
        ),
        (
            {"s.dst": ["id"]},
            [
                {
                    "name": "d",
                    "kind": "deduplicate",
                    "params": {"source": "s.src", "target": "s.dst", "superseded": "s.old", "key": ["id"]},
                }
            ],
            "steps.a.keys.s.dst",
            "keyed twice: also by deduplicate step 'd'",
        ),
    ],
)
def test_a_key_of_a_table_the_pipeline_does_not_own_or_keys_twice_is_refused_at_its_line(
    tmp_path: Path, keys: dict[str, Any], more: list[dict[str, Any]], key: str, reason: str
) -> None:
    exc, lines = refused(tmp_path, doc(keys, more=more))
    assert exc.key == key and reason in exc.reason, exc
    assert key.rpartition(".keys.")[2] in lines[exc.line - 1], (exc, lines)  # type: ignore[operator]


OWNED = ["s.a", "s.b", "t.c"]
column = regex_class(string.ascii_letters + "_", string.ascii_letters + string.digits + "_", 10)
good_columns = st.lists(column, min_size=1, max_size=4, unique=True)
printable = st.text(alphabet="abcsXY._- 0", max_size=10)
# a bad name, or a schema the pipeline does not own: not a lower-case schema.table in s or t (any such table is
# taken at load time, whether a step writes it is for validate; drawing one made the test fail now and then)
OWNED_TABLE = re.compile(r"[st]\.[a-z_][a-z0-9_]{0,62}")
bad_table = printable.filter(lambda t: not OWNED_TABLE.fullmatch(t))
bad_column = (
    st.none()
    | st.integers()
    | st.booleans()
    | st.floats(allow_nan=False)
    | printable.filter(lambda c: not c.isidentifier())
    | st.lists(column, max_size=2)
    | st.just("id name")
    | st.just("9x")
)
bad_columns = (
    st.none()
    | st.just([])
    | column
    | st.integers()
    | st.dictionaries(column, column, max_size=2)
    | st.tuples(good_columns, bad_column, st.integers(0, 4)).map(lambda t: [*t[0][: t[2]], t[1], *t[0][t[2] :]])
    | good_columns.map(lambda c: [*c, c[0]])  # a column twice
)
not_a_mapping = st.integers() | st.text(max_size=10) | st.booleans() | st.lists(column, max_size=3) | st.just({})
bad_entry = st.tuples(bad_table, good_columns) | st.tuples(st.sampled_from(OWNED), bad_columns)


@st.composite
def malformed(draw: st.DrawFn) -> Any:
    """A ``keys`` value that is not a mapping of owned schema.table to distinct column names, or one that is
    but for one entry, anywhere in it."""
    if draw(st.booleans()):
        return draw(not_a_mapping)
    good = draw(st.lists(st.sampled_from(OWNED), unique=True, max_size=2))
    table, columns = draw(bad_entry)
    entries = [(t, draw(good_columns)) for t in good if t != table]
    entries.insert(draw(st.integers(0, len(entries))), (table, columns))
    return dict(entries)


def composed_line(text: str, table: str | None, item: int | None) -> int:
    """The line PyYAML's own composer gives step ``a``'s ``keys`` key, its ``table`` key, or that table's
    ``item``-th column: the oracle of where an error must point (1-based)."""
    steps = next(v for k, v in yaml.compose(text).value if k.value == "steps")
    keys_key, keys_value = next((k, v) for k, v in steps.value[0].value if k.value == "keys")
    if table is None:
        return int(keys_key.start_mark.line) + 1
    table_key, columns = next((k, v) for k, v in keys_value.value if k.value == table)
    node = table_key if item is None else columns.value[item]
    return int(node.start_mark.line) + 1


@given(value=malformed())
@HYPOTHESIS
def test_every_malformed_keys_value_is_refused_with_file_line_and_key(tmp_path: Path, value: Any) -> None:
    exc, lines = refused(tmp_path, doc(value))
    assert exc.key == "steps.a.keys" or exc.key.startswith("steps.a.keys."), exc
    text = "\n".join(lines)
    if exc.key == "steps.a.keys":  # the value as a whole
        assert not isinstance(value, dict) or not value or len(value) > 200, exc
        assert exc.line == composed_line(text, None, None), (exc, text)
        return
    table, item = exc.key.removeprefix("steps.a.keys."), None
    found = re.fullmatch(r"(.*)\[(\d+)\]", table)
    if found and found[1] in value:  # one column of a table's list
        table, item = found[1], int(found[2])
    assert isinstance(value, dict) and table in value, exc
    assert exc.line == composed_line(text, table, item), (exc, text)


def test_a_change_of_keys_is_a_change_of_the_definition_so_a_reload_applies_it(tmp_path: Path) -> None:
    """The reload compares definition digests: a keys-only edit must change the digest (else the runner would
    keep diffing by the old key); a pipeline that declares none keeps the digest it had."""
    digests = [definition_digest(load(tmp_path, doc(keys))[1]) for keys in (None, {"s.x": ["id"]}, {"s.x": ["k"]})]
    assert len(set(digests)) == 3
    plain = doc(None)
    del plain["steps"][0]["keys"]
    assert definition_digest(load(tmp_path, plain)[1]) == digests[0]
