"""Hypothesis strategies for every kind of config value: its whole hostile class, and values it must accept.

``hostile(gate)`` draws values the gate must refuse: non-finite numbers, negatives and zero where its bounds
exclude them, huge values, values just outside the bounds, the wrong type (booleans, lists, mappings,
numbers for text, text for numbers), empty and over-long text, NUL bytes and control characters, names
outside the namespace's pattern. ``valid(gate)`` draws (value, what the gate returns) pairs inside the range.
A kind without strategies here fails ``tests/unit/test_gates.py::test_every_kind_has_strategies``.
"""

from __future__ import annotations

import math
import re
import signal
import string
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from foss_supervisor.config import gates
from foss_supervisor.config.gates import MAX_ARG_BYTES, MAX_NAME_BYTES, Gate
from foss_supervisor.config.model import UptimeObjective
from helpers.strategies import regex_class

__all__ = [
    "KINDS",
    "bad_env_value",
    "hostile",
    "tagged_yaml",
    "unicode_digits",
    "valid",
    "yaml_number_form",
]

Strategy = st.SearchStrategy[Any]

NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
WRONG_CONTAINERS = st.sampled_from([[], [1], {}, {"a": 1}, [["x"]]])
BOOLS = st.booleans()
FRACTIONS = st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f != int(f))
HUGE_INTS = st.integers(min_value=2**63, max_value=2**80) | st.integers(min_value=-(2**80), max_value=-(2**63))
#: integers no float can hold (past 1e308): was HUGE_INTS.filter(abs > 1e308), which HUGE_INTS (< 2**80) never passed
PAST_FLOATS = st.integers(min_value=10**309, max_value=10**320) | st.integers(
    min_value=-(10**320), max_value=-(10**309)
)
#: text a name, a choice or a number must never be: empty, spaces, separators, control characters, NUL
BAD_TEXT = st.sampled_from(["", " ", "a b", "a/b", "../x", "x\x00y", "x\ny", "\t", "-", "é", "$(id)", "a;b"])
ESCAPES = st.sampled_from(["\\", "\\n", "%(x)s", "${X}", "$$", "%%", "'", '"', "\x1b[31m", "\x7f"])


def _outside(lo: float, hi: float, integer: bool) -> Strategy:
    """Numbers just and far outside [lo, hi]."""
    below = (
        st.integers(max_value=math.ceil(lo) - 1, min_value=-(2**62))
        if integer
        else st.floats(max_value=lo, exclude_max=True, allow_nan=False, allow_infinity=False)
    )
    above = (
        st.integers(min_value=int(hi) + 1, max_value=2**62)
        if integer
        else st.floats(min_value=hi, exclude_min=True, allow_nan=False, allow_infinity=False)
    )
    return below | above


def _duration_hostile(gate: Gate[Any]) -> Strategy:
    assert gate.bounds is not None
    lo, hi = gate.bounds
    as_text = _outside(lo, hi, integer=True).filter(lambda n: n >= 0).map(lambda n: f"{n}s")
    return (
        NON_FINITE
        | _outside(lo, hi, integer=False)
        | _outside(lo, hi, integer=True)
        | as_text
        | BOOLS
        | WRONG_CONTAINERS
        | BAD_TEXT.filter(bool)
        | HUGE_INTS
        | st.sampled_from(["5 s s", "1w", "-5s", "5sec", "1e3", ".5s", "nan"])
    )


def _duration_valid(gate: Gate[Any]) -> Strategy:
    assert gate.bounds is not None
    lo, hi = gate.bounds
    seconds = st.floats(min_value=lo, max_value=hi, allow_nan=False).map(lambda s: (s, s))
    millis = st.integers(min_value=math.ceil(lo * 1000), max_value=int(hi * 1000)).map(lambda n: (f"{n}ms", n / 1000))
    return seconds | millis


