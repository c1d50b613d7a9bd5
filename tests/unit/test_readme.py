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
