"""A regular (non-editable) wheel carries the embedded config and the templates inside the package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import REPO


@pytest.mark.timeout(300)
def test_wheel_ships_configs_and_templates(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        timeout=280,
    )
    [wheel] = tmp_path.glob("foss_supervisor-*.whl")
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
