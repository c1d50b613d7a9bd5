"""The one redaction: whatever leaves the daemon passes a :class:`Redactor`; producers never redact.

Where it is applied (the egress points):

- every command reply and error message: :func:`foss_supervisor.commands.registry.answer`, which the control
  socket server and the web's ``Core.call``/``Core.read`` both use, so it holds with the web in the
  daemon's process or in one of its own (there it reads replies from the control socket);
- every event that leaves: the web's ``Core.on_event`` (SSE, pages) and hook payloads
  (``HookDispatcher.offer``, the body a receiver gets and ``FOSS_EVENT_JSON``);
- every log line: :meth:`Redactor.log_processor`, in the structlog chain every handler gets (the log
  file, stderr, journald), after exceptions are formatted, so a traceback is redacted too;
- every line of a log file that is read back (a program's output, the daemon's log): :meth:`Redactor.lines`,
  the one function the ``logs`` and ``log_read`` commands pass their lines through, so the CLI (``logs``,
  ``logs -f``, ``top``), the API, the dashboard's viewer and its text download (read through ``log_read``,
  a bounded chunk at a time) all get the same text; the CLI reading files with the daemon down uses it too.

What is replaced with ``***``:

1. the value under a secret-looking key (:func:`looks_secret`: ``DB_PASSWORD``, ``apiKey``, ``APP_KEY``,
   ``SMTP_CREDS``, ``X-Auth-Token``, ``Authorization``, ``secrets``...) at any depth of a reply, and every
   value of a ``headers`` mapping (a hook's headers, whatever their names); everything under such a key;
2. every shape of the table in :mod:`~foss_supervisor.base.secretshapes`, in any string: URL userinfo,
   ``Authorization:`` values of any scheme, ``Bearer``/``Basic`` credentials, passwords on command lines
   (``mysql -p``, ``curl -u user:pw``, Oracle ``user/pw@db``), ``NAME=value`` with a secret-looking name
   (query strings too), PEM private key blocks, tokens by their documented prefixes, webhook URLs;
   in a list of strings (a command line), the item after a ``--secret-flag``, and what the shapes find in the
   line the items make (``["mysql", "-p", "pw"]``) inside one item;
3. literal values: those the operator lists under the config's top-level ``secrets:``, and every
   value rules 1-2 replace in the config (:meth:`Redactor.learn`), so the same value elsewhere
   (a log line, a program's output, a path) is replaced too. Values shorter than
   :data:`MIN_LITERAL` characters are only replaced where a rule finds them (replacing every ``42``
   of every reply would destroy the data).

Not detected: a bare high-entropy string with no name and no known prefix (scanners' entropy rules
flag hashes and ids as often as secrets); list such values under ``secrets:``. Strings with no trigger
of a shape pass after one regex search; the literals are found in one pass however many there are
(Aho-Corasick, ahocorasick-rs), and replies are cached by string.
"""

from __future__ import annotations

import bisect
import dataclasses
import enum
import itertools
import json
import re
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus, urlsplit

from ahocorasick_rs import AhoCorasick, MatchKind

from foss_supervisor.base.secretforms import TOOL
from foss_supervisor.base.secretshapes import REASON_WORDS, REDACTED, TRIGGER, looks_secret, replaced, spans

__all__ = ["MAX_LITERAL", "MIN_LITERAL", "REDACTED", "Redactor", "looks_secret"]

MIN_LITERAL = 4  # characters a value needs to be replaced wherever it appears
MAX_LITERAL = 4096  # longer values (a whole key file) are left to the rules
_CACHE_MAX = 8192  # distinct strings remembered (forgotten all at once beyond)
_CACHE_LEN = 2048  # longer strings are not remembered

T = TypeVar("T")

_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")  # PEM, OpenPGP armor
_PEM_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
_FLAG = re.compile(r"-{1,2}[A-Za-z_][\w.-]*")
_SPACE = re.compile(r"\s")