def _integer_hostile(gate: Gate[Any]) -> Strategy:
    assert gate.bounds is not None
    lo, hi = gate.bounds
    return (
        _outside(lo, hi, integer=True)
        | HUGE_INTS
        | NON_FINITE
        | FRACTIONS
        | BOOLS
        | WRONG_CONTAINERS
        | st.text(max_size=5).filter(lambda t: not t.strip().isdigit())
    )


def _integer_valid(gate: Gate[Any]) -> Strategy:
    assert gate.bounds is not None
    lo, hi = gate.bounds
    return st.integers(min_value=int(lo), max_value=int(hi)).map(lambda n: (n, n))


def _size_hostile(gate: Gate[Any]) -> Strategy:
    assert gate.bounds is not None
    lo, hi = gate.bounds
    too_big = st.integers(min_value=int(hi) + 1, max_value=2**70)
    return (
        _outside(lo, hi, integer=True)
        | NON_FINITE
        | st.floats(allow_nan=False)
        | BOOLS
        | WRONG_CONTAINERS
        | too_big.map(str)
        | st.sampled_from(["10 XB", "-5MB", "MB", "1e9", "ten"])
        | BAD_TEXT.filter(bool)
    )


def _factor_hostile(gate: Gate[Any]) -> Strategy:
    assert gate.bounds is not None
    lo, hi = gate.bounds
    return NON_FINITE | _outside(lo, hi, integer=False) | BOOLS | WRONG_CONTAINERS | st.text(max_size=5)


def _factor_valid(gate: Gate[Any]) -> Strategy:
    assert gate.bounds is not None
    lo, hi = gate.bounds
    return st.floats(min_value=lo, max_value=hi).map(lambda f: (f, f))


def _text_hostile(gate: Gate[Any]) -> Strategy:
    limit = int(gate.bounds[1]) if gate.bounds else MAX_ARG_BYTES
    return (
        st.just("")
        | st.text(min_size=1, max_size=20).map(lambda t: t + "\x00")
        | st.just("x" * (limit + 1))
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)  # .nan, .inf: the text written (yaml_number_form)
        | BOOLS
        | WRONG_CONTAINERS
    )


def _text_valid(gate: Gate[Any]) -> Strategy:
    chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
    return st.text(chars, min_size=1, max_size=40).map(lambda t: (t, t))


def _secrets_hostile(gate: Gate[Any]) -> Strategy:
    assert gate.bounds is not None
    lo, hi = int(gate.bounds[0]), int(gate.bounds[1])
    bad_item = (
        st.text(st.characters(whitelist_categories=("Ll",)), max_size=lo - 1)
        | st.just("*" * (lo + 2))
        | st.just("x" * (hi + 1))
        | st.just("ab\x00cd")
        | st.integers()
        | BOOLS
        | st.none()
        | WRONG_CONTAINERS
    )
    return st.lists(bad_item, min_size=1, max_size=3) | st.text(min_size=1, max_size=8) | st.integers() | BOOLS


def _secrets_valid(gate: Gate[Any]) -> Strategy:
    item = st.text(
        st.characters(whitelist_categories=("Lu", "Ll", "Nd"), whitelist_characters="-_."), min_size=4, max_size=40
    )
    return st.lists(item, min_size=1, max_size=3).map(lambda v: (v, tuple(v)))


def _path_hostile(gate: Gate[Any]) -> Strategy:
    return (
        st.just("")
        | st.just("a\x00b")
        | st.just("/x/" + "y" * (MAX_NAME_BYTES + 1))
        | st.just("/" + "/".join(["z" * 200] * 21))
        | st.integers()
        | BOOLS
        | WRONG_CONTAINERS
    )  # not .nan or .inf: a text key takes them as the text written (YamlNumber)


def _path_valid(gate: Gate[Any]) -> Strategy:
    part = st.text(
        st.characters(whitelist_categories=("Ll", "Nd"), whitelist_characters="_-."), min_size=1, max_size=30
    ).filter(lambda p: p not in (".", ".."))
    return st.lists(part, min_size=1, max_size=4).map(lambda ps: "/" + "/".join(ps)).map(lambda p: (p, p))


