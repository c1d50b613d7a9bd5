"""Variables in config values: ``${VAR}``, ``${VAR:-default}``, ``$VAR``, ``$$`` and supervisord's ``%(ENV_VAR)s``.

The forms, as process-compose (envsubst), docker compose and supervisord write them:

=====================  =====================================================================
``$VAR``, ``${VAR}``   the value; unset is an error naming file, line and key
``${VAR:-default}``    ``default`` when VAR is unset or empty (``${VAR-default}``: unset only)
``${VAR:?message}``    an error with ``message`` when VAR is unset or empty (``?``: unset only)
``$$``                 a literal ``$`` (docker compose's escape)
``%(ENV_VAR)s``        supervisord's spelling of ``${VAR}``; also ``%(here)s`` (the config's
                       folder), ``%(program_name)s``, ``%(group_name)s``, ``%(host_node_name)s``
``%%(``                a literal ``%(`` (supervisord's escape: ``%%(asctime)s`` is ``%(asctime)s``)
=====================  =====================================================================

A default may itself hold variables (``${A:-${B:-x}}``). A ``$`` before anything else stays as it is,
and so does a ``%`` that does not start a ``%(NAME)s`` form (``%t``, ``%2B``, ``100%``, ``%%s``): only
before ``(`` is a run of ``%`` read as supervisord reads it, each ``%%`` one ``%``.

Values come from the program's ``env_file`` (its values are interpolated too, from the daemon's
environment and the lines above them), then from the daemon's environment. Interpolated keys:
``command``, ``env`` values, ``env_file``, ``cwd``, ``pidfile``, ``log.file`` and the ``health`` probes. A
command written as a string is split first, like ``sh`` splits it (:mod:`foss_supervisor.config.shellwords`), and
only its unquoted and double-quoted parts are interpolated: single quotes keep text literal, and a value
never splits into more arguments. A ``shell: true`` command is given to ``/bin/sh -c`` exactly as written
(only ``{replica}`` is filled): the shell expands it, from the child's environment. The ``env_file``'s
values are folded into ``env`` (``env`` wins), so the child sees them interpolated. In ``hooks:``,
``command``, ``url``, ``headers`` values, ``ntfy`` and ``email``'s ``smtp``, ``from``, ``username`` and
``password`` are interpolated from the daemon's environment, and so are the items of the top-level
``secrets:`` list.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from foss_supervisor.base.resources import resolve_path
from foss_supervisor.config.shellwords import split_command
from foss_supervisor.errors import ConfigError

__all__ = ["expand", "interpolate_config", "read_env_file", "read_env_file_lines"]

Lookup = Callable[[str], "str | None"]

_SPECIAL = re.compile(r"[$%]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])(.*))?", re.DOTALL)
_PERCENT = re.compile(r"%\(([A-Za-z_][A-Za-z0-9_]*)\)[sd]")
_PERCENTS = re.compile(r"%+")
MAX_NESTING = 8  # ${A:-${B:-${C}}} is three
MAX_ENV_FILE_BYTES = 1024 * 1024


def expand(text: str, lookup: Lookup, names: Mapping[str, str] | None = None, *, _depth: int = 0) -> str:
    """``text`` with every variable replaced; ValueError says which one could not be.

    ``names`` holds supervisord's non-environment names (``here``, ``program_name``...).
    """
    if _depth > MAX_NESTING:
        raise ValueError(f"defaults nested more than {MAX_NESTING} deep")
    names = names or {}
    out: list[str] = []
    pos = 0
    while (m := _SPECIAL.search(text, pos)) is not None:
        i = m.start()
        out.append(text[pos:i])
        if text[i] == "%":
            run = _PERCENTS.match(text, i)
            assert run is not None
            end = run.end()
            if not text.startswith("(", end):  # %t, %2B, 100%, %%s: text, not an expansion
                out.append(run.group())
                pos = end
                continue
            width = end - i
            out.append("%" * (width // 2))  # before "(", each %% is one literal %
            pos = end
            if width % 2 and (pm := _PERCENT.match(text, end - 1)) is not None:
                out.append(_supervisord(pm.group(1), lookup, names))
                pos = pm.end()
            elif width % 2:
                out.append("%")
            continue
        nxt = text[i + 1 : i + 2]
        if nxt == "$":
            out.append("$")
            pos = i + 2
        elif nxt == "{":
            end = _closing(text, i + 2)
            out.append(_braced(text[i + 2 : end], lookup, names, _depth))
            pos = end + 1
        elif (nm := _NAME.match(text, i + 1)) is not None:
            out.append(_required(nm.group(), lookup))
            pos = nm.end()
        else:
            out.append("$")
            pos = i + 1
    out.append(text[pos:])
    return "".join(out)


def _closing(text: str, start: int) -> int:
    """Index of the ``}`` that closes the ``${`` opened just before ``start``."""
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(f"'${{' at character {start - 1} has no closing '}}'")


def _required(name: str, lookup: Lookup) -> str:
    value = lookup(name)
    if value is None:
        raise ValueError(f"variable {name} is not set (give a default with ${{{name}:-default}}, or $$ for a '$')")
    return value


def _braced(content: str, lookup: Lookup, names: Mapping[str, str], depth: int) -> str:
    m = _BRACED.fullmatch(content)
    if m is None:
        forms = "${NAME}, ${NAME:-default} or ${NAME:?message}"
        raise ValueError(f"bad substitution ${{{content}}}: expected {forms}")
    name, op, arg = m.group(1), m.group(2), m.group(3) or ""
    if op is None:
        return _required(name, lookup)
    value = lookup(name)
    missing = value is None or (op.startswith(":") and value == "")
    if not missing:
        return value or ""
    if op.endswith("-"):
        return expand(arg, lookup, names, _depth=depth + 1)
    raise ValueError(f"variable {name} is {'not set' if value is None else 'empty'}: {arg or 'it is required'}")


def _supervisord(name: str, lookup: Lookup, names: Mapping[str, str]) -> str:
    if name.startswith("ENV_"):
        value = lookup(name[4:])
        if value is None:
            raise ValueError(f"variable {name[4:]} (in %({name})s) is not set")
        return value
    if name in names:
        return names[name]
    known = ", ".join(f"%({n})s" for n in ["ENV_X", *sorted(names)])
    raise ValueError(f"unknown expansion %({name})s (write %%({name})s for the text itself); known: {known}")


# ------------------------------------------------------------------------------------------ env files


def read_env_file_lines(path: Path) -> dict[str, tuple[str, int]]:
    """``KEY=VALUE`` lines (``#`` comments, optional ``export`` and quotes) as KEY -> (value, line number).

    Raises OSError when unreadable, ValueError for a file over MAX_ENV_FILE_BYTES, not UTF-8, or with a
    malformed line (naming the file and line).
    """
    with path.open("rb") as f:
        data = f.read(MAX_ENV_FILE_BYTES + 1)  # never more: env_file may name any file, /dev/zero too
    if len(data) > MAX_ENV_FILE_BYTES:
        raise ValueError(f"{path}: larger than {MAX_ENV_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    out: dict[str, tuple[str, int]] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "a").isalnum():
            raise ValueError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key] = (value, number)
    return out


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines as a mapping, as docker and systemd read them (values taken literally)."""
    return {key: value for key, (value, _) in read_env_file_lines(path).items()}


# ------------------------------------------------------------------------------------------ the config


class _Program:
    """Interpolates one program's (or hook's) mapping in place, noting errors with their key and line."""

    def __init__(self, path: str, name: str, data: dict[str, Any], ctx: _Context) -> None:
        self.path = path
        self.data = data
        self.ctx = ctx
        self.names = {**ctx.names, "program_name": name, "group_name": name}
        self.file_vars: dict[str, str] = {}

    def lookup(self, name: str) -> str | None:
        return self.file_vars.get(name, self.ctx.environ.get(name))

    def value(self, key: str, text: str) -> str:
        try:
            return expand(text, self.lookup, self.names)
        except ValueError as exc:
            self.ctx.error(key, str(exc))
            return text

    def item(self, holder: dict[str, Any] | list[Any], index: Any, key: str) -> None:
        if isinstance(holder[index], str):
            holder[index] = self.value(key, holder[index])

    def argv(self, holder: dict[str, Any], name: str, key: str) -> None:
        """A list's items one by one; a string split like ``sh`` first, its quoted-literal parts left alone."""
        value = holder.get(name)
        if isinstance(value, list):
            for i in range(len(value)):
                self.item(value, i, f"{key}[{i}]")
        elif isinstance(value, str):
            try:
                split_command(value)
            except ValueError:
                return  # an unclosed quote: the argv gate says so
            try:
                holder[name] = split_command(value, lambda part: expand(part, self.lookup, self.names))
            except ValueError as exc:
                self.ctx.error(key, str(exc))

    def run(self) -> None:
        p, d = self.path, self.data
        if "env_file" in d:
            self.item(d, "env_file", f"{p}.env_file")
            self.env_file()
        if d.get("shell") is not True:  # a shell command is the shell's to expand
            self.argv(d, "command", f"{p}.command")
        env = d.get("env")
        if isinstance(env, dict):
            for k in env:
                self.item(env, k, f"{p}.env.{k}")
        for key in ("cwd", "pidfile"):
            if key in d:
                self.item(d, key, f"{p}.{key}")
        if isinstance(log := d.get("log"), dict) and "file" in log:
            self.item(log, "file", f"{p}.log.file")
        if isinstance(health := d.get("health"), dict):
            for kind in ("http", "tcp"):
                if kind in health:
                    self.item(health, kind, f"{p}.health.{kind}")
            self.argv(health, "exec", f"{p}.health.exec")
        if self.file_vars and (env is None or isinstance(env, dict)):
            d["env"] = {**self.file_vars, **(env or {})}  # interpolated already: not interpolated again

    def hook(self) -> None:
        p, d = self.path, self.data
        self.argv(d, "command", f"{p}.command")
        if "url" in d:
            self.item(d, "url", f"{p}.url")
        if isinstance(headers := d.get("headers"), dict):
            for k in headers:
                self.item(headers, k, f"{p}.headers.{k}")
        if "ntfy" in d:
            self.item(d, "ntfy", f"{p}.ntfy")
        if isinstance(email := d.get("email"), dict):
            for k in ("smtp", "from", "username", "password"):
                if k in email:
                    self.item(email, k, f"{p}.email.{k}")

    def env_file(self) -> None:
        """Read the env_file now and interpolate its values (``run`` folds them under ``env``)."""
        raw = self.data["env_file"]
        if not isinstance(raw, str) or not raw or "\x00" in raw:
            return  # the program parser says what is wrong with it
        path = resolve_path(self.ctx.base, raw)
        try:
            entries = read_env_file_lines(path)
        except (OSError, ValueError) as exc:
            reason = f"cannot read {path}: {exc.strerror}" if isinstance(exc, OSError) else str(exc)
            self.ctx.error(f"{self.path}.env_file", reason)
            return
        for key, (text, number) in entries.items():
            try:
                self.file_vars[key] = expand(text, self.lookup, self.names)
            except ValueError as exc:
                self.ctx.errors.append(ConfigError(str(path), key, str(exc), number))
                self.file_vars[key] = text


class _Context:
    def __init__(
        self, file: str, lines: Mapping[str, int], base: Path, environ: Mapping[str, str], errors: list[ConfigError]
    ) -> None:
        self.file, self.lines, self.base, self.environ, self.errors = file, lines, base, environ, errors
        self.names = {"here": str(base), "host_node_name": socket.gethostname()}

    def error(self, key: str, reason: str) -> None:
        self.errors.append(ConfigError(self.file, key, reason, self.lines.get(key)))


def interpolate_config(
    data: dict[str, Any],
    lines: Mapping[str, int],
    file: str,
    base: Path,
    environ: Mapping[str, str],
    errors: list[ConfigError],
) -> None:
    """Replace variables in every program of the plain config ``data``, in place.

    ``base`` is the config's folder (relative ``env_file`` paths and ``%(here)s``); each value that cannot
    be interpolated is left as it was and a ConfigError naming file, line and key is appended to ``errors``.
    """
    ctx = _Context(file, lines, base, environ, errors)
    programs = data.get("programs")
    for name, program in programs.items() if isinstance(programs, dict) else ():
        if isinstance(program, dict):
            _Program(f"programs.{name}", str(name), program, ctx).run()
    hooks = data.get("hooks")
    for name, hook in hooks.items() if isinstance(hooks, dict) else ():
        if isinstance(hook, dict):
            _Program(f"hooks.{name}", str(name), hook, ctx).hook()
    if isinstance(data.get("secrets"), list):  # secrets: ["${API_TOKEN}"] names a value without writing it
        _Program("secrets", "", data, ctx).argv(data, "secrets", "secrets")
