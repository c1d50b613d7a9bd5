"""The dashboard's templates hold no inline script, event handler or style (the CSP forbids them)."""

from __future__ import annotations

import re
from pathlib import Path

from foss_supervisor.base.resources import data_dir


def test_templates_hold_no_inline_script_handler_or_style() -> None:
    for path in Path(data_dir("ui_templates")).glob("*.html"):
        text = path.read_text()
        assert not re.search(r"<script(?![^>]*\b(src|type=\"application/json\"))[^>]*>", text), path.name
        assert not re.search(r"\son[a-z]+=|\sstyle=", text), path.name