def _name_hostile(gate: Gate[Any]) -> Strategy:
    pattern = re.compile(gate.pattern)
    outside = st.text(max_size=80).filter(lambda t: not pattern.fullmatch(t))
    return outside | BAD_TEXT.filter(lambda t: not pattern.fullmatch(t)) | st.just("a" * 300) | st.integers()


def _name_valid(gate: Gate[Any]) -> Strategy:
    return st.from_regex(gate.pattern, fullmatch=True).filter(lambda t: "\n" not in t).map(lambda t: (t, t))


def _names_hostile(gate: Gate[Any]) -> Strategy:
    assert gate.item is not None
    bad = hostile(gate.item)
    return (
        st.lists(bad, min_size=1, max_size=3)
        | bad.filter(lambda v: isinstance(v, str))
        | st.dictionaries(st.text(max_size=3), st.integers(), min_size=1)
        | st.just(["a"] * 1001)
    )


def _names_valid(gate: Gate[Any]) -> Strategy:
    assert gate.item is not None
    return st.lists(valid(gate.item), min_size=1, max_size=3).map(lambda v: ([w for w, _ in v], tuple(e for _, e in v)))


def _members_valid(gate: Gate[Any]) -> Strategy:
    name = st.from_regex(gate.pattern, fullmatch=True).filter(lambda t: "\n" not in t)
    return st.lists(name, min_size=1, max_size=3).map(lambda v: (v, tuple(v)))


def _choice_hostile(gate: Gate[Any]) -> Strategy:
    return (st.text(max_size=20) | ESCAPES | BAD_TEXT).filter(lambda t: t not in gate.options) | st.integers() | BOOLS


def _choice_valid(gate: Gate[Any]) -> Strategy:
    return st.sampled_from(gate.options).map(lambda o: (o, o))


def _bool_hostile(gate: Gate[Any]) -> Strategy:
    return st.sampled_from(["yes", "no", "true", "on", "1", ""]) | st.integers() | NON_FINITE | WRONG_CONTAINERS


_JOB_CONTROL = ["STOP", "SIGSTOP", "cont", "TSTP", "TTIN", "TTOU", "CHLD"]


def _signal_hostile(gate: Gate[Any]) -> Strategy:
    unknown = st.text(max_size=20).filter(
        lambda t: f"SIG{t.strip().upper().removeprefix('SIG')}" not in signal.Signals.__members__
    )
    return st.sampled_from(_JOB_CONTROL) | unknown | st.integers() | BOOLS | WRONG_CONTAINERS


def _signal_valid(gate: Gate[Any]) -> Strategy:
    names = ["TERM", "INT", "QUIT", "HUP", "KILL", "USR1", "USR2", "SIGTERM", "sigint", "WINCH"]
    return st.sampled_from(names).map(lambda n: (n, signal.Signals[f"SIG{n.upper().removeprefix('SIG')}"]))


def _argv_hostile(gate: Gate[Any]) -> Strategy:
    return (
        st.just([])
        | st.just("")
        | st.just("   ")
        | st.sampled_from(["'unclosed", '"unclosed', "trailing\\"])
        | st.lists(st.sampled_from([True, None, [1], {"a": 1}, "a\x00b"]), min_size=1, max_size=3)
        | st.just(["x" * (MAX_ARG_BYTES + 1)])
        | st.integers()
        | BOOLS
        | st.just({})
    )


def _argv_valid(gate: Gate[Any]) -> Strategy:
    arg = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=20)
    return st.lists(arg, min_size=1, max_size=5).map(lambda a: (a, tuple(a)))


