"""Reading one YAML mapping into typed values, with every refusal located (file, line, dotted key).

:class:`Reader` walks one section of :mod:`foss_supervisor.config.schema`: the keys it knows, and the gate
(:mod:`foss_supervisor.config.gates`) each value passes, come from the schema, so no value is read without its
gate. A gate's :class:`~foss_supervisor.config.gates.GateError` becomes a :class:`ConfigError` naming the file,
the line and the dotted key (down to ``command[2]`` or ``env.KEY`` when the gate says where).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from foss_supervisor.config.gates import Gate, GateError
from foss_supervisor.config.schema import Each, Section
from foss_supervisor.errors import ConfigError

__all__ = ["MAX_PROGRAMS", "Reader"]

T = TypeVar("T")
MAX_PROGRAMS = 2000  # replicas counted; each is a process with three pipes and a controller task


class Reader:
    """Reads the keys of one mapping through its schema section, refusing unknown keys and bad values.

    With an ``errors`` list, unknown keys and wrong values are noted there and reading goes on (a
    wrong value reads as its default), so one pass finds every error of a file; :meth:`fail` still
    raises, for what the rest of a section cannot be read without.
    """

    def __init__(
        self,
        data: Any,
        path: str,
        file: str,
        lines: dict[str, int],
        errors: list[ConfigError] | None,
        schema: Section | Each,
    ) -> None:
        self.file, self.path, self.lines, self.errors, self.schema = file, path, lines, errors, schema
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.note("", f"must be a mapping, got {type(data).__name__}")
            data = {}
        self.data: dict[str, Any] = data

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, reason: str, at: str = "") -> ConfigError:
        key = self.key(name) if name else self.path
        line = self.lines.get(key + at) or self.lines.get(key) or self.lines.get(self.path)
        return ConfigError(self.file, key + at, reason, line)

    def fail(self, name: str, reason: str) -> None:
        raise self.error(name, reason)

    def note(self, name: str, reason: str, at: str = "") -> None:
        """Record an error and go on reading (raise it when no list collects errors)."""
        if self.errors is None:
            raise self.error(name, reason, at)
        self.errors.append(self.error(name, reason, at))

    def only(self) -> None:
        """Refuse every key the schema section does not name."""
        assert not isinstance(self.schema, Each)
        for name in self.data:
            if name not in self.schema:
                self.note(name, f"unknown key; known keys: {', '.join(sorted(self.schema))}")

    def gate(self, name: str) -> Gate[Any]:
        gate = None if isinstance(self.schema, Each) else self.schema.get(name)
        if not isinstance(gate, Gate):
            raise KeyError(f"{self.key(name)}: the schema has no gate for this key")  # our bug, not the file's
        return gate

    def has(self, name: str) -> bool:
        """Whether ``name`` is given: written with a value (``key:`` or ``key: null`` is not given, as
        :meth:`get` reads it; so a required or one-of key written empty is missing, not present)."""
        return self.data.get(name) is not None

    def get(self, name: str, default: T, *, gate: Gate[Any] | None = None) -> T:
        """The value of ``name`` through its schema gate; ``default`` when absent, null or refused (noted).

        ``gate`` replaces the schema's where another key changes the kind (``command`` with ``shell: true``).
        """
        gate = gate or self.gate(name)
        if name not in self.data or self.data[name] is None:
            return default
        try:
            value: T = gate(self.data[name])
        except GateError as exc:
            for each in exc.all:
                self.note(name, each.reason, each.at)
            return default
        return value

    def sub(self, name: str) -> Reader:
        """The section ``name`` (a mapping or an :class:`Each` in the schema)."""
        schema = None if isinstance(self.schema, Each) else self.schema.get(name)
        if not isinstance(schema, Mapping | Each):
            raise KeyError(f"{self.key(name)}: the schema has no section here")
        return Reader(self.data.get(name), self.key(name), self.file, self.lines, self.errors, schema)

    def _names(self) -> Iterator[tuple[str, Each]]:
        each = self.schema
        assert isinstance(each, Each)
        for name in list(self.data):
            try:
                each.key(name)
            except GateError as exc:
                self.note(str(name), exc.reason)
                continue
            yield str(name), each

    def each(self) -> Iterator[tuple[str, Reader]]:
        """The named sections of an :class:`Each`: (name, its reader); a bad name is noted and skipped."""
        for name, each in self._names():
            assert not isinstance(each.section, Gate)
            yield name, Reader(self.data[name], self.key(name), self.file, self.lines, self.errors, each.section)

    def each_value(self) -> Iterator[tuple[str, Any]]:
        """The named values of an :class:`Each` of a gate: (name, gated value); refusals are noted and skipped."""
        for name, each in self._names():
            assert isinstance(each.section, Gate)
            try:
                yield name, each.section(self.data[name])
            except GateError as exc:
                for one in exc.all:
                    self.note(name, one.reason, one.at)
