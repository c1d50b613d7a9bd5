"""The graph as text: Graphviz DOT and Mermaid, laid out left to right, steps grouped by pipeline.

Both draw a node's kind and name (and its live state when it has one), fill it by layer (bronze, silver,
gold), and label each edge that is not a plain data flow with its kind. Every name is quoted and escaped,
so any program, path or table name gives valid text: DOT ids are the node ids in double quotes; Mermaid ids
are ``n0``, ``n1``... in the graph's (stable) node order, the name in a quoted label.
"""

from __future__ import annotations

from collections.abc import Mapping

from foss_supervisor.graph.model import Edge, Graph, Node

__all__ = ["FORMATS", "LAYER_COLOURS", "render", "to_dot", "to_mermaid"]

FORMATS = ("json", "dot", "mermaid")
LAYER_COLOURS: Mapping[str, str] = {"bronze": "#e8c39e", "silver": "#d9dde3", "gold": "#f6d776"}
_SHAPES = {"program": "component", "pipeline": "folder", "step": "box", "folder": "tab", "table": "cylinder"}
#: edges drawn without a label: the data flows and the dependencies between steps
_PLAIN = frozenset({"reads", "writes"})


def _label(node: Node) -> str:
    state = f" ({node.state})" if node.state else ""
    name = node.name.rsplit("/", 1)[-1] if node.kind == "step" else node.name
    return f"{node.kind} {name}{state}"


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'


def _dot_node(node: Node, indent: str) -> str:
    attrs = [f"label={_dot_quote(_label(node))}", f"shape={_SHAPES.get(node.kind, 'box')}"]
    if node.layer is not None and node.layer in LAYER_COLOURS:
        attrs.append(f'style=filled, fillcolor="{LAYER_COLOURS[node.layer]}"')
    return f"{indent}{_dot_quote(node.id)} [{', '.join(attrs)}];"


def _dot_edge(edge: Edge) -> str:
    label = "" if edge.kind in _PLAIN else f" [label={_dot_quote(edge.kind)}, style=dashed]"
    return f"  {_dot_quote(edge.source)} -> {_dot_quote(edge.target)}{label};"


def to_dot(graph: Graph) -> str:
    """A ``digraph``: one ``cluster`` subgraph per pipeline holding its node and its steps."""
    lines = ["digraph foss_supervisor {", "  rankdir=LR;", '  node [fontname="sans-serif"];']
    clusters: dict[str, list[Node]] = {}
    for node in graph.nodes:
        owner = node.pipeline if node.kind == "step" else node.name if node.kind == "pipeline" else None
        if owner is None:
            lines.append(_dot_node(node, "  "))
        else:
            clusters.setdefault(owner, []).append(node)
    for i, (pipeline, members) in enumerate(sorted(clusters.items())):
        lines.append(f"  subgraph cluster_{i} {{")
        lines.append(f"    label={_dot_quote('pipeline ' + pipeline)};")
        lines.extend(_dot_node(node, "    ") for node in members)
        lines.append("  }")
    lines.extend(_dot_edge(e) for e in graph.edges)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    """Text inside a quoted Mermaid label: quotes and markup characters as entity codes."""
    out = []
    for ch in text:
        if ch.isalnum() or ch in " ._-/:()@,":
            out.append(ch)
        else:
            out.append(f"#{ord(ch)};")
    return "".join(out)


def to_mermaid(graph: Graph) -> str:
    """A ``flowchart LR``: one ``subgraph`` per pipeline; ``classDef`` per layer."""
    ids = {node.id: f"n{i}" for i, node in enumerate(graph.nodes)}
    lines = ["flowchart LR"]
    lines.extend(f"  classDef {layer} fill:{colour},stroke:#555" for layer, colour in LAYER_COLOURS.items())
    clusters: dict[str, list[Node]] = {}
    for node in graph.nodes:
        owner = node.pipeline if node.kind == "step" else node.name if node.kind == "pipeline" else None
        if owner is None:
            lines.append(f'  {ids[node.id]}["{_mermaid_text(_label(node))}"]')
        else:
            clusters.setdefault(owner, []).append(node)
    for i, (pipeline, members) in enumerate(sorted(clusters.items())):
        lines.append(f'  subgraph p{i}["{_mermaid_text("pipeline " + pipeline)}"]')
        lines.extend(f'    {ids[n.id]}["{_mermaid_text(_label(n))}"]' for n in members)
        lines.append("  end")
    for edge in graph.edges:
        arrow = "-->" if edge.kind in _PLAIN else f"-.->|{edge.kind}|"
        lines.append(f"  {ids[edge.source]} {arrow} {ids[edge.target]}")
    for layer in LAYER_COLOURS:
        members_of = [ids[n.id] for n in graph.nodes if n.layer == layer]
        if members_of:
            lines.append(f"  class {','.join(members_of)} {layer}")
    return "\n".join(lines) + "\n"


def render(graph: Graph, fmt: str) -> str:
    """``dot`` or ``mermaid`` text of ``graph``; ValueError for another format."""
    if fmt == "dot":
        return to_dot(graph)
    if fmt == "mermaid":
        return to_mermaid(graph)
    raise ValueError(f"format must be one of {', '.join(FORMATS[1:])}, got {fmt!r}")