def _env_hostile(gate: Gate[Any]) -> Strategy:
    return (
        st.sampled_from(
            [
                {"A=B": "x"},
                {"": "x"},
                {"A": [1]},
                {"A": {"b": 1}},
                {"A": True},
                {"A": "x\x00y"},
                {"A": "x" * (MAX_ARG_BYTES + 1)},
            ]
        )
        | st.lists(st.text(max_size=3), min_size=1)
        | st.text(min_size=1, max_size=5)
        | st.integers()
    )


_TYPES = ["VARCHAR", "BIGINT", "DATE", "DECIMAL(18, 2)", "TIMESTAMP WITH TIME ZONE", "VARCHAR[]"]


def _column_types_hostile(gate: Gate[Any]) -> Strategy:
    """A contract: not a mapping, empty, over 1,000 columns, a bad or non-string name, a bad or non-string type."""
    bad_name = st.sampled_from(["", "1a", "a-b", "a b", "x" * 64, "é", "a.b"]) | st.integers()  # YAML keys are text
    bad_type = (
        st.sampled_from(["", "VARCHAR; DROP", "INT)", "(", "DECIMAL(1, 2, 3)", "x" * 128, "A B C D E", "INT\x00"])
        | st.integers()
        | st.floats()
        | st.booleans()
        | st.none()
        | st.lists(st.just("INT"), max_size=2)
        | st.dictionaries(st.just("a"), st.just("INT"), max_size=1)
    )
    return (
        st.just({})
        | st.just({f"c{i}": "INT" for i in range(1001)})
        | st.builds(lambda k: {k: "INT"}, bad_name)
        | st.builds(lambda v: {"ok": "INT", "col": v}, bad_type)
        | st.lists(st.just("INT"), min_size=1, max_size=3)
        | st.text(max_size=5)
        | st.integers()
    )


def _column_types_valid(gate: Gate[Any]) -> Strategy:
    names = regex_class(string.ascii_lowercase + "_", string.ascii_lowercase + string.digits + "_", 20)
    return st.dictionaries(names, st.sampled_from(_TYPES), min_size=1, max_size=5).map(
        lambda d: (d, {k: v.upper() for k, v in d.items()})
    )


def unicode_digits() -> Strategy:
    """A number written in digits other than 0-9 (Arabic-Indic U+0663, fullwidth U+FF15...), which Python's
    int() and float() read, optionally with a unit."""
    digit = st.characters(whitelist_categories=("Nd",)).filter(lambda c: not c.isascii())
    return st.builds(
        lambda ds, unit: "".join(ds) + unit, st.lists(digit, min_size=1, max_size=4), st.sampled_from(["", "s", "MB"])
    )


def yaml_number_form() -> Strategy:
    """A plain YAML scalar YAML 1.1 or 1.2 reads as a number but not in plain decimal, as written: octal (``0o17``,
    ``017``), ``1_000``, hex, binary, sexagesimal ``1:30``, exponents (``1e3``, ``1.5e3``), ``.inf``/``.nan`` in
    their spellings, and integers past Python's 4,300-digit conversion limit."""
    return st.one_of(
        st.from_regex(r"0o[0-7]{1,6}", fullmatch=True),
        st.from_regex(r"0[0-7]{1,6}", fullmatch=True),
        st.from_regex(r"[1-9][0-9]{0,3}(_[0-9]{3}){1,3}", fullmatch=True),
        st.from_regex(r"0x[0-9A-Fa-f]{1,6}", fullmatch=True),
        st.from_regex(r"0b[01]{1,8}", fullmatch=True),
        st.from_regex(r"[1-9][0-9]?(:[0-5][0-9]){1,2}", fullmatch=True),
        st.from_regex(r"[1-9][0-9]{0,2}(\.[0-9]{1,3})?e[1-9]", fullmatch=True),
        st.sampled_from([".inf", ".Inf", ".INF", "-.inf", "+.inf", ".nan", ".NaN", ".NAN"]),
        st.integers(4301, 6000).map(lambda n: "9" * n),
    )


