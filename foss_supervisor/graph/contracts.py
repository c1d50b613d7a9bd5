"""What a step touches when its work is Python: the shipped steps' declared contracts.

A SQL step (and a ``quality`` or ``deduplicate`` step, whose SQL is compiled from its params) is read by the
worker statement by statement; a Python step's tables cannot be read off its code. The shipped ones say
what they touch here, from their params and the pipeline's ledger:

- ``ledger:discover`` reads the landing folder, writes the ledger's ``files`` and ``file_seen``;
- ``ingest:ingest`` reads the landing folder and the ledger's ``files``, writes ``params.table``.

Any other Python step (a pipeline's own ``steps.py``, the shipped report, which only counts rows) gets no
table edges: the graph shows it in its pipeline after the steps it depends on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["DISCOVER", "INGEST", "python_contract"]

DISCOVER = "foss_supervisor.pipeline.worker.ledger:discover"
INGEST = "foss_supervisor.pipeline.worker.ingest:ingest"


def python_contract(
    callable_ref: str | None, params: Mapping[str, Any], ledger: str, landing: str
) -> tuple[list[str], list[str]]:
    """(node ids read, node ids written) of a Python step: ``table:schema.table`` and ``folder:PATH``; empty
    for a callable without a declared contract."""
    folder = f"folder:{landing}"
    if callable_ref == DISCOVER:
        return [folder], [f"table:{ledger}.files", f"table:{ledger}.file_seen"]
    if callable_ref == INGEST:
        table = params.get("table")
        writes = [f"table:{table.lower()}"] if isinstance(table, str) and table.count(".") == 1 else []
        return [folder, f"table:{ledger}.files"], writes
    return [], []
