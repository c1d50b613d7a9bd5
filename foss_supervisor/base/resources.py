"""Where things live: the shipped data folders, the default config and state dir, and the control socket.

Stdlib only, so the CLI can find the daemon's control socket without importing PyYAML and the typed
config (about half of a CLI call's start-up). This is the ``Path`` API over the rules of
:mod:`~foss_supervisor.base.controlsocket`, which holds them as plain strings (``status`` uses that one
alone, without pathlib). ``configs/`` and ``ui_templates/`` live at the top level of the repository and
are copied into the package by the wheel build (``[tool.setuptools.package-dir]`` in pyproject.toml); an
editable install reads them in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from foss_supervisor.base import controlsocket
from foss_supervisor.base.controlsocket import DEFAULT_CONFIG_NAME, MAX_SOCKET_PATH

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "MAX_SOCKET_PATH",
    "config_path",
    "control_socket_path",
    "data_dir",
    "default_config_path",
    "default_state_dir",
    "locate_control_socket",
    "resolve_path",
]


def data_dir(name: str) -> Path:
    """The folder ``name`` (``configs`` or ``ui_templates``) inside the wheel, else in the checkout."""
    return Path(controlsocket.package_data(name))


def default_config_path() -> Path:
    """The embedded default config, found in the installed package as well as in a checkout."""
    return data_dir("configs") / DEFAULT_CONFIG_NAME


def default_state_dir() -> Path:
    """``/var/lib/foss-supervisor`` for root, else ``$XDG_STATE_HOME/foss-supervisor``."""
    return Path(controlsocket.default_state_dir())


def control_socket_path(state_dir: Path) -> Path:
    """The control socket of ``state_dir``'s daemon (see :func:`~foss_supervisor.base.controlsocket.control_socket`:
    ``<state_dir>/control.sock``, or a short path named by its hash if that is past 107 bytes)."""
    return Path(controlsocket.control_socket(str(state_dir)))


def resolve_path(base: Path, value: str) -> Path:
    """``~`` expanded; relative paths are relative to ``base`` (the config file's folder)."""
    return Path(controlsocket.resolve(str(base), value))


def config_path(arg: Path | None, environ: Mapping[str, str]) -> Path:
    """``--config``, else ``$FOSS_SUPERVISOR_CONFIG``, else the embedded default."""
    return Path(controlsocket.config_file(None if arg is None else str(arg), environ))


def locate_control_socket(arg: Path | None, environ: Mapping[str, str]) -> Path | None:
    """The control socket the config names, read without a YAML parser; None when unsure (then the caller
    loads the whole config). See :func:`~foss_supervisor.base.controlsocket.find_control_socket`."""
    found = controlsocket.find_control_socket(None if arg is None else str(arg), environ)
    return None if found is None else Path(found)