def bad_env_value(secret: str) -> Strategy:
    """A value an ``env`` entry refuses, carrying ``secret`` (so an error that quotes the value shows it)."""
    return st.sampled_from(
        [[secret], {"v": secret}, f"{secret}\x00", f"x\x00{secret}", [1, secret], {secret: secret}, True, None]
    )


def _headers_hostile(gate: Gate[Any]) -> Strategy:
    return (
        st.sampled_from(
            [
                {"X-A": "v\r\nInjected: 1"},
                {"X-A\r\nB": "v"},
                {"X-A: b": "v"},
                {"Content-Length": "0"},
                {"transfer-encoding": "chunked"},
                {"Host": "evil.example"},
                {"X-A": "a\x00b"},
                {"X-A": "\x1b[31m"},
                {"X-A": True},
                {"X-A": [1]},
                {"": "x"},
                {"X-A": "x" * 9000},
            ]
        )
        | st.lists(st.text(max_size=3), min_size=1)
        | st.text(min_size=1, max_size=5)
        | st.integers()
    )


def _headers_valid(gate: Gate[Any]) -> Strategy:
    names = regex_class("", string.ascii_letters + string.digits + "-", 12, 1).map("X-".__add__)
    # no $ or %: header values are interpolated ($A is a variable); the escapes have their own test
    values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="$%"), max_size=30)
    return st.dictionaries(names, values, max_size=4).map(lambda d: (d, d))


def _env_valid(gate: Gate[Any]) -> Strategy:
    names = regex_class(string.ascii_uppercase + "_", string.ascii_uppercase + string.digits + "_", 10)
    values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
    return st.dictionaries(names, values, max_size=4).map(lambda d: (d, d))


def _url_hostile(gate: Gate[Any]) -> Strategy:
    return (
        st.sampled_from(
            [
                "http://x/\x9b",  # a C1 control (CSI)
                "http://x/\u202eevil",  # a bidi override
                "http://x\u200b.example/",  # a zero-width space
                "http://x:0/",
                "",
                "ftp://x/",
                "http://",
                "http:///x",
                "//x/",
                "x",
                "http://a b/",
                "http://x:99999/",
                "http://x/\n",
                "javascript:alert(1)",
                "file:///etc/passwd",
                "http://[::1/",
            ]
        )
        | st.just("http://x/" + "a" * 2100)
        | st.integers()
        | WRONG_CONTAINERS
    )


def _url_valid(gate: Gate[Any]) -> Strategy:
    return st.sampled_from(["http://127.0.0.1:8080/health", "https://alerts.example/hook", "http://[::1]:80/"]).map(
        lambda u: (u, u)
    )


def _host_hostile(gate: Gate[Any]) -> Strategy:
    return (
        st.sampled_from(["", "a b", "-x", "x-", "x..y", "x_y", "a/b", "::g", "host:80"])
        | st.just("a" * 254)
        | st.just(("a" * 64) + ".x")
        | st.integers()
        | WRONG_CONTAINERS
    )


def _host_valid(gate: Gate[Any]) -> Strategy:
    return st.sampled_from(["127.0.0.1", "::1", "localhost", "db.internal.example", "0.0.0.0"]).map(lambda h: (h, h))


def _glob_hostile(gate: Gate[Any]) -> Strategy:
    return st.sampled_from(["", "a/*.csv", "*\x00"]) | st.just("*" * 256) | st.integers()


def _regex_hostile(gate: Gate[Any]) -> Strategy:
    return (
        st.sampled_from(["(?=x)", "(?!x)", "(?<=x)y", "(a)\\1", "(?P<n>a)(?P=n)", "[", "(", "a{2,1}", "a++"])
        | st.just("a" * 1001)
        | st.just("")
        | st.integers()
    )


def _regex_valid(gate: Gate[Any]) -> Strategy:
    return st.sampled_from(["^\\d{4}-\\d{2}", "[a-z]+", "^(card|cash)$", "x.*y"]).map(lambda r: (r, r))