def _a_program(first: str) -> bool:
    """Whether a list's first item may name a program (no space in its last path part: ``/opt/My Tools/mysql``)."""
    return not _SPACE.search(first.rsplit("/", 1)[-1])


_BLOCK_INDICATOR = re.compile(r"[|>][+-]?[0-9]?")
_MAPPING_KEY = re.compile(r"[ \t]*[\w.\"'-]+[ \t]*:(?:[ \t]|$)")  # a nested mapping's key: its own line's rules

_ALL_SECRET = frozenset({"headers"})  # a hook's headers: every value, whatever its name (X-Signature, Cookie...)
#: a hook's destination URLs: what follows the host is a credential (an ntfy topic, a webhook's path token, a
#: query ``key=``), learned whole as a literal; the scheme and host stay readable
_DESTINATIONS = frozenset({"url", "ntfy"})
_MIN_DESTINATION_SECRET = 6  # shorter (``/hook``, ``/``) is a route, not a secret, and would blank common text


def _written(value: str) -> set[str]:
    """``value`` and the ways a log or a reply writes it escaped: in a JSON string (``\\"``, ``\\\\``,
    ``\\u00e9``), a Python repr, a URL (``%40``, ``+``). A password with a quote or an ``@`` printed by a JSON
    logger or in a URL is still the literal."""
    forms = {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
        quote(value, safe=""),
        quote_plus(value, safe=""),
    }
    return {form for form in forms if len(form) >= MIN_LITERAL}


def _dangling(line: str) -> int:
    """The indent of ``line`` when it ends with a secret-looking key and no value (``  password:``,
    ``token: |``, ``"api_key": >-``): the value is on the lines below, more indented; else -1."""
    words = line.rsplit(None, 2)[-2:]
    if words and _BLOCK_INDICATOR.fullmatch(words[-1]):
        words = words[:-1]
    if not words or not words[-1].endswith(":"):
        return -1
    name = words[-1][:-1].strip("\"'")
    return len(line) - len(line.lstrip()) if name and looks_secret(name.lstrip("-")) else -1


