"""JSON text from files the daemon did not write this run (its state dir, its journal, its logs): parsed, or
refused with ValueError. ``json.loads`` raises RecursionError, not ValueError, for nesting deeper than the
interpreter's stack (a 200 KB file of ``[[[[...``), and that once kept the daemon from starting."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["parse_json"]


def parse_json(text: str | bytes) -> Any:
    """The value of ``text``; ValueError for invalid JSON, undecodable bytes or nesting too deep to parse."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