def _mode_hostile(gate: Gate[Any]) -> Strategy:
    return (
        st.integers(min_value=0o1000, max_value=2**40)
        | st.integers(max_value=-1)
        | st.sampled_from(["8", "rw", "0o8", "7777", ""])
        | NON_FINITE
        | FRACTIONS
        | BOOLS
        | WRONG_CONTAINERS
    )


def _mode_valid(gate: Gate[Any]) -> Strategy:
    return st.integers(min_value=0, max_value=0o777).map(lambda m: (f"{m:03o}", m))


def _rlimit_hostile(gate: Gate[Any]) -> Strategy:
    return (
        st.integers(max_value=-1)
        | st.integers(min_value=2**63, max_value=2**70)
        | st.sampled_from(["1:2:3", "x", "9:8", "unlimited:5", "-1", ""])
        | NON_FINITE
        | st.floats(allow_nan=False)
        | BOOLS
        | WRONG_CONTAINERS
    )


def _rlimit_valid(gate: Gate[Any]) -> Strategy:
    return st.integers(min_value=0, max_value=2**40).map(lambda n: (n, (n, n))) | st.just(("unlimited", (-1, -1)))


_LONGEST_MONTH = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}


def _never(month: int) -> Strategy:
    """Cron days of ``month`` that never come (30 February, 31 April...), in every field spelling."""
    days = st.integers(_LONGEST_MONTH[month] + 1, 31)
    return days.map(lambda d: f"0 0 {d} {month} *") | days.map(lambda d: f"*/5 1 {d}-31 {month} *")


def _cron_hostile(gate: Gate[Any]) -> Strategy:
    return (
        st.sampled_from(["x", "* * *", "61 * * * *", "* * * * * * * *", "", "@never"])
        | st.integers()
        | st.just("*" * 101)
        | st.sampled_from([2, 4, 6, 9, 11]).flatmap(_never)
    )


def _cron_valid(gate: Gate[Any]) -> Strategy:
    fixed = st.sampled_from(["*/15 * * * *", "0 3 * * 1-5", "0 0 1 * *", "0 0 29 2 *"])
    dated = st.integers(1, 12).flatmap(lambda m: st.integers(1, _LONGEST_MONTH[m]).map(lambda d: f"0 0 {d} {m} *"))
    one_value = st.just(("0 0 31-31 1 *", "0 0 31 1 *"))  # croniter reads N-N as the whole field: kept as N
    return (fixed | dated).map(lambda c: (c, c)) | one_value


def _retries_hostile(gate: Gate[Any]) -> Strategy:
    return _integer_hostile(gate).filter(lambda v: v != "forever") | st.sampled_from(["never", "Forever", "always"])


def _retries_valid(gate: Gate[Any]) -> Strategy:
    return _integer_valid(gate) | st.just(("forever", None))


def _dependencies_hostile(gate: Gate[Any]) -> Strategy:
    return st.sampled_from(
        [
            {"db": "ready"},
            {"db": {"condition": "up"}},
            {"db": {"when": "healthy"}},
            {"a b": None},
            ["a b"],
            [1],
            5,
            True,
            {"db": 5},
            {"db": {"restart": "yes"}},
            {"db": {"restart": 1}},
        ]
    )


def _address_hostile(gate: Gate[Any]) -> Strategy:
    return (
        st.integers(max_value=0)
        | st.integers(min_value=65536)
        | st.sampled_from(["h:x", "a b:80", ":", "h:", "h:0", "h:99999", "[::1:80"])
        | NON_FINITE
        | BOOLS
        | WRONG_CONTAINERS
    )


def _address_valid(gate: Gate[Any]) -> Strategy:
    return st.integers(1, 65535).map(lambda p: (p, ("127.0.0.1", p))) | st.integers(1, 65535).map(
        lambda p: (f"db.example:{p}", ("db.example", p))
    )


def _exit_codes_hostile(gate: Gate[Any]) -> Strategy:
    return (
        st.integers(min_value=256)
        | st.integers(max_value=-1)
        | st.lists(st.integers(256, 10**6), min_size=1)
        | st.just(["0"])
        | NON_FINITE
    )


