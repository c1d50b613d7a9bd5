"""The README keeps its promises: each row of the parity table names a test that exists."""

from __future__ import annotations

from helpers import REPO


def test_readme_parity_table_names_tests_that_exist() -> None:
    """Each row of "Coming from supervisord, PM2 or process-compose" is checked by a test that exists."""
    import ast
    import re

    root = REPO
    readme = (root / "README.md").read_text()
    section = readme.split("## Coming from supervisord, PM2 or process-compose")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) >= 20
    for row in rows:
        ref = re.search(r"`(tests/[\w/]+\.py)::(\w+)`", row)
        assert ref is not None, row
        tree = ast.parse((root / ref.group(1)).read_text())
        names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        assert ref.group(2) in names, row


def test_every_install_uses_the_tested_versions() -> None:
    """constraints.txt pins every dependency (and the test extra) to a version its floor allows, and the README's
    two commands and .ci/run install through it: a fresh install never gets an untested major."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            [spec] = req.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(req.name)] = spec.version
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for text in [*project["dependencies"], *project["optional-dependencies"]["test"]]:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not pinned in constraints.txt"
        assert req.specifier.contains(pins[name]), f"{req.name}=={pins[name]} is outside {req.specifier}"
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "pip install -c constraints.txt . &&" in readme
    assert readme.count("pip install -c constraints.txt -e '.[test]' &&") == 1
    assert ci.count("pip install -c constraints.txt -e '.[test]'") == 2 and "pip install -e" not in ci
