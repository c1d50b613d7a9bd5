"""Hostile and generated inputs shared by the test files of every tier: secrets and the names that hold them,
YAML alias bombs, the class of config texts a save must not apply without a confirmation, and redirect
targets made of what open-redirect attacks are made of (with a WHATWG parser to judge where they lead)."""

from __future__ import annotations

import string
from pathlib import Path

from ada_url import URL
from hypothesis import strategies as st

from helpers import PY

__all__ = [
    "BASE",
    "BILLION_LAUGHS",
    "FILLER",
    "KEY_LINE",
    "LOG_TEXT",
    "OTHER_NAMES",
    "RUNNING",
    "SECRET",
    "SECRET_NAME",
    "SLEEPER",
    "config_text",
    "destructive_texts",
    "hostile",
    "regex_class",
    "same_origin",
]


def regex_class(head: str, tail: str, max_tail: int, min_tail: int = 0) -> st.SearchStrategy[str]:
    """Strings matching ``[head][tail]{min_tail,max_tail}`` in full (``head`` empty: ``[tail]{min_tail,max_tail}``),
    ``head`` and ``tail`` the characters of each class written out: the class ``st.from_regex(..., fullmatch=True)``
    draws, drawn as text at a third of its cost (the regex engine's draws were most of some tests' time)."""
    body = st.text(alphabet=tail, min_size=min_tail, max_size=max_tail)
    return body if not head else st.tuples(st.sampled_from(head), body).map("".join)


# a secret as they come: letters, digits and URL-safe marks, with a letter and a digit so that it cannot
# occur by chance in a reply (no "0000000000")
SECRET = st.text(string.ascii_letters + string.digits + "-_.~", min_size=10, max_size=40).filter(
    lambda s: any(c.isdigit() for c in s) and any(c.isalpha() for c in s) and s.strip("-_.~") == s
)
# text a program prints around a secret on one line: any character but line breaks and controls
LOG_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=20)
# a line of a private key's base64 body (a PEM block's middle: no shape a rule finds line by line)
KEY_LINE = st.text(string.ascii_letters + string.digits + "+/", min_size=16, max_size=64).filter(
    lambda s: any(c.isdigit() for c in s) and any(c.isalpha() for c in s)
)
# a name that says it holds a secret, spelt as environments, headers and flags spell them
SECRET_NAME = st.builds(
    lambda prefix, word: f"{prefix}{word}",
    st.sampled_from(["", "DB_", "APP_", "x-", "my", "GITHUB_", "AWS_"]),
    st.sampled_from(
        [
            "PASSWORD",
            "PASS",
            "TOKEN",
            "SECRET",
            "API_KEY",
            "ApiKey",
            "Auth-Token",
            "Authorization",
            "ACCESS_KEY",
            "PRIVATE_KEY",
            "CREDENTIALS",
            "COOKIE",
            "DSN",
            "Pwd",
        ]
    ),
)

# a YAML alias bomb: nine levels of nine aliases each, 9**9 leaves if it were ever built
BILLION_LAUGHS = "programs:\n  x:\n    command: [echo]\n    env: {}\nlol:\n" + "".join(
    f"  {c}: &{c} [{', '.join([f'*{p}'] * 9 if p else ['lol'] * 9)}]\n"
    for p, c in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)

# ------------------------------------------------------------------------------------------ config saves

#: a program that sleeps, as a YAML flow mapping
SLEEPER = f"{{command: [{PY!r}, '-c', 'import time; time.sleep(300)'], start_timeout: 0.1}}"
#: the programs a config_text runs unless told otherwise
RUNNING = ("alpha", "beta")

_comment = regex_class("#", "".join(map(chr, range(ord(" "), ord("~") + 1))), 24)
# blank lines and comments, to pad a text with
FILLER = st.lists(st.one_of(st.just(""), st.just("   "), _comment), max_size=4).map("\n".join)
# a text that sets nothing: empty, blank, comments, a document marker, an empty mapping
BLANK = st.builds(lambda a, mark, b: f"{a}\n{mark}\n{b}", FILLER, st.sampled_from(["", "---", "{}", "--- {}"]), FILLER)
# names of programs that are not running
OTHER_NAMES = st.lists(
    regex_class(string.ascii_lowercase[2:], string.ascii_lowercase + string.digits + "_", 8),
    min_size=1,
    max_size=4,
    unique=True,
)


def _settings(state_dir: Path, port: int) -> st.SearchStrategy[list[str]]:
    """Top-level lines other than programs: the running daemon's own, other valid ones, or none."""
    lines = [
        f"state_dir: {state_dir}",
        f"dashboard: {{port: {port}}}",
        "debug: false",
        "log: {backups: 2}",
        "config_generations: 4",
        "hooks: {}",
    ]
    return st.lists(st.sampled_from(lines), unique=True, max_size=len(lines))


