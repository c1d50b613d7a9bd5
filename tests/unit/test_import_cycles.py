"""No import cycle in ``foss_supervisor``, counting every import: module level and inside functions and
methods alike (a lazy import that closes a cycle only hides it: import order then decides what works).
Imports under ``if TYPE_CHECKING:`` are for the type checker only and are left out.

The graph is read from the AST of every module (helpers/imports.py, the reader the room rules use too);
``from X import name`` is an edge to the submodule ``X.name`` when that is a module of ours, else to ``X``.
"""

from __future__ import annotations

from pathlib import Path

from helpers.imports import describe, edges_of, import_graph, shortest_cycle, strongly_connected


def test_no_import_cycle_counting_lazy_imports() -> None:
    graph = import_graph()
    components = strongly_connected(graph)
    report = [
        f"{len(members)} modules {members}; e.g. {describe(graph, shortest_cycle(graph, members))}"
        for members in components
    ]
    assert not components, "import cycles:\n" + "\n".join(report)


def test_the_graph_sees_lazy_imports_and_skips_type_checking(tmp_path: Path) -> None:
    """The reader itself: an import inside a method counts, one under ``if TYPE_CHECKING:`` does not."""
    source = tmp_path / "probe.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from foss_supervisor.web import routes\n"
        "class A:\n"
        "    def f(self) -> None:\n"
        "        from foss_supervisor.pipeline.worker import ingest\n"
        "        import foss_supervisor.cli.dispatch\n"
    )
    found = edges_of(source, "foss_supervisor.probe")
    assert found == {"foss_supervisor.pipeline.worker.ingest": 6, "foss_supervisor.cli.dispatch": 7}


def test_a_cycle_is_found_and_told_in_order() -> None:
    graph = {"a": {"b": 3}, "b": {"c": 5}, "c": {"a": 7, "d": 1}, "d": {}}
    components = strongly_connected(graph)
    assert components == [["a", "b", "c"]]
    assert shortest_cycle(graph, components[0]) == ["a", "b", "c", "a"]
