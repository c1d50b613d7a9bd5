"""Where things live: the shipped data folders, the default config and state dir, and the control socket.

Stdlib only, so the CLI can find the daemon's control socket without importing PyYAML and the typed
config (about half of a CLI call's start-up). ``configs/`` and ``ui_templates/`` live at the top level
of the repository and are copied into the package by the wheel build (``[tool.setuptools.package-dir]``
in pyproject.toml); an editable install reads them in place.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "MAX_SOCKET_PATH",
    "control_socket_path",
    "data_dir",
    "default_config_path",
    "default_state_dir",
    "locate_control_socket",
    "resolve_path",
]

_PACKAGE = Path(__file__).resolve().parents[1]  # foss_supervisor/
DEFAULT_CONFIG_NAME = "default.yaml"
# a top-level ``state_dir:`` with a plain or single/double-quoted value and an optional comment
_STATE_DIR = re.compile(
    r"""^state_dir:[ \t]*(?:'([^']*)'|"([^"\\]*)"|([^\s#'"&*!|>\[{@`%-][^#]*?))?[ \t]*(?:\#.*)?$""", re.M
)


def data_dir(name: str) -> Path:
    """The folder ``name`` (``configs`` or ``ui_templates``) inside the wheel, else in the checkout."""
    installed = _PACKAGE / name
    return installed if installed.is_dir() else _PACKAGE.parent / name


def default_config_path() -> Path:
    """The embedded default config, found in the installed package as well as in a checkout."""
    return data_dir("configs") / DEFAULT_CONFIG_NAME


def default_state_dir() -> Path:
    """``/var/lib/foss-supervisor`` for root, else ``$XDG_STATE_HOME/foss-supervisor``."""
    if os.geteuid() == 0:
        return Path("/var/lib/foss-supervisor")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "foss-supervisor"


#: ``sun_path`` of a Unix socket address holds 108 bytes with its NUL (unix(7))
MAX_SOCKET_PATH = 107


def control_socket_path(state_dir: Path) -> Path:
    """The control socket of ``state_dir``'s daemon: ``<state_dir>/control.sock``, or a short path if that is long.

    A state dir deeper than 94 bytes (a CI workspace, a long checkout) would put the socket past the
    107 bytes a Unix socket path holds. Then the socket is ``foss-supervisor-<24 hex digits of the state
    dir's SHA-256>.sock`` in a short folder only this user can enter: ``/run/foss-supervisor`` for root,
    else ``$XDG_RUNTIME_DIR``, else ``/tmp/foss-supervisor-<uid>`` (mode 0700, refused unless it is ours).
    Daemon and CLI compute the same path from the same state dir.
    """
    sock = state_dir / "control.sock"
    if len(os.fsencode(str(sock))) <= MAX_SOCKET_PATH:
        return sock
    digest = hashlib.sha256(os.fsencode(str(state_dir))).hexdigest()[:24]
    return _private_runtime_dir() / f"foss-supervisor-{digest}.sock"


def _private_runtime_dir() -> Path:
    if os.geteuid() == 0:
        folder = Path("/run/foss-supervisor")
    elif (xdg := os.environ.get("XDG_RUNTIME_DIR")) and len(os.fsencode(xdg)) <= 48:
        return Path(xdg)
    else:
        folder = Path(f"/tmp/foss-supervisor-{os.geteuid()}")  # checked to be ours, 0700, below
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        st = folder.lstat()
    except OSError as exc:
        raise OSError(exc.errno, f"cannot make the control socket's folder {folder}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise OSError(f"{folder} is not a private folder of this user (owner, mode 0700): refusing to use it")
    return folder


def resolve_path(base: Path, value: str) -> Path:
    """``~`` expanded; relative paths are relative to ``base`` (the config file's folder)."""
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else (base / path).resolve()


def config_path(arg: Path | None, environ: Mapping[str, str]) -> Path:
    """``--config``, else ``$FOSS_SUPERVISOR_CONFIG``, else the embedded default."""
    if arg is not None:
        return arg
    env_path = environ.get("FOSS_SUPERVISOR_CONFIG")
    return Path(env_path) if env_path else default_config_path()


def locate_control_socket(arg: Path | None, environ: Mapping[str, str]) -> Path | None:
    """The control socket the config names, read without a YAML parser; None when unsure.

    Only the top-level ``state_dir:`` line matters (and ``FOSS_SUPERVISOR_STATE_DIR``, which wins). A
    value this cannot read plainly returns None, and the caller loads the whole config instead.
    """
    path = config_path(arg, environ)
    base = path.parent.resolve()
    if env_dir := environ.get("FOSS_SUPERVISOR_STATE_DIR"):
        return control_socket_path(resolve_path(base, env_dir))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    found = _STATE_DIR.findall(text)
    if len(found) > 1 or (not found and re.search(r"^state_dir\b", text, re.M)):
        return None  # twice, or written in a way this does not read: let the real loader decide
    if not found:
        return control_socket_path(default_state_dir())
    value = next((v for v in found[0] if v), "")
    if not value or value in ("null", "Null", "NULL", "~"):
        return None  # empty or null: the loader's default, or an error it should report
    return control_socket_path(resolve_path(base, value))