def _exit_codes_valid(gate: Gate[Any]) -> Strategy:
    return st.lists(st.integers(0, 255), min_size=1, max_size=5).map(lambda c: (c, frozenset(c)))


def _members_hostile(gate: Gate[Any]) -> Strategy:
    return st.sampled_from([[], "", {"programs": []}, {"progs": ["a"]}, ["a b"], [1], 5, True])


def _events_hostile(gate: Gate[Any]) -> Strategy:
    return st.sampled_from([[], "none", ["program_fatal", "nope"], 5, True, {"a": 1}, "ALL"])


def _events_valid(gate: Gate[Any]) -> Strategy:
    return st.just(("all", frozenset(gate.options))) | st.lists(st.sampled_from(gate.options), min_size=1).map(
        lambda e: (e, frozenset(e))
    )


def _number_hostile(gate: Gate[Any]) -> Strategy:
    return NON_FINITE | BOOLS | st.text(max_size=5) | WRONG_CONTAINERS | PAST_FLOATS


def _number_valid(gate: Gate[Any]) -> Strategy:
    return (st.integers(-(10**12), 10**12) | st.floats(allow_nan=False, allow_infinity=False)).map(lambda n: (n, n))


def _percent_hostile(gate: Gate[Any]) -> Strategy:
    above = st.floats(min_value=100, exclude_min=True, allow_nan=False, allow_infinity=False)
    return (
        NON_FINITE
        | st.floats(max_value=0, allow_nan=False, allow_infinity=False)
        | above
        | st.integers(max_value=0, min_value=-(2**62))
        | st.integers(min_value=101, max_value=2**62)
        | above.map(lambda f: f"{f}%")
        | BOOLS
        | WRONG_CONTAINERS
        | BAD_TEXT
        | HUGE_INTS
        | st.sampled_from(["0%", "0", "-1%", "100.5%", "99.5%%", "%", "nan%", ".nan", "inf", "1e2", "99,5%", "½%"])
    )


def _percent_valid(gate: Gate[Any]) -> Strategy:
    numbers = st.floats(min_value=0, max_value=100, exclude_min=True, allow_nan=False)
    return numbers.map(lambda f: (f, f)) | st.integers(1, 100).map(lambda n: (f"{n}%", float(n)))


def _uptime_hostile(gate: Gate[Any]) -> Strategy:
    bad_window = _duration_hostile(gates.duration(60, 366 * 86400.0))
    return (
        _percent_hostile(gate)
        | _percent_hostile(gate).map(lambda p: {"target": p})
        | bad_window.map(lambda w: {"target": 99.5, "window": w})
        | st.sampled_from([{}, {"window": "7d"}, {"target": 99, "windows": "7d"}, {"target": 99, "x": 1}])
    )


def _uptime_valid(gate: Gate[Any]) -> Strategy:
    week = 7 * 86400.0
    plain = _percent_valid(gate).map(lambda pair: (pair[0], UptimeObjective(pair[1], week)))
    windowed = st.tuples(_percent_valid(gate), st.integers(1, 366)).map(
        lambda t: ({"target": t[0][0], "window": f"{t[1]}d"}, UptimeObjective(t[0][1], t[1] * 86400.0))
    )
    return plain | windowed


