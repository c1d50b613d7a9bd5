"""A command string split into argv the way a POSIX shell splits it, with its quoting kept for expansion.

``command: "app --fmt '%(asctime)s' --dir $HOME/x"`` is split as ``sh`` would split it, but no shell runs:
whitespace separates words, ``'...'`` keeps its text literal, ``"..."`` groups text that variables may
still be expanded in, and a backslash outside single quotes makes the next character literal (in double
quotes only before ``$ ` " \\`` and a newline, as in ``sh``). Each word is split *before* variables are
expanded, so a value never adds or splits arguments (as if every variable were written ``"$VAR"``).

Only the segments a shell would expand (unquoted or double-quoted, not escaped) are handed to the
``expand`` function: in ``'pa$$word'`` and ``'%(asctime)s'`` nothing is replaced.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["split_command", "words"]

Segment = tuple[str, bool]  # (text, literal): literal text is never expanded
_SPACE = " \t\n"
_DQ_ESCAPES = '$`"\\\n'


def words(text: str) -> list[list[Segment]]:
    """The words of ``text``, each a list of segments; ValueError for an unclosed quote or a trailing backslash."""
    out: list[list[Segment]] = []
    word: list[Segment] | None = None
    i, n = 0, len(text)

    def add(piece: str, literal: bool) -> None:
        assert word is not None
        if word and word[-1][1] == literal:
            word[-1] = (word[-1][0] + piece, literal)
        else:
            word.append((piece, literal))

    while i < n:
        c = text[i]
        if c in _SPACE:
            if word is not None:
                out.append(word)
                word = None
            i += 1
            continue
        if word is None:
            word = []
        if c == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise ValueError(f"the quote ' at character {i} has no closing quote")
            add(text[i + 1 : end], True)
            i = end + 1
        elif c == '"':
            i = _double_quoted(text, i, add)  # "" leaves the word empty: an empty argument
        elif c == "\\":
            if i + 1 >= n:
                raise ValueError("the command ends with a backslash that escapes nothing")
            if text[i + 1] != "\n":  # backslash-newline joins lines
                add(text[i + 1], True)
            i += 2
        else:
            add(c, False)
            i += 1
    if word is not None:
        out.append(word)
    return out


def _double_quoted(text: str, start: int, add: Callable[[str, bool], None]) -> int:
    """Read ``"..."`` from ``start`` (its opening quote); return the index after its closing quote."""
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == '"':
            return i + 1
        if c == "\\" and i + 1 < len(text) and text[i + 1] in _DQ_ESCAPES:
            if text[i + 1] != "\n":
                add(text[i + 1], True)
            i += 2
            continue
        add(c, False)
        i += 1
    raise ValueError(f'the quote " at character {start} has no closing quote')


def split_command(text: str, expand: Callable[[str], str] | None = None) -> list[str]:
    """``text`` as argv; ``expand`` (when given) replaces variables in the segments a shell would expand."""
    return ["".join(expand(t) if expand is not None and not literal else t for t, literal in w) for w in words(text)]
