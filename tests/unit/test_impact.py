"""Impact before a change (foss_supervisor.graph.impact): what a change of the shipped pipelines' SQL rebuilds,
which column changes break a reader or a contract, and the ``contract:`` key's gate.

The SQL is read as the worker reads it (``scan_scripts``), in this process; through a real daemon and worker
it is tests/e2e/test_impact_daemon.py.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import random
import string
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from helpers import REPO, examples
from helpers.gate_strategies import hostile
from helpers.strategies import regex_class
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.config import Config, parse_config
from foss_supervisor.config.gates import GateError, column_types
from foss_supervisor.errors import ConfigError
from foss_supervisor.graph.impact import assess, canonical_type, contract_gaps, refusal, sql_meaning
from foss_supervisor.graph.model import build_graph
from foss_supervisor.pipeline.engine.spec import PipelineSpec, load_pipeline
from foss_supervisor.pipeline.worker.lineage import scan_scripts

FILE = Path("/etc/fs/c.yaml")
PROPERTY = settings(max_examples=examples(200), deadline=None, suppress_health_check=list(HealthCheck))
GOLD = {"gold.daily_revenue", "gold.product_sales", "gold.customer_ltv"}


@functools.cache
def shipped() -> dict[str, PipelineSpec]:
    return {n: load_pipeline(REPO / "configs" / "pipelines" / f"{n}.yaml") for n in ("orders", "trips")}


def _scripts(specs: dict[str, PipelineSpec]) -> dict[str, Any]:
    scripts = {f"setup:{n}": s.setup_sql for n, s in specs.items() if s.setup_sql}
    scripts |= {f"step:{n}/{st.name}": st.sql for n, s in specs.items() for st in s.steps if st.sql}
    return copy.deepcopy(_scan(tuple(scripts.items())))


@functools.cache
def _scan(scripts: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """One scan per distinct set of scripts (0.8 s a scan; a test assesses one edit under several configs)."""
    return dict(scan_scripts(dict(scripts))["scripts"])


@functools.cache
def _shipped_scan() -> dict[str, Any]:
    return _scripts(shipped())


def _shipped_scripts() -> dict[str, Any]:
    """The shipped pipelines' scan, made once (0.8 s a scan: every example's old side is the same)."""
    return copy.deepcopy(_shipped_scan())


def _config(tables: str = "") -> Config:
    return parse_config(f"data_dir: /srv/data\npipelines:\n  orders: {{}}\n  trips: {{}}\n{tables}", FILE, {})


def _edited(pipeline: str, step: str, old: str, new: str, *, setup: bool = False) -> dict[str, PipelineSpec]:
    specs = dict(shipped())
    spec = specs[pipeline]
    if setup:
        assert spec.setup_sql is not None and old in spec.setup_sql
        specs[pipeline] = dataclasses.replace(spec, setup_sql=spec.setup_sql.replace(old, new))
        return specs
    steps = []
    for s in spec.steps:
        if s.name == step:
            assert s.sql is not None and old in s.sql, (step, old)
            s = dataclasses.replace(s, sql=s.sql.replace(old, new))
        steps.append(s)
    specs[pipeline] = dataclasses.replace(spec, steps=tuple(steps))
    return specs


def _assess(new: dict[str, PipelineSpec], config: Config | None = None) -> dict[str, Any]:
    config = config or _config()
    scripts = _scripts(new)
    graph = build_graph(config, new, scripts, {}, {})
    return assess(shipped(), new, _shipped_scripts(), scripts, graph, config.contracts)


def test_a_silver_column_gold_reads_cannot_go_and_the_refusal_names_file_step_column_and_reader() -> None:
    found = _assess(_edited("orders", "enrich", "p.category AS category, ", ""))
    [broken] = found["breaking"]
    assert broken | {"file": ""} == {
        "file": "",
        "pipeline": "orders",
        "step": "enrich",
        "table": "silver.orders_enriched",
        "column": "category",
        "change": "dropped",
        "was": None,  # ref.products' category, recreated by reference as trim(...): its type is not derived
        "now": None,
        "consumers": ["step orders/aggregate"],
    }
    assert broken["file"].endswith("configs/pipelines/orders/enrich.sql")
    said = refusal(found["breaking"])
    assert "step orders/enrich (" in said and "enrich.sql) no longer produces silver.orders_enriched.category" in said
    assert "which step orders/aggregate uses" in said and said.startswith("pipelines refused, the running ones stay")


def test_a_compatible_change_lists_the_step_and_every_table_downstream() -> None:
    found = _assess(_edited("orders", "enrich", "p.category AS category, ", "p.category AS category, 1 AS one, "))
    assert found["breaking"] == []
    assert found["pipelines"] == {
        "orders": {
            "changed_steps": ["enrich"],
            "removed_steps": [],
            "setup_changed": False,
            "downstream_tables": sorted({"silver.orders_enriched", *GOLD}),
        }
    }
    assert _assess(dict(shipped())) == {"pipelines": {}, "breaking": []}  # nothing changed: nothing listed


def test_a_setup_change_rebuilds_what_reads_its_views() -> None:
    found = _assess(_edited("orders", "", "fx.rate_to_usd,", "fx.rate_to_usd * 1 AS rate_to_usd,", setup=True))
    downstream = set(found["pipelines"]["orders"]["downstream_tables"])
    assert {"work.orders_parsed", "silver.orders_valid", "silver.orders", "silver.orders_enriched"} <= downstream
    assert downstream >= GOLD and not any(t.startswith("trips_") for t in downstream)


def test_a_contract_names_a_dropped_or_retyped_column_no_step_reads() -> None:
    contract = "tables:\n  trips_gold.daily_zone: {contract: {fare: 'decimal(18, 2)', trips: bigint}}\n"
    dropped = _assess(_edited("trips", "daily", "CAST(sum(fare) AS DECIMAL(18, 2)) AS fare, ", ""), _config(contract))
    assert [(b["column"], b["change"], b["consumers"]) for b in dropped["breaking"]] == [
        ("fare", "dropped", ["contract tables.trips_gold.daily_zone.contract.fare (DECIMAL(18, 2))"])
    ]
    retyped = _edited("trips", "daily", "CAST(sum(fare) AS DECIMAL(18, 2))", "CAST(sum(fare) AS DOUBLE)")
    [broken] = _assess(retyped, _config(contract))["breaking"]
    assert (broken["change"], broken["was"], broken["now"]) == ("retyped", "DECIMAL(18,2)", "DOUBLE")
    assert "changes the type (DECIMAL(18,2) -> DOUBLE) of trips_gold.daily_zone.fare" in refusal([broken])
    # a contract that declares the new type is kept; without a contract no one reads it: nothing breaks
    assert _assess(retyped, _config(contract.replace("decimal(18, 2)", "double")))["breaking"] == []
    assert _assess(retyped)["breaking"] == []


def test_a_column_whose_new_list_is_incomplete_is_not_called_dropped() -> None:
    old = "p.category AS category, c.name AS country_name\nFROM silver.orders o"
    new = "c.name AS country_name, q.*\nFROM silver.orders o CROSS JOIN elsewhere.unknown q"  # q's columns: unknown
    found = _assess(_edited("orders", "enrich", old, new))
    assert found["breaking"] == [] and found["pipelines"]["orders"]["changed_steps"] == ["enrich"]


@pytest.mark.parametrize(
    "written",
    [
        "text",
        "VARCHAR",
        "string",
        "int",
        "INT4",
        "int8",
        "BIGINT",
        "bool",
        "float8",
        "real",
        "numeric",
        "decimal(18, 2)",
        "DECIMAL(10,3)",
        "timestamptz",
        "TIMESTAMP WITH TIME ZONE",
        "datetime",
        "date",
        "varchar[]",
        "INTEGER[][]",
        "json",
        "blob",
        "bytea",
        "  double  ",
    ],
)
def test_a_contract_type_compares_as_duckdb_prints_it(written: str) -> None:
    assert canonical_type(written) == str(duckdb.sqltype(written.strip()))


@PROPERTY
@given(hostile(column_types()) | st.dictionaries(st.booleans() | st.none() | st.floats(), st.just("INT"), min_size=1))
def test_the_contract_gate_refuses_the_whole_class_with_a_reason(value: Any) -> None:
    """Names that are not text (a mapping built in Python, not read from YAML, where keys are text) too."""
    with pytest.raises(GateError) as refused:
        column_types()(value)
    said = " ".join(e.reason for e in refused.value.all)
    assert "column name" in said or "DuckDB type name" in said or "a mapping of 1 to 1000" in said, said


@PROPERTY
@given(hostile(column_types()))
def test_every_bad_contract_is_refused_with_its_file_line_and_key(value: Any) -> None:
    text = yaml.safe_dump({"tables": {"gold.daily_revenue": {"contract": value}}}, allow_unicode=True)
    with pytest.raises(ConfigError) as refused:
        parse_config(text, FILE, {})
    errors = list(refused.value.errors)
    assert errors and all(e.file == str(FILE) and e.line is not None for e in errors)
    assert all(e.key.startswith("tables.gold.daily_revenue.contract") for e in errors)
    said = " ".join(str(e) for e in errors)
    assert "column name" in said or "DuckDB type name" in said or "a mapping of 1 to 1000" in said, said


@PROPERTY
@given(
    st.dictionaries(
        regex_class(string.ascii_letters + "_", string.ascii_letters + string.digits + "_", 62),
        st.sampled_from(["VARCHAR", "bigint", "DECIMAL(18, 2)", "timestamp with time zone", "INTEGER[]"]),
        min_size=1,
        max_size=8,
    ).filter(lambda d: len({k.lower() for k in d}) == len(d))
)
def test_a_good_contract_is_kept_whole_in_lower_case_names(contract: dict[str, str]) -> None:
    text = yaml.safe_dump({"tables": {"gold.daily_revenue": {"contract": contract}}})
    config = parse_config(text, FILE, {})
    assert config.contracts == {"gold.daily_revenue": {k.lower(): v.upper() for k, v in contract.items()}}


def test_a_contract_the_sql_does_not_keep_is_named_where_that_is_known() -> None:
    scripts = _scripts(dict(shipped()))
    contracts = {
        "gold.daily_revenue": {"day": "DATE", "revenue_usd": "DOUBLE", "nope": "INTEGER", "country": "text"},
        "silver.orders_enriched": {"order_id": "BIGINT"},  # a type not derived (no cast, no DESCRIBE here)
        "elsewhere.fed": {"a": "INTEGER"},  # no step writes it (a program feeds it)
    }
    gaps = [(g["table"], g["column"], g["problem"]) for g in contract_gaps(scripts, contracts)]
    assert gaps == [
        ("gold.daily_revenue", "nope", "no step or setup of a pipeline writes it"),
        ("gold.daily_revenue", "revenue_usd", "the SQL makes it DECIMAL(18,2)"),
    ]
    # a table whose column list is incomplete says nothing of a column missing from it
    star = {"step:p/s": {"columns": {"writes": {"x.t": {"columns": [], "unknown": "a * ..."}}}}}
    assert contract_gaps(star, {"x.t": {"a": "INTEGER"}}) == []


_SHIPPED_SQL = sorted(
    p.read_text() for p in (Path(__file__).resolve().parents[2] / "configs" / "pipelines").rglob("*.sql")
)


@settings(max_examples=examples(200), deadline=None)
@given(
    sql=st.sampled_from(_SHIPPED_SQL),
    # no line break inside: one put into a line comment would end it and make its words code
    noise=st.lists(st.sampled_from(["  ", "\t", " /* why */ "])),
    seed=st.integers(0, 2**32),
)
def test_comments_and_white_space_do_not_change_a_steps_meaning(sql: str, noise: list[str], seed: int) -> None:
    """A comment or white space added at any break between words of a shipped SQL file leaves its meaning as it
    was (a dry run once listed a step as changed for a comment, or for a line added above its generated SQL)."""
    rng = random.Random(seed)
    words = sql.split(" ")
    edited = " ".join(w + (rng.choice(noise) if noise and rng.random() < 0.2 else "") for w in words)
    if any("'" in w or '"' in w for w in words):  # a break inside a literal is in its text: left alone
        edited = sql + "".join(noise)
    edited += "\n-- a note\n  -- @origin x.yaml:9 steps.check | rule\n"  # a comment line, a moved marker
    assert sql_meaning(edited) == sql_meaning(sql)
    assert sql_meaning(sql + "\nSELECT 2;") != sql_meaning(sql)  # a statement more is a change