def destructive_texts(state_dir: Path, port: int) -> st.SearchStrategy[str]:
    """Every shape of a text that keeps none of the running programs: blank ones, settings with an empty or
    missing ``programs``, and valid files that name only other programs."""
    empty_programs = st.sampled_from(["programs: {}", "programs:", "programs: null", ""])
    others = OTHER_NAMES.map(lambda names: "programs:\n" + "".join(f"  {n}: {SLEEPER}\n" for n in names))

    def assemble(head: list[str], programs: str, pad: str) -> str:
        return "\n".join([pad, *head, programs, pad]) + "\n"

    return st.one_of(BLANK, st.builds(assemble, _settings(state_dir, port), st.one_of(empty_programs, others), FILLER))


#: a sleeper that would not run after a reload: changed (another argument), and ``autostart: false``
IDLE_SLEEPER = f"{{command: [{PY!r}, '-c', 'import time; time.sleep(301)'], start_timeout: 0.1, autostart: false}}"


def stopping_texts(state_dir: Path, port: int) -> st.SearchStrategy[str]:
    """Valid texts that keep the daemon where it is but leave none of the running programs (RUNNING) running,
    by any mix of means: each removed (absent, renamed, or its replicas now named otherwise) or changed with
    ``autostart: false``; other programs may be added, running or not."""
    fate = st.sampled_from(["removed", "idle", "replicas"])

    def assemble(fates: list[str], others: list[str], pad: str) -> str:
        lines = []
        for name, how in zip(RUNNING, fates, strict=True):
            if how == "idle":
                lines.append(f"  {name}: {IDLE_SLEEPER}")
            elif how == "replicas":  # the name now expands to name-0, name-1: the running one is gone
                lines.append(f"  {name}: {{replicas: 2, {SLEEPER[1:]}")
        lines += [f"  {n}: {SLEEPER}" for n in others]
        head = f"{pad}\nstate_dir: {state_dir}\ndashboard: {{port: {port}}}\nprograms:\n"
        return head + "".join(line + "\n" for line in lines)

    return st.builds(
        assemble,
        st.lists(fate, min_size=len(RUNNING), max_size=len(RUNNING)),
        st.one_of(st.just([]), OTHER_NAMES),
        FILLER,
    )


def moving_texts(state_dir: Path, port: int) -> st.SearchStrategy[tuple[str, list[str]]]:
    """(text, the keys moved): valid texts that keep the running programs but move what locates the daemon
    (its state dir, its dashboard's port or host, any mix of them)."""
    moves = st.lists(st.sampled_from(["state_dir", "dashboard.port", "dashboard.host"]), min_size=1, unique=True)

    def assemble(moved: list[str], pad: str) -> tuple[str, list[str]]:
        where = state_dir.with_name(state_dir.name + "-moved") if "state_dir" in moved else state_dir
        new_port = port + 1 if "dashboard.port" in moved else port
        host = ", host: 127.0.0.2" if "dashboard.host" in moved else ""
        body = "".join(f"  {n}: {SLEEPER}\n" for n in RUNNING)
        return f"{pad}\nstate_dir: {where}\ndashboard: {{port: {new_port}{host}}}\nprograms:\n{body}", moved

    return st.builds(assemble, moves, FILLER)


def config_text(state_dir: Path, port: int, programs: tuple[str, ...] = RUNNING, extra: str = "") -> str:
    """A config of sleeping ``programs`` with its state dir and dashboard port, ``extra`` lines before them."""
    body = "".join(f"  {n}: {SLEEPER}\n" for n in programs)
    return f"state_dir: {state_dir}\ndashboard: {{port: {port}}}\n{extra}programs:\n{body}"


# -------------------------------------------------------------------------------------- redirect targets

#: where the login page is, for the judge
BASE = "http://127.0.0.1:8080/login"
PIECES = [
    "/",
    "//",
    "///",
    "\\",
    "\\\\",
    "/\\",
    "\\/",
    "\t",
    "\n",
    "\r",
    "\r\n",
    " ",
    "\x00",
    "\x0b",
    "\x0c",
    "\x1f",
    "\x7f",
    "\x85",
    "\u00a0",
    "\u2028",
    "\u3000",
    "%09",
    "%0a",
    "%0d",
    "%2f",
    "%2F",
    "%5c",
    "%5C",
    "%252f",
    "%",
    "%%",
    "%00",
    "\u2215",
    "\u2044",
    "\uff0f",
    "\uff3c",
    "\u29f8",
    "\u3002",
    "\ufe68",
    "http:",
    "https:",
    "javascript:",
    "data:",
    "//evil.example",
    "evil.example",
    "@evil.example",
    "user:pw@",
    ":",
    "?",
    "#",
    ".",
    "..",
    "/./",
    "/../",
    "ok",
    "page",
]
# a redirect target built from the pieces of open-redirect attacks
hostile = st.lists(st.sampled_from(PIECES) | st.text(max_size=3), max_size=10).map("".join)


def same_origin(location: str, base: str = BASE) -> bool:
    """Would a browser at ``base``, sent to ``location``, stay on ``base``'s origin?"""
    return URL(location, base=base).origin == URL(base).origin