def _destination_secret(url: str) -> str:
    """What follows scheme://host[:port] in ``url`` ("" when it is too short to be a secret)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    rest = url.split(parts.netloc, 1)[1] if parts.netloc else ""
    return rest if len(rest.strip("/")) >= _MIN_DESTINATION_SECRET else ""


class _Sink:
    """Where :meth:`Redactor.learn` collects the values the rules replace; ``seen``: each string already
    read, with its redaction (a config repeats its strings: an interpreter's path in every command)."""

    def __init__(self) -> None:
        self.values: set[str] = set()
        self.seen: dict[str, str] = {}

    def add(self, value: str) -> None:
        value = value.strip().strip("\"'")
        # a word a config error's reason starts with is never learned: replaced everywhere, it would mangle
        # every reason after (``replicas: *** be an integer``); as a secret it hides nothing anyway
        if MIN_LITERAL <= len(value) <= MAX_LITERAL and value.strip("*") and value.lower() not in REASON_WORDS:
            self.values.add(value)
        if "\n" in value:  # log text is read back line by line: each line of a multi-line secret goes too
            for line in value.splitlines():
                if line.strip() != value:
                    self.add(line)


def _literals_out(text: str, matcher: AhoCorasick) -> str:
    """``text`` with every literal ``matcher`` finds replaced: leftmost first, the longest at a position,
    then on after it (as a regex alternation of the literals, longest first, would)."""
    found = matcher.find_matches_as_indexes(text)
    if not found:
        return text
    parts: list[str] = []
    pos = 0
    for _, start, end in found:
        parts += (text[pos:start], REDACTED)
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


def _redacted(text: str, sink: _Sink | None, matcher: AhoCorasick | None) -> str:
    """``text`` with the shapes of :mod:`~foss_supervisor.base.secretshapes` (rule 1 needs the key) and the
    literals ``matcher`` finds replaced, each found in the text as given: a shape's span that cuts a literal
    (a passphrase ``password=correct horse battery``: the rule reads one word) never leaves the rest of it."""
    shaped = spans(text, None if sink is None else sink.add) if TRIGGER.search(text) else []
    if matcher is None:
        return replaced(text, shaped)
    if not shaped:
        return _literals_out(text, matcher)
    return replaced(text, shaped + [(start, end) for _, start, end in matcher.find_matches_as_indexes(text)])


@dataclasses.dataclass(frozen=True, slots=True)
class _Known:
    """What a redactor has learned, swapped whole: the literals, their matcher, and the redactions made with
    them (string -> its redaction, None when unchanged), so a redaction made with an old set is never
    remembered as one made with the new."""

    literals: tuple[str, ...] = ()
    matcher: AhoCorasick | None = None
    cache: dict[str, str | None] = dataclasses.field(default_factory=dict)


class Redactor:
    """Redacts text and JSON-able data by the rules of the module docstring, and the literals it learned.

    One per daemon. :meth:`learn` replaces the literals (at start and after each reload); the swap is
    one attribute assignment, so readers on other threads (a reply redacted off the loop, the web's) see
    the old set or the new one, string by string.
    """

    def __init__(self) -> None:
        self._known = _Known()

    # ------------------------------------------------------------------------------------ literals

    def learn(self, config: object) -> int:
        """Add as literals every value the rules replace in ``config`` (a Config, or any data).

        The config's ``secrets:`` list is a secret-looking key, so its values are taken whole; so are
        ``env`` values under secret-looking names, hook headers, URL passwords, ``--token x`` in a
        command. Literals are never forgotten (a reload may drop a secret that old log lines still
        hold). Returns how many literals are known now.
        """
        sink = _Sink()
        sink.values.update(self._known.literals)
        self._walk(config, False, sink)
        ordered = tuple(sorted(sink.values, key=lambda v: (-len(v), v)))
        written = sorted({w for v in ordered for w in _written(v)}, key=lambda v: (-len(v), v))
        # leftmost-longest: of two literals at one place the longer goes whole, no partial leftovers
        matcher = AhoCorasick(written, matchkind=MatchKind.LeftmostLongest) if written else None
        self._known = _Known(ordered, matcher)
        return len(ordered)

    @property
    def literals(self) -> int:
        """How many literal values are redacted wherever they appear."""
        return len(self._known.literals)

    # ------------------------------------------------------------------------------------ text and data

    def text(self, text: str) -> str:
        """``text`` with every secret the rules or the literals find replaced by ``***``."""
        return self._text(text, None)

    def data(self, value: T) -> T:
        """``value`` (dicts, lists, tuples, strings, numbers: a reply, an event payload) redacted.

        Parts with nothing to redact are returned as they are (the same objects): a shared reply is
        not copied; a changed part is a new container, so the input is never modified.
        """
        result: T = self._walk(value, False, None)
        return result

    def event(self, event: T) -> T:
        """A frozen event dataclass with its redacted fields replaced (the same object if none changed)."""
        if not dataclasses.is_dataclass(event) or isinstance(event, type):
            return self.data(event)
        changes = {}
        for f in dataclasses.fields(event):
            if f.init:
                old = getattr(event, f.name)
                new = self._walk(old, looks_secret(f.name), None)
                if new is not old:
                    changes[f.name] = new
        return dataclasses.replace(event, **changes) if changes else event

    def lines(self, lines: Iterable[str]) -> Iterator[str]:
        """Lines of log text, each redacted; a PEM private key block, which spans lines, goes whole.

        Lazy (one line at a time, so a caller streaming a file holds one line). A line from a
        ``-----BEGIN ... PRIVATE KEY-----`` up to its ``-----END ...-----`` (or the end of the lines) is
        ``***``, what precedes and follows the block is kept: its base64 body has no other shape a rule could
        find line by line.
        """
        in_key = False
        under = -1  # the indent of a secret-looking key ending the line before (password:, token: |), else -1
        for line in lines:
            if under >= 0 and not in_key:
                depth = len(line) - len(line.lstrip())
                if not line.strip():
                    yield line
                    continue
                if depth > under and not _MAPPING_KEY.match(line):  # its value, on the lines below (YAML)
                    yield line[:depth] + REDACTED
                    continue
                under = -1
            # a line may end a block and begin another (two key files catted, the first with no final newline)
            parts: list[str] = []
            pos = 0
            while True:
                if in_key:
                    end = _PEM_END.search(line, pos)
                    parts.append(REDACTED)
                    if end is None:
                        break
                    in_key, pos = False, end.end()
                    continue
                begin = _PEM_BEGIN.search(line, pos)
                end = None if begin is None else _PEM_END.search(line, begin.end())
                if begin is None or end is not None:  # no block, or a whole one: the rules' (to its END)
                    stop = len(line) if end is None else end.end()
                    parts.append(self._text(line[pos:stop], None))
                    pos = stop
                    if end is None:
                        break
                    continue
                parts += (self._text(line[pos : begin.start()], None), REDACTED)
                in_key = True
                break
            under = -1 if in_key else _dangling(line)
            yield "".join(parts)

    def exception(self, exc: BaseException) -> BaseException:
        """``exc``, changed in place so that its ``str()`` is redacted, and returned: its args, and what a message
        made of attributes reads (an OSError's file names, a CalledProcessError's ``cmd`` and output, the
        fields of an exception with its own ``__str__``; notes). Attributes that are not data are left."""
        exc.args = self.data(exc.args)
        for name, value in list(vars(exc).items()):
            if isinstance(value, str | bytes | list | tuple | dict):
                setattr(exc, name, self._walk(value, looks_secret(name), None))
        if isinstance(exc, OSError):  # C members, not in vars(): str() is "[Errno n] strerror: 'filename'"
            for name in ("filename", "filename2", "strerror"):
                if isinstance(value := getattr(exc, name), str | bytes):
                    setattr(exc, name, self._walk(value, False, None))
        return exc

    def log_processor(self, _logger: object, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        """The structlog processor: every key/value of a log line, the formatted exception included; a key
        that reads as a secret's shape (``log.info("x", **mapping)`` spreads data into keys) is renamed."""
        renamed: list[tuple[str, str]] = []
        for key, value in event.items():
            if not key.startswith("_"):  # structlog's own (_record, _from_structlog)
                event[key] = self._walk(value, looks_secret(key), None)
                if (shown := self._text(key, None)) is not key:
                    renamed.append((key, shown))
        for key, shown in renamed:
            event[shown] = event.pop(key)
        return event

    def _text(self, text: str, sink: _Sink | None) -> str:
        known = self._known  # one set for the whole string, even if a reload swaps it meanwhile
        if sink is None:
            done = known.cache.get(text, text)
            if done is not text:
                return text if done is None else done
        elif (seen := sink.seen.get(text)) is not None:
            return text if seen == text else seen  # what it adds to the sink is in it already
        out = _redacted(text, sink, known.matcher)

        if sink is not None:
            sink.seen[text] = out
        elif len(text) <= _CACHE_LEN:
            if len(known.cache) >= _CACHE_MAX:
                known.cache.clear()
            known.cache[text] = None if out == text else out
        return text if out == text else out

    def _walk(self, value: Any, secret: bool, sink: _Sink | None) -> Any:
        """``value`` redacted; ``secret``: it sits under a secret-looking key (every scalar in it goes)."""
        kind = type(value)
        if kind is str or isinstance(value, str):
            if secret and value and value != REDACTED:
                if sink is not None:
                    sink.add(value)
                    self._text(value, sink)  # its parts too: the token of "Bearer <token>"
                return REDACTED
            return self._text(value, sink)
        if value is None or kind is bool or isinstance(value, enum.Enum):
            return value
        if isinstance(value, int | float):
            if secret and sink is not None and kind is not float:  # a fraction is no literal to find everywhere
                sink.add(str(value))
            return REDACTED if secret else value
        if isinstance(value, Mapping):
            return self._mapping(value, secret, sink)
        if isinstance(value, list | tuple | set | frozenset):
            return self._sequence(value, secret, sink)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
            walked = self._mapping(fields, secret, sink)
            return value if walked is fields else walked
        # bytes, a Path, a Decimal: JSON encoders and loggers print them, so they are redacted as printed, and
        # under a secret-looking key they go whole like a string ({"password": b"pw"} printed b'pw')
        shown = value.decode("utf-8", "replace") if isinstance(value, bytes | bytearray) else str(value)
        if secret:
            if sink is not None:
                sink.add(shown)
            return REDACTED
        printed = str(value)
        redacted = self._text(printed, sink)
        return value if redacted is printed else redacted

    def _mapping(self, value: Mapping[Any, Any], secret: bool, sink: _Sink | None) -> Mapping[Any, Any]:
        out: dict[Any, Any] = {}
        changed = False
        text, walk = self._text, self._walk
        for key, item in value.items():
            if type(key) is str:
                under = secret or looks_secret(key) or (key in _ALL_SECRET and isinstance(item, Mapping))
                new_key = text(key, sink)
            else:
                under, new_key = secret, key
            if sink is not None and key in _DESTINATIONS and type(item) is str:
                sink.add(_destination_secret(item))
            new = text(item, sink) if type(item) is str and not under else walk(item, under, sink)
            if new is not item or new_key is not key:
                changed = True
            out[new_key] = new
        return out if changed else value

    def _argv(self, items: list[str], out: list[Any], sink: _Sink | None) -> None:
        """``out`` (``items`` redacted one by one) with what the shapes find in the line ``items`` make: a list
        that starts with a word may be a command (``["mysql", "-p", "pw"]``, ``["7z", "a", "-ppw"]``), whose
        tool and flag are in other items than the password. A span that starts an item takes the whole item (a
        flag's value of its own: the line ends it at its first space or quote, the item does not); one inside an
        item is cut from it; one across items (a header's value read to the end of the line) is that item's own
        rule's. Not found: a value item that begins with a quote and has no closing one (``' pw``)."""
        joined = " ".join(items)
        # (the line's own redaction is remembered as any string's: a reply's command, read again at each poll,
        # costs one look-up; a shape of one item is that item's own: only a tool's flag reads across items)
        if self._text(joined, sink) is joined or not TOOL.search(joined):
            return
        local: dict[int, list[tuple[int, int]]] = {}
        starts = list(itertools.accumulate((len(item) + 1 for item in items[:-1]), initial=0))
        for start, end in spans(joined, None if sink is None else sink.add):
            i = bisect.bisect_right(starts, start) - 1
            if start == starts[i]:
                local[i] = [(0, len(items[i]))]
                if sink is not None:
                    sink.add(items[i])
            elif end <= starts[i] + len(items[i]) and local.get(i) != [(0, len(items[i]))]:
                local.setdefault(i, []).append((start - starts[i], end - starts[i]))
        for i, cuts in local.items():
            shown = self._text(replaced(items[i], cuts), sink)
            out[i] = items[i] if shown == items[i] else shown

    def _sequence(self, value: Any, secret: bool, sink: _Sink | None) -> Any:
        items = list(value)
        text, walk = self._text, self._walk
        out = [text(item, sink) if type(item) is str and not secret else walk(item, secret, sink) for item in items]
        if not secret and len(items) >= 2 and all(type(item) is str for item in items) and _a_program(items[0]):
            self._argv(items, out, sink)
        for i in range(len(items) - 1):  # a command line: the value after --password, --api-token...
            flag = items[i]
            if not isinstance(flag, str) or not flag.startswith("-") or not isinstance(items[i + 1], str):
                continue
            if _FLAG.fullmatch(flag) and looks_secret(flag.lstrip("-")) and out[i + 1] != REDACTED:
                if sink is not None:
                    sink.add(items[i + 1])
                out[i + 1] = REDACTED
        if all(new is old for new, old in zip(out, items, strict=True)):
            return value
        return tuple(out) if isinstance(value, tuple) else out
