"""The Python a pipeline names (pipeline/worker/callables.py): a shipped step by module, or the pipeline's own code by
file beside its YAML; old names of the shipped steps read as their new ones; every reference the gate lets
through either resolves to something that loads or is refused with the file and key named.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from helpers import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.config.schema import CALLABLE
from foss_supervisor.pipeline.engine.spec import default_pipelines_dir, load_pipeline
from foss_supervisor.pipeline.errors import PipelineConfigError
from foss_supervisor.pipeline.worker.callables import RENAMED, load_callable, resolve_callable

#: the file form of a reference, the part of the gate a path can take
FILE_REFS = st.from_regex(r"[\w./-]{0,60}\.py:[A-Za-z_]\w{0,20}", fullmatch=True)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ref=FILE_REFS)
def test_any_file_reference_the_gate_admits_resolves_or_is_refused_by_name(tmp_path: Path, ref: str) -> None:
    assert CALLABLE(ref) == ref  # the gate lets it through: what follows must hold for all of them
    try:
        resolved = resolve_callable(ref, tmp_path, "p.yaml", "steps.s.callable")
    except PipelineConfigError as exc:
        assert exc.key == "steps.s.callable" and "no such Python file" in exc.reason
        return
    path, _, name = resolved.rpartition(":")
    assert Path(path).is_absolute() and Path(path).is_file() and name == ref.rpartition(":")[2]


def test_a_file_step_loads_once_and_writes_no_bytecode_beside_it(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "steps.py").write_text("LOADS = []\nLOADS.append(1)\n\ndef step(ctx):\n    return {'rows_in': 0}\n")
    ref = resolve_callable("mine/steps.py:step", tmp_path, "p.yaml", "k")
    assert ref == f"{folder / 'steps.py'}:step"
    assert load_callable(ref) is load_callable(ref)
    assert load_callable(ref.replace(":step", ":LOADS")) == [1]  # executed once per process
    assert not (folder / "__pycache__").exists()
    with pytest.raises(AttributeError):
        load_callable(ref.replace(":step", ":missing"))


def test_a_module_that_cannot_be_imported_is_refused_at_load() -> None:
    with pytest.raises(PipelineConfigError, match="cannot be imported"):
        resolve_callable("no_such_package.steps:run", Path("."), "p.yaml", "steps.a.callable")


@pytest.mark.parametrize("old", sorted(RENAMED))
def test_names_from_before_the_move_load_as_their_new_ones(tmp_path: Path, old: str) -> None:
    step = {"name": "a", "kind": "python", "callable": old}
    if old.endswith(":ingest"):
        step["params"] = {"table": "bronze.raw", "columns": ["a"]}
    folders = {"landing": str(tmp_path), "reference": str(tmp_path), "warehouse": str(tmp_path / "w.duckdb")}
    doc = {"name": "p", "folders": folders}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({**doc, "schemas": ["bronze"], "steps": [step]}))
    [loaded] = load_pipeline(tmp_path / "p.yaml").steps
    assert loaded.callable == resolve_callable(RENAMED[old], tmp_path, "p.yaml", "k") != old
    assert callable(load_callable(str(loaded.callable)))


def test_the_orders_pipeline_keeps_its_own_python_in_its_folder() -> None:
    spec = load_pipeline(default_pipelines_dir() / "orders.yaml")
    folder = (default_pipelines_dir() / "orders").resolve()
    own = [s.callable for s in spec.steps if s.callable and ".py:" in s.callable]
    assert own == [f"{folder / 'steps.py'}:report"]
    assert spec.demo_data == f"{folder / 'demo_data.py'}:generate"
    # the engine holds no pipeline's own code: every module it ships is generic
    engine = Path(__file__).resolve().parents[3] / "foss_supervisor" / "pipeline"
    assert not [p.name for p in engine.glob("*.py") if re.search(r"orders|demo_data", p.stem)]
