"""Where a daemon's control socket is, as plain strings: ``os.path`` only, no pathlib, no YAML parser.

The CLI's ``status`` runs on every poll of a monitoring script: it finds the socket with this module
alone (pathlib, typing and hashlib are each a few milliseconds of a ~20 ms call). The ``Path`` API
over the same rules is :mod:`foss_supervisor.base.resources`.
"""

from __future__ import annotations

import os
import re
import stat

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads the name)
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "MAX_SOCKET_PATH",
    "config_file",
    "control_socket",
    "default_state_dir",
    "find_control_socket",
    "package_data",
    "pure",
    "resolve",
    "runtime_dir",
]

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))  # foss_supervisor/
DEFAULT_CONFIG_NAME = "default.yaml"
#: ``sun_path`` of a Unix socket address holds 108 bytes with its NUL (unix(7))
MAX_SOCKET_PATH = 107
# a top-level ``state_dir:`` with a plain or single/double-quoted value and an optional comment
_STATE_DIR = re.compile(
    r"""^state_dir:[ \t]*(?:'([^']*)'|"([^"\\]*)"|([^\s#'"&*!|>\[{@`%-][^#]*?))?[ \t]*(?:\#.*)?$""", re.M
)


def pure(path: str) -> str:
    """``path`` spelled as ``str(pathlib.PurePosixPath(path))`` spells it: repeated and trailing slashes and
    ``.`` parts dropped, ``..`` kept, a leading ``//`` kept (POSIX leaves it to the system), ``""`` -> ``"."``.

    The daemon and the CLI must compute the same socket path from the same state dir, byte for byte: a
    long one's name is a hash of it.
    """
    root = "//" if path.startswith("//") and not path.startswith("///") else "/" if path.startswith("/") else ""
    return root + "/".join(part for part in path.split("/") if part and part != ".") or "."


def package_data(name: str) -> str:
    """The folder ``name`` (``configs`` or ``ui_templates``) inside the wheel, else in the checkout."""
    installed = os.path.join(PACKAGE_DIR, name)
    return installed if os.path.isdir(installed) else os.path.join(os.path.dirname(PACKAGE_DIR), name)


def default_state_dir() -> str:
    """``/var/lib/foss-supervisor`` for root, else ``$XDG_STATE_HOME/foss-supervisor``."""
    if os.geteuid() == 0:
        return "/var/lib/foss-supervisor"
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "foss-supervisor")


def control_socket(state_dir: str) -> str:
    """The control socket of ``state_dir``'s daemon: ``<state_dir>/control.sock``, or a short path if that is long.

    A state dir deeper than 94 bytes (a CI workspace, a long checkout) would put the socket past the
    107 bytes a Unix socket path holds. Then the socket is ``foss-supervisor-<24 hex digits of the state
    dir's SHA-256>.sock`` in a short folder only this user can enter: ``/run/foss-supervisor`` for root,
    else ``$XDG_RUNTIME_DIR``, else ``/tmp/foss-supervisor-<uid>`` (mode 0700, refused unless it is ours).
    Daemon and CLI compute the same path from the same state dir. Raises OSError when that folder cannot
    be made or is not private.
    """
    state_dir = pure(state_dir)
    sock = pure(os.path.join(state_dir, "control.sock"))
    if len(os.fsencode(sock)) <= MAX_SOCKET_PATH:
        return sock
    import hashlib  # only for a long state dir: libcrypto costs a few ms and MB

    digest = hashlib.sha256(os.fsencode(state_dir)).hexdigest()[:24]
    return os.path.join(_private_runtime_dir(), f"foss-supervisor-{digest}.sock")


def runtime_dir() -> str:
    """A short folder only this user can enter, made if needed (see :func:`control_socket`); OSError if not."""
    return _private_runtime_dir()


def _private_runtime_dir() -> str:
    if os.geteuid() == 0:
        folder = "/run/foss-supervisor"
    elif (xdg := os.environ.get("XDG_RUNTIME_DIR")) and len(os.fsencode(xdg)) <= 48:
        return xdg
    else:
        folder = f"/tmp/foss-supervisor-{os.geteuid()}"  # checked to be ours, 0700, below
    try:
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            if not os.path.isdir(folder):
                raise
        st = os.lstat(folder)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot make the control socket's folder {folder}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise OSError(f"{folder} is not a private folder of this user (owner, mode 0700): refusing to use it")
    return folder


def resolve(base: str, value: str) -> str:
    """``~`` expanded; a relative path is relative to ``base`` (the config file's folder), then made real."""
    path = pure(os.path.expanduser(value))
    return path if os.path.isabs(path) else pure(os.path.realpath(os.path.join(base, path)))


def config_file(arg: str | None, environ: Mapping[str, str]) -> str:
    """``--config``, else ``$FOSS_SUPERVISOR_CONFIG``, else the embedded default."""
    if arg is not None:
        return pure(arg)
    env_path = environ.get("FOSS_SUPERVISOR_CONFIG")
    return pure(env_path) if env_path else os.path.join(package_data("configs"), DEFAULT_CONFIG_NAME)


def find_control_socket(arg: str | None, environ: Mapping[str, str]) -> str | None:
    """The control socket the config names, read without a YAML parser; None when unsure.

    Only the top-level ``state_dir:`` line matters (and ``FOSS_SUPERVISOR_STATE_DIR``, which wins). A
    value this cannot read plainly returns None, and the caller loads the whole config instead.
    """
    path = config_file(arg, environ)
    base = os.path.realpath(os.path.dirname(path))
    if env_dir := environ.get("FOSS_SUPERVISOR_STATE_DIR"):
        return control_socket(resolve(base, env_dir))
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError):
        return None
    found = _STATE_DIR.findall(text)
    if len(found) > 1 or (not found and re.search(r"^state_dir\b", text, re.M)):
        return None  # twice, or written in a way this does not read: let the real loader decide
    if not found:
        return control_socket(default_state_dir())
    value = next((v for v in found[0] if v), "")
    if not value or value in ("null", "Null", "NULL", "~"):
        return None  # empty or null: the loader's default, or an error it should report
    return control_socket(resolve(base, value))
