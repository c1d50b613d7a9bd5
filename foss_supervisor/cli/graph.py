"""The CLI's ``graph``: programs, pipelines, steps, landing folders and tables as one graph (docs/graph.md).

``foss-supervisor graph`` prints JSON; ``--format dot`` Graphviz (``| dot -Tsvg > graph.svg``), ``--format
mermaid`` a Mermaid flowchart (GitHub renders it in Markdown); ``--pipeline NAME`` only that pipeline and
what is one edge away from it. The daemon builds it (command ``graph``); this only prints the reply.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from foss_supervisor.cli.terminal import EXIT_OK, say
from foss_supervisor.control.client import call

if TYPE_CHECKING:
    from foss_supervisor.cli.dispatch import Target

__all__ = ["args_graph", "cmd_graph"]

#: the first graph after a start may wait for the pipeline worker to start and read the SQL
GRAPH_TIMEOUT_S = 60.0


def args_graph(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("json", "dot", "mermaid"), default="json", help="output (default json)")
    p.add_argument("--pipeline", default="", metavar="NAME", help="only this pipeline and its neighbours")


def cmd_graph(args: argparse.Namespace, config: Target) -> int:
    """Print the graph; a warning on stderr when the edges read from SQL are missing (and why)."""
    reply = call(config.control_socket, "graph", timeout_s=GRAPH_TIMEOUT_S, pipeline=args.pipeline, format=args.format)
    if reply.get("lineage_error"):
        say("WARN", f"no edges from the pipelines' SQL: {reply['lineage_error']}")
    if args.format == "json":
        print(json.dumps({"nodes": reply["nodes"], "edges": reply["edges"]}, indent=2))
    else:
        print(reply["text"], end="")
    return EXIT_OK