#: kind -> (hostile, valid); the valid strategy draws (value as written, value the gate returns)
KINDS: dict[str, tuple[Callable[[Gate[Any]], Strategy], Callable[[Gate[Any]], Strategy]]] = {
    "duration": (_duration_hostile, _duration_valid),
    "size": (_size_hostile, _integer_valid),
    "factor": (_factor_hostile, _factor_valid),
    "number": (_number_hostile, _number_valid),
    "count": (_integer_hostile, _integer_valid),
    "port": (_integer_hostile, _integer_valid),
    "retries": (_retries_hostile, _retries_valid),
    "text": (_text_hostile, _text_valid),
    "secrets": (_secrets_hostile, _secrets_valid),
    "path": (_path_hostile, _path_valid),
    "name": (_name_hostile, _name_valid),
    "names": (_names_hostile, _names_valid),
    "members": (_members_hostile, _members_valid),
    "choice": (_choice_hostile, _choice_valid),
    "bool": (_bool_hostile, lambda g: st.booleans().map(lambda b: (b, b))),
    "signal": (_signal_hostile, _signal_valid),
    "argv": (_argv_hostile, _argv_valid),
    "env": (_env_hostile, _env_valid),
    "headers": (_headers_hostile, _headers_valid),
    "column types": (_column_types_hostile, _column_types_valid),
    "url": (_url_hostile, _url_valid),
    "host": (_host_hostile, _host_valid),
    "glob": (_glob_hostile, lambda g: st.sampled_from(["*.csv", "*.parquet", "orders-??.jsonl"]).map(lambda p: (p, p))),
    "regex": (_regex_hostile, _regex_valid),
    "mode": (_mode_hostile, _mode_valid),
    "rlimit": (_rlimit_hostile, _rlimit_valid),
    "cron": (_cron_hostile, _cron_valid),
    "dependencies": (
        _dependencies_hostile,
        lambda g: (
            st.just((["db"], (("db",), {"db": "healthy"}, frozenset())))
            | st.just(({"db": {"restart": True}}, (("db",), {"db": "healthy"}, frozenset({"db"}))))
        ),
    ),
    "ready": (
        lambda g: _choice_hostile(g) | _regex_hostile(g).map(lambda p: {"log": p}) | st.just({"log": "x", "y": 1}),
        lambda g: (
            st.sampled_from(["running", "notify"]).map(lambda k: (k, (k, "")))
            | _regex_valid(g).map(lambda pair: ({"log": pair[0]}, ("log", pair[1])))
        ),
    ),
    "address": (_address_hostile, _address_valid),
    "exit codes": (_exit_codes_hostile, _exit_codes_valid),
    "events": (_events_hostile, _events_valid),
    "percent": (_percent_hostile, _percent_valid),
    "uptime": (_uptime_hostile, _uptime_valid),
}


#: the strategies made for each gate, by id (the gate is kept, so its id is not reused): a test drawing a gate's
#: class in every example reuses one strategy instead of building and validating a new one each time
_MADE: dict[tuple[int, int], tuple[Gate[Any], Strategy]] = {}


def _made(gate: Gate[Any], which: int) -> Strategy:
    key = (id(gate), which)
    if key not in _MADE:
        _MADE[key] = (gate, KINDS[gate.kind][which](gate))
    return _MADE[key][1]


def hostile(gate: Gate[Any]) -> Strategy:
    """Values ``gate`` must refuse (its kind's whole hostile class, around its own bounds)."""
    return _made(gate, 0)


def valid(gate: Gate[Any]) -> Strategy:
    """(value as written, the value ``gate`` returns) pairs inside its range."""
    return _made(gate, 1)


#: YAML tags outside the core schema, each with a node it may stand on (scalar, sequence, mapping)
TAGS = [
    "!!python/object/apply:os.system",
    "!!python/name:os.system",
    "!!python/object:x.Y",
    "!!python/tuple",
    "!!binary",
    "!!timestamp",
    "!!set",
    "!!omap",
    "!!pairs",
    "!custom",
    "!Ref",
    "!include",
    "!<tag:x.org:y>",
]


def tagged_yaml() -> Strategy:
    """A tagged YAML node as flow text: ``!!python/object/apply:os.system ["id"]`` and friends."""
    nodes = st.sampled_from(['["touch /tmp/x"]', "aGk=", "{a: 1}", "5s", "2024-01-01", "''", "[a: 1]"])
    return st.tuples(st.sampled_from(TAGS), nodes).map(lambda t: f"{t[0]} {t[1]}")
