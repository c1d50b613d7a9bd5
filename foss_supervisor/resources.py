"""Where the shipped data folders (``configs/``, ``ui_templates/``) are, installed or in a checkout.

They live at the top level of the repository and are copied into the package by the wheel build
(``[tool.setuptools.package-dir]`` in pyproject.toml); an editable install reads them in place.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["data_dir"]

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The folder ``name`` (``configs`` or ``ui_templates``) inside the wheel, else in the checkout."""
    installed = _PACKAGE / name
    return installed if installed.is_dir() else _PACKAGE.parent / name
