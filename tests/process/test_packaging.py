"""A regular (non-editable) wheel carries the embedded config and the templates inside the package, and exactly
the package's modules (none that the tree no longer has)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project built once as a regular wheel, for the tests of this module."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=280,
    )
    [built] = out.glob("foss_supervisor-*.whl")
    return built


@pytest.mark.timeout(300)
def test_wheel_ships_configs_and_templates(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "foss_supervisor/configs/default.yaml",
        "foss_supervisor/ui_templates/base.html",
        "foss_supervisor/ui_templates/static/app.js",
        "foss_supervisor/py.typed",
    ):
        assert required in names, required
    shipped = {n for n in names if n.startswith(("foss_supervisor/configs/", "foss_supervisor/ui_templates/"))}
    in_repo = {
        "foss_supervisor/" + str(p.relative_to(REPO))
        for top in ("configs", "ui_templates")
        for p in (REPO / top).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert in_repo <= shipped, sorted(in_repo - shipped)


INSTALLED_CHECK = r"""
import sys
from pathlib import Path
import foss_supervisor
from foss_supervisor.pipeline.worker.callables import load_callable
from foss_supervisor.pipeline.engine.spec import default_pipelines_dir, load_pipeline

target = Path(sys.argv[1]).resolve()
assert Path(foss_supervisor.__file__).resolve().is_relative_to(target), foss_supervisor.__file__
spec = load_pipeline(default_pipelines_dir() / "orders.yaml")
own = [s.callable for s in spec.steps if s.callable and ".py:" in s.callable] + [spec.demo_data]
assert own and all(ref and Path(ref.rpartition(":")[0]).resolve().is_relative_to(target) for ref in own), own
assert all(callable(load_callable(ref)) for ref in own if ref)
summary = load_callable(spec.demo_data)(Path(sys.argv[2]), orders=50, seed=1)
assert summary.files and all(p.exists() for p in summary.files)
print("ok", len(own))
"""


@pytest.mark.timeout(300)
def test_an_installed_copy_finds_the_orders_pipelines_own_python(wheel: Path, tmp_path: Path) -> None:
    """A regular install: orders.yaml's own steps and demo data generator load from the installed package."""
    assert "foss_supervisor/configs/pipelines/orders/steps.py" in zipfile.ZipFile(wheel).namelist()
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-compile",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    done = subprocess.run(
        [sys.executable, "-c", INSTALLED_CHECK, str(target), str(tmp_path / "landing")],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and done.stdout.startswith("ok 2"), done.stdout + done.stderr
    assert not list((target / "foss_supervisor" / "configs").rglob("__pycache__"))  # nothing written beside it


@pytest.mark.timeout(300)
def test_the_wheel_holds_exactly_the_trees_modules(wheel: Path) -> None:
    """Every module of the tree is in the wheel and nothing else is: a package missing from pyproject's list would
    be absent, and a module moved or deleted but left in setuptools' build/ folder (which it never empties) would
    be installed beside its new copy."""
    tree = {str(p.relative_to(REPO)) for p in (REPO / "foss_supervisor").rglob("*.py") if "__pycache__" not in p.parts}
    with zipfile.ZipFile(wheel) as zf:
        shipped = {
            n
            for n in zf.namelist()
            if n.startswith("foss_supervisor/")
            and n.endswith(".py")
            and not n.startswith(("foss_supervisor/configs/", "foss_supervisor/ui_templates/"))  # data, from elsewhere
        }
    assert shipped - tree == set(), "shipped but not in the tree"
    assert tree - shipped == set(), "in the tree but not shipped"
