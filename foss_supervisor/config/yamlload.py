"""YAML from an untrusted file, bounded, into plain data plus the line of every dotted key.

A YAML file is small but its aliases are not: nine lines of nested aliases (a "billion laughs")
stand for 10^9 nodes, and an alias inside its own anchor stands for an infinite one. Before
anything is built, one streaming pass over the parser's events measures what the document *expands*
to (each alias costs the size of its anchored node, computed once) and refuses it, with the line,
past :data:`MAX_NODES` nodes, :data:`MAX_CHARS` characters of scalars or :data:`MAX_DEPTH` levels of
nesting, or at the first alias of an anchor that is still open. Only then is the node graph built
and walked. The pass costs linear time in the file's size, whatever the file says.

Merge keys (``<<: *defaults``) are applied the way YAML 1.1 defines them. Keys are taken as written
(``on:``, ``yes:``, ``8080:`` are the names ``on``, ``yes``, ``8080``, not a boolean or a number).

Only plain data comes in: a tag outside the core schema (``!!python/object/apply:...``, ``!!binary``,
``!!timestamp``, ``!!set``, ``!!omap``, ``!custom``...) is refused with its line and key, wherever it is
(a key, a value, a list), before anything is built; an unquoted date (``2024-01-31``) is the text it reads.

Errors are :class:`~foss_supervisor.errors.ConfigError` naming the file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from foss_supervisor.config.gates.base import MAX_INT_DIGITS, YamlNumber
from foss_supervisor.errors import ConfigError

__all__ = ["CORE_TAGS", "MAX_CHARS", "MAX_DEPTH", "MAX_FILE_BYTES", "MAX_NODES", "load_yaml"]

MAX_FILE_BYTES = 1024 * 1024  # a config is a few kilobytes; a megabyte is generous
MAX_NODES = 200_000  # nodes after expanding aliases (a 2,000-program config has ~60,000)
MAX_CHARS = 16 * 1024 * 1024  # characters of scalars after expanding aliases
MAX_DEPTH = 64  # collections inside collections (a config needs five)
#: the tags a file may write out: the core schema's (``!!str``, ``!!int``...), nothing that builds objects
CORE_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq"))


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml when present (in PyYAML's wheels: the CLI parses the config on every call); dates stay text."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


_LOADER = _Loader


@dataclass(slots=True)
class _Size:
    """What one node expands to."""

    nodes: int = 0
    chars: int = 0


@dataclass(slots=True)
class _Frame:
    """One open collection of the streaming pass: its anchor, its size so far, where its children are."""

    anchor: str | None
    size: _Size
    is_map: bool
    expecting_key: bool = True
    key: str = ""
    index: int = 0


@dataclass(slots=True)
class _Measure:
    """The running totals of the streaming pass, and the dotted key of the node being read."""

    file: str
    total: _Size = field(default_factory=_Size)
    anchors: dict[str, _Size] = field(default_factory=dict)
    open: list[_Frame] = field(default_factory=list)

    def where(self) -> str:
        path = ""
        for frame in self.open:
            if frame.is_map and frame.expecting_key:
                break
            path = (f"{path}.{frame.key}" if path else frame.key) if frame.is_map else f"{path}[{frame.index}]"
        return path

    def refuse(self, reason: str, line: int) -> ConfigError:
        return ConfigError(self.file, self.where(), reason, line)

    def add(self, size: _Size, line: int) -> None:
        for frame in self.open:
            frame.size.nodes += size.nodes
            frame.size.chars += size.chars
        self.total.nodes += size.nodes
        self.total.chars += size.chars
        if self.total.nodes > MAX_NODES:
            raise self.refuse(f"expands to more than {MAX_NODES} nodes (aliases of aliases?)", line)
        if self.total.chars > MAX_CHARS:
            raise self.refuse(f"expands to more than {MAX_CHARS} characters of text", line)

    def done(self, key: str) -> None:
        """A node is complete: move its parent on to the next key, value or item."""
        if not self.open:
            return
        parent = self.open[-1]
        if not parent.is_map:
            parent.index += 1
        elif parent.expecting_key:
            parent.key, parent.expecting_key = key, False
        else:
            parent.expecting_key = True

    def event(self, ev: yaml.Event) -> None:
        line = ev.start_mark.line + 1 if ev.start_mark is not None else 0
        tag = getattr(ev, "tag", None)
        if tag is not None and tag not in CORE_TAGS and not (tag == "!" and isinstance(ev, yaml.ScalarEvent)):
            shown = tag.replace("tag:yaml.org,2002:", "!!")
            raise self.refuse(
                f"YAML tag {shown} is not allowed: only plain values (text, numbers, true/false, null, lists,"
                " mappings) are read, nothing a tag would build",
                line,
            )
        if isinstance(ev, yaml.AliasEvent):
            if any(frame.anchor == ev.anchor for frame in self.open):
                raise self.refuse(f"alias *{ev.anchor} refers to a node that contains it", line)
            size = self.anchors.get(ev.anchor or "")
            if size is None:
                raise self.refuse(f"alias *{ev.anchor} has no anchor &{ev.anchor} before it", line)
            self.add(_Size(size.nodes, size.chars), line)
            self.done("?")
        elif isinstance(ev, yaml.ScalarEvent):
            self.add(_Size(1, len(ev.value)), line)
            if ev.anchor:
                self.anchors[ev.anchor] = _Size(1, len(ev.value))
            self.done(ev.value)
        elif isinstance(ev, yaml.CollectionStartEvent):
            if len(self.open) >= MAX_DEPTH:
                raise self.refuse(f"nested deeper than {MAX_DEPTH} levels", line)
            self.add(_Size(1, 0), line)
            self.open.append(_Frame(ev.anchor, _Size(1, 0), isinstance(ev, yaml.MappingStartEvent)))
        elif isinstance(ev, yaml.CollectionEndEvent):
            frame = self.open.pop()
            if frame.anchor:
                self.anchors[frame.anchor] = frame.size
            self.done("?")


def _yaml_error(exc: yaml.YAMLError, file: str, text: str = "") -> ConfigError:
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow: it has a position, no mark
        char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        row = text.count("\n", 0, exc.position) + 1
        return ConfigError(file, "", f"invalid YAML: character #x{char:04x} is not allowed ({exc.reason})", row)
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    reason = getattr(exc, "problem", None) or str(exc)
    return ConfigError(file, "", f"invalid YAML: {reason}", line)


def load_yaml(text: str, file: str) -> tuple[Any, dict[str, int]]:
    """Plain data (dicts with string keys, lists, scalars) and a map from dotted key to 1-based line.

    Raises ConfigError for a file over :data:`MAX_FILE_BYTES`, invalid YAML, non-string or duplicate
    keys, and anything past the bounds above.
    """
    if len(text) > MAX_FILE_BYTES:
        raise ConfigError(file, "", f"larger than {MAX_FILE_BYTES} bytes")
    measure = _Measure(file)
    try:
        for ev in yaml.parse(text, Loader=_LOADER):
            measure.event(ev)
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, file, text) from None
    lines: dict[str, int] = {}
    if node is None:
        return {}, lines
    try:
        return _Builder(file, lines).build(node, ""), lines
    except yaml.YAMLError as exc:  # a scalar no safe constructor takes (`=`, an unknown !tag)
        raise _yaml_error(exc, file, text) from None


_NUMBER_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})
# what YAML 1.1 and 1.2 read alike: an integer without leading zeros, a decimal fraction with a dot
_DECIMAL = re.compile(r"[-+]?(?:0|[1-9][0-9]*)|[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?", re.ASCII)

# what YAML 1.2 reads as a number and YAML 1.1 as text: 0o17, 1e3
_YAML12_NUMBER = re.compile(r"0o[0-7]+|[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)", re.ASCII)


class _Builder:
    """Walks a composed node graph (known to be bounded and acyclic) into plain data."""

    def __init__(self, file: str, lines: dict[str, int]) -> None:
        self.file, self.lines = file, lines
        self.scalars = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, path: str) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
        if isinstance(node, yaml.ScalarNode) and node.tag in _NUMBER_TAGS:
            return self._number(node, path)
        if isinstance(node, yaml.ScalarNode) and node.style in (None, "") and _YAML12_NUMBER.fullmatch(node.value):
            reading = int(node.value[2:], 8) if node.value.startswith("0o") else float(node.value)
            return YamlNumber(node.value, reading)  # text to YAML 1.1, a number to YAML 1.2
        return self.scalars.construct_object(node)  # the safe rules: ints, floats, bools, null, strings

    def _number(self, node: yaml.ScalarNode, path: str) -> Any:
        """A number in plain decimal as a number; any other form YAML 1.1 reads as one as a :class:`YamlNumber`
        (the text as written, for each key's gate to decide); an explicit ``!!int`` too long is refused here."""
        text, plain = node.value, node.style in (None, "")  # libyaml writes plain as ""
        if plain and not _DECIMAL.fullmatch(text):
            return YamlNumber(text, self._reading(node))
        if node.tag.endswith(":int") and len(text.lstrip("+-")) > MAX_INT_DIGITS:
            if plain:
                return YamlNumber(text, None)
            line = node.start_mark.line + 1
            raise ConfigError(self.file, path, f"must be an integer of at most {MAX_INT_DIGITS} digits", line)
        return self.scalars.construct_object(node)

    def _reading(self, node: yaml.ScalarNode) -> float | int | None:
        try:
            value: float | int = self.scalars.construct_object(node)
        except ValueError:  # past Python's int max str digits
            return None
        return value

    def _mapping(self, node: yaml.MappingNode, path: str) -> dict[str, Any]:
        try:
            pairs = _merged(node)
        except yaml.YAMLError as exc:
            raise _yaml_error(exc, self.file) from None
        out: dict[str, Any] = {}
        explicit: set[str] = set()
        for key_node, value_node, merged in pairs:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(self.file, path, "keys must be plain names, not lists or mappings", line)
            key = key_node.value  # as written: YAML 1.1 would make `on:` True and `1:` an int; a name is text
            child = f"{path}.{key}" if path else key
            if key in explicit and not merged:
                raise ConfigError(self.file, child, "duplicate key", line)
            if merged and key in out:
                continue  # a key written out in the mapping wins over a merged one; the first merge wins
            if not merged:
                explicit.add(key)
            self.lines[child] = line
            out[key] = self.build(value_node, child)
        return out


def _merged(node: yaml.MappingNode) -> list[tuple[yaml.Node, yaml.Node, bool]]:
    """The mapping's pairs, explicit ones first, then those of ``<<`` merges (each flagged ``True``)."""
    own: list[tuple[yaml.Node, yaml.Node, bool]] = []
    merged: list[tuple[yaml.Node, yaml.Node, bool]] = []
    for key_node, value_node in node.value:
        if key_node.tag != "tag:yaml.org,2002:merge":
            own.append((key_node, value_node, False))
            continue
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                raise yaml.constructor.ConstructorError(
                    None, None, "a merge key (<<) takes a mapping or a list of mappings", source.start_mark
                )
            merged.extend((k, v, True) for k, v, _ in _merged(source))
    return own + merged
