"""The shapes a secret takes: the table the :class:`~foss_supervisor.base.redact.Redactor` applies.

One module, one table, so a new shape is one row here and one strategy in ``tests/unit/test_secret_shapes.py``
(each shape's property test generates random secrets in random text around it). Why not a library: the
secret scanners (detect-secrets, gitleaks) report findings per line of a file, with plugins and entropy
rules meant for review; the daemon must replace every span in every reply, log line and error, fast, and
keep the text around it. Their default rules are where most rows below come from.

Names: :func:`~foss_supervisor.base.secretnames.looks_secret` (re-exported here) decides which name says its value
is a secret, for the rules that read a name (``NAME=value``, a tag, a flag).

Shapes in text (:func:`apply`), each replaced by ``***`` and handed to ``found`` (learned as a literal):

============================  =====================================================================
PEM private key block         ``-----BEGIN ... PRIVATE KEY-----`` (OpenPGP's ``PRIVATE KEY BLOCK``) to its END
tokens by prefix              JWT ``eyJ..``, AWS ``AKIA``/``ASIA``, GitHub ``ghp_``/``github_pat_``,
                              GitLab ``glpat-`` (``glptt-``, ``gldt-``, ``glrt-``...), Slack ``xox?-``,
                              Stripe ``sk_live_``/``sk_test_``/``whsec_``, Google ``AIza``, OpenAI-style
                              ``sk-``/``sk-proj-``/``sk-ant-``, Vault ``hvs.``, npm ``npm_``, PyPI ``pypi-Ag``,
                              Docker ``dckr_pat_``, Hugging Face ``hf_``, SendGrid ``SG.``, Shopify ``shpat_``,
                              DigitalOcean ``dop_v1_``, Grafana ``glsa_``, Atlassian ``ATATT``
webhook URLs                  the path after ``hooks.slack.com/services/``, ``discord.com/api/webhooks/N/``
URL userinfo                  ``scheme://user:***@host``, ``https://***@host`` (a token as the user)
Authorization header          ``Authorization: <scheme> ***`` whatever the scheme (Bearer, Basic, Digest...)
Cookie header                 ``Cookie: ***``, ``Set-Cookie: ***``: every pair, to the end of the line or a quote
Bearer / Basic                ``Bearer ***``, ``Bearer '***'``, ``Basic ***`` (when it decodes to ``user:password``),
                              SMTP's ``AUTH PLAIN ***`` (``\\0user\\0password``)
command-line passwords,       the rows of :mod:`~foss_supervisor.base.secretforms`: ``mysql -p***``,
markup, SQL, directives,      ``docker login -p ***``, ``<password>***</password>``, ``<add key="DbPassword"
encoded names                 value="***"/>``, ``ALTER USER u PASSWORD '***'``, ``pass%77ord=***``...;
                              Oracle ``user/***@db`` (``@//host/svc``, ``jdbc:oracle:thin:user/***@`` too)
secret words in prose         ``password is ***``, ``token was ***``
NAME=value and the like       ``NAME=v``, ``NAME: v``, ``"name": "v"``, ``--name v``, ``?name=v`` with a
                              secret-looking name (query strings: ``sig``, ``X-Amz-Signature``, ``api_key``);
                              ``:=``, ``==``, ``=>``; ``b'v'``; ``\"name\": \"v\"``; ``['--name', 'v']``

============================  =====================================================================
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable

from foss_supervisor.base.secretforms import FORMS, Span
from foss_supervisor.base.secretnames import NAME_WORDS, looks_secret

__all__ = ["REASON_WORDS", "REDACTED", "TRIGGER", "Span", "apply", "looks_secret", "replaced", "spans"]

REDACTED = "***"

# ---------------------------------------------------------------------------------------------- shapes

# one cheap search decides whether a string needs the rules at all (a superset of what they match; a name with a
# %XX in it from its last %XX: %41%41... is read once)
TRIGGER = re.compile(
    r"://|PRIVATE KEY|eyJ|A(?:KI|SI|BI|CC)A|gh[pousr]_|github_pat_|glpat-|xox[abposr]-|[sr]k_live_|AIza|sk-|ATATT"
    r"|[_.-][A-Za-z0-9_-]{20}"  # the body of a vendor's token after its prefix (one branch, not one per vendor)
    r"|snmp|\s>\S"  # net-snmp's tools; redis' ACL >password
    r"|:\\/\\/|basic\s|webhooks|hooks\.slack|\s-[puaUwPkN]|\s/p:|identified\s|rabbitmqctl\s|/[^\s/@]+@"
    rf"|%[0-9A-Fa-f]{{2}}[\w.+\[\]-]*+=|{NAME_WORDS}",
    re.I,
)
# PEM and OpenPGP armor (-----BEGIN PGP PRIVATE KEY BLOCK-----)
_PEM = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|.*\Z)", re.S
)
_TOKEN = re.compile(  # (the lookahead of the prefixes' first letters: 20-40 times faster over text with none)
    r"(?=[eAgxsrwhnpdS])(?:\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"  # JWT: header.payload.sig
    r"|\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b|\bATATT[A-Za-z0-9_=-]{20,}"  # AWS access key id, Atlassian
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{22,}"  # GitHub
    r"|\bgl(?:pat|ptt|dt|rt|ft|cbt|soat)-[A-Za-z0-9_-]{20,}|\bgl(?:sa|c)_[A-Za-z0-9_-]{20,}"  # GitLab, Grafana
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}|\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}|\bwhsec_[A-Za-z0-9]{20,}"
    r"|\bAIza[0-9A-Za-z_-]{35}|\bhv[sbr]\.[A-Za-z0-9_-]{20,}|\bnpm_[A-Za-z0-9]{30,}|\bpypi-Ag[A-Za-z0-9_-]{40,}"
    r"|\bdckr_pat_[A-Za-z0-9_-]{20,}|\bhf_[A-Za-z0-9]{30,}|\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{20,}"
    r"|\bshp(?:at|ca|pa|ss)_[A-Za-z0-9]{24,}|\bdo[opr]_v1_[A-Za-z0-9]{40,}"
    r"|(?<![\w-])sk-(?:[a-z]{2,8}-)?[A-Za-z0-9_-]{20,})"  # OpenAI (sk-, sk-proj-), Anthropic (sk-ant-)
)
_WEBHOOK = re.compile(
    r"(?P<head>\bhooks\.slack\.com/(?:services|workflows|triggers)/|\bdiscord(?:app)?\.com/api/(?:v\d+/)?webhooks/\d+/)"
    r"(?P<secret>[\w/+.-]+)",
    re.I,
)
# scheme://userinfo@ : userinfo runs to the last '@' before the path, query or fragment (the slashes may be
# JSON-escaped, as PHP and some loggers write them: postgres:\/\/u:pw@db)
# (a scheme is letters, digits and + read once, after any other character: -redis://, x.postgres://; with . and -
# in it, as RFC 3986 allows, it was read again from each word of a-b-c-d-..., quadratic, and no scheme that
# carries a password has them)
_URL = re.compile(r"(?P<head>(?<![A-Za-z0-9+])[A-Za-z][A-Za-z0-9+]*+:\\?/\\?/)(?P<userinfo>[^\s/?#\"'<>\\]+)@")


# Authorization: <scheme> <credentials>, up to the end of the line or a closing quote
# (the scheme is kept when it is a registered one; an unknown first word may be the credential itself)
_SCHEMES = (
    r"bearer|basic|digest|token|negotiate|ntlm|hoba|mutual|dpop|apikey|api-key|key|splunk|ssws|gsskey|vapid"
    r"|aws4-hmac-sha256|scram-sha-1|scram-sha-256|privatetoken|concealed|sso|otp|mac|oauth|jwt"
)
_AUTHORIZATION = re.compile(
    rf"(?P<head>\b(?:proxy-)?authorization(?P<q>[\"'])?\s*[:=]\s*(?P<open>[\"'])?)"
    rf"(?:(?P<scheme>{_SCHEMES})\s+(?P<sq>(?(open)(?!)|[\"'](?=[^\"'\n]+[\"'])))?)?"  # Bearer 'tok': quoted after
    r"(?P<secret>(?(open)[^\n\"']+|(?(sq)[^\n\"']+|[^\s\"'](?:[^\n]*?(?=[\"'](?:[\s;)}\]]|$)|$)|[^\n]*))))",
    re.I,
)
# (the token maybe quoted: Bearer 'tok', a header built by concatenation and printed)
_BEARER = re.compile(
    r"(?P<head>\bbearer\s+(?P<q>[\"'](?=[^\"'\s]+[\"']))?)(?P<secret>(?(q)[^\"'\s]+|[A-Za-z0-9._~+/=-]{6,}))", re.I
)
# (standard or URL-safe base64, padded or not: clients and loggers write all four); SMTP's AUTH PLAIN the same,
# its credentials \0user\0password (smtplib's debug output prints it)
_BASIC = re.compile(
    r"(?P<head>\b(?:basic|auth\s+plain)\s+)(?P<secret>[A-Za-z0-9+/_-]{4,}={0,2})(?![A-Za-z0-9+/_=-])", re.I
)
# Oracle's user/password@database (JDBC's jdbc:oracle:thin:user/password@...), the password maybe quoted, the
# database an alias, an EZConnect //host:port/svc, a quoted name or a (DESCRIPTION=...) (not a digest:
# name@sha256:...)
_ORACLE = re.compile(
    r"(?P<head>(?:(?<![^\s\"'=(])|(?<=:thin:))[A-Za-z_][\w$#]*/)(?P<secret>\"[^\"\n]*\"|[^\s/@\"']+)"
    r"(?=@(?!sha\d*:)(?://)?[\w.-]+|@[(\"])"
)
_PROSE = re.compile(
    r"(?P<head>\b(?:password|passphrase|passwd|secret|token)\s+(?:is|was)(?:\s*:)?\s+)(?P<secret>[^\s,;]+)", re.I
)
# NAME=value, NAME: value, "name": "value", --name value (a space separates only after a dash: "pw NAME=v" is
# not the name pw and the value NAME=v, which would hide the real pair from the rule)
# a name is a whole run of [\w.-], read once (possessive: a long dotted or dashed run is not read again from each
# of its dots, which was quadratic); looks_secret decides, and the search goes on inside a harmless name's value
_INLINE = re.compile(
    r"(?P<open>(?<=[\"']))?(?P<name>(?<![\w.-])(?P<dash>-{1,2})?[\w.][\w.-]*+)(?P<close>\\?[\"']?)(?!:/)"
    # separators: = : := == => and, after a --flag, spaces or a list's comma (['--password', 'pw'], as a
    # subprocess error prints its argv), after a quoted name the comma of a pair (('DB_PASSWORD', 'pw'), as
    # Python prints os.environ.items() or a headers' items); a quoted value may have a Python prefix (b'pw') or
    # no closing quote (a line cut short, a value on more lines): then it runs to the end of the line
    r"(?P<sep>\s*(?:=>|[:=]=?)\s*|(?(dash)(?:\s+|(?<=[\"'])\s*,\s*)"
    r"|(?(open)(?<=[\"'])\s*,\s*(?=[bBrRuU]{0,2}(?:\"[^\"\n]*\"|'[^'\n]*')\s*\))|(?!))))"
    r"(?P<value>(?:[bBrRuU]{1,2}(?=[\"']))?(?:\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[\"'][^\n]*)"
    # and JSON in a JSON string ({\"password\": \"pw\"}); a bare value's first character only, the rest is
    # read once it is a secret's (_BARE: a harmless name's value is not read to its end, for each name in it)
    # a YAML block scalar's indicator (password: |) when indented lines follow: its lines are read as for a bare
    # value, once it is a secret's (_BLOCK)
    r"|[|>][+-]?[0-9]?(?=[ \t]*\n[ \t])|\\\"[^\"]*\\\"|[^\s'\",;&])"
)
_BLOCK = re.compile(r"[ \t]*\n")
_INDENT = re.compile(r"[ \t]*")
_BARE = re.compile(r"[^\s'\",;&]*+")
# read backwards from a value's end: a b/r/u prefix before a quote, the separators, the name before them
_PREFIX_BACK, _SEPS_BACK, _NAME_BACK = re.compile(r"[bBrRuU]{0,2}"), re.compile(r"[^\w.-]*+"), re.compile(r"[\w.-]*+")
_OPENING = re.compile(r"(?:[bBrRuU]{0,2}|\\)[\"']")
# a Cookie or Set-Cookie header holds several name=value pairs: its whole value goes (to the end of the line or
# a quote), not the first pair alone; not a JSON key's list or object ("cookie": [])
_COOKIE = re.compile(r"(?P<head>\b(?P<name>(?:set-)?cookie)[\"']?\s*:\s*[\"']?)(?P<secret>[^\s\"'\[{][^\n\"']*)", re.I)
_HEADER_NAME = re.compile(r"-{0,2}(?:proxy-)?authorization", re.I)
# "file:line: programs.p.env.DB_PASSWORD: must be a string": a dotted config key then the first word of a
# refusal (config errors are redacted before they are formatted: config.loader.without_secrets)
REASON_WORDS = frozenset(
    {
        "must",
        "unknown",
        "a",
        "an",
        "is",
        "only",
        "no",
        "cannot",
        "not",
        "needs",
        "larger",
        "invalid",
        "missing",
        "duplicate",
        "more",
        "can",
        "the",
        "one",
        "soft",
        "refers",
        "expands",
        "keys",
        "accepted",
        "accepted_range",
        "accepted_values",
        "at",
        "check",
        "column",
        "declare",
        "declares",
        "dependency",
        "has",
        "min_value",
        "module",
        "pattern",
        "pipeline",
        "relationships",
        "schema",
        "sql",
        "table",
        "top",
        "empty",
    }
)  # tests/unit/test_redact.py checks every reason a ConfigError is given starts with one


# a config error's key path ends the text before its reason: "file:LINE: " then the path (steps[2].params.x)
# read backwards from the key's end: the path, then what leads it (file:LINE: , the start, or a space)
_PATH_BACK, _LINE_BACK = re.compile(r"[\w.\[\]-]*+"), re.compile(r" :\d+:")


def _config_key(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` ends the key of a config error (``f.yaml:3: steps[2].token: unknown key``,
    ``f.yaml:3: api_token: must be ...``): a key path with a ``.`` or ``]``, or one right after
    ``file:line:``."""
    # (read backwards: a search anchored at the end tried each of 300 characters, 127 ms for 64 KB of keys)
    back = text[max(0, start - 300) : end][::-1]
    k = _matched_to(_PATH_BACK, back, 0)
    path, lead = back[:k], back[k:]
    if _LINE_BACK.match(lead):
        return True
    return (not lead or lead[0].isspace()) and any(c in path for c in ".]")


def apply(text: str, found: Callable[[str], None] | None = None) -> str:
    """``text`` with every shape of the module's table replaced by ``***``; ``found(value)`` gets each value.

    Every shape is looked for in the text as given, and the spans they find are replaced together at the end
    (overlapping ones as one ``***``): a shape's match never hides another's context (``bearer`` before
    ``redis-cli -a pw`` takes ``redis-cli`` as its token, and the ``-a`` password still goes).
    """
    return replaced(text, spans(text, found))


def spans(text: str, found: Callable[[str], None] | None = None) -> list[Span]:
    """The ``(start, end)`` spans of ``text`` :func:`apply` replaces (unsorted, may overlap); ``found`` as there.

    The rules of :mod:`~foss_supervisor.base.secretforms` (``FORMS``) are read after this module's, each
    search going on from the value it read."""

    def note(value: str) -> None:
        if found is not None:
            found(value)

    def whole(m: re.Match[str]) -> list[Span]:
        note(m.group(0))
        return [m.span()]

    def secret(m: re.Match[str]) -> list[Span]:
        for group, value in m.groupdict().items():
            if value is not None and group.startswith("secret"):
                if value == REDACTED:
                    return []
                note(value)
                return [m.span(group)]
        return []

    def url(m: re.Match[str]) -> list[Span]:
        user, colon, password = m.group("userinfo").partition(":")
        note(password if colon else (user if len(user) >= 16 else ""))
        start, end = m.span("userinfo")
        return [(start + len(user) + 1, end) if colon else (start, end)]

    def authorization(m: re.Match[str]) -> list[Span]:
        value = m.group("secret").rstrip()
        if value == REDACTED:
            return []
        note(value)
        return [(m.start("secret"), m.start("secret") + len(value))]

    def basic(m: re.Match[str]) -> list[Span]:
        body = m.group("secret").rstrip("=").replace("-", "+").replace("_", "/")
        try:
            decoded = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        except (binascii.Error, ValueError):
            return []

        plain = m.group("head")[:4].lower() == "auth"  # AUTH PLAIN: [authzid]\0user\0password
        if (b"\0" if plain else b":") not in decoded:
            return []
        note(m.group("secret"))
        password = decoded.rpartition(b"\0")[2] if plain else decoded.partition(b":")[2]
        note(password.decode("utf-8", "replace"))
        return [m.span("secret")]

    def inline(m: re.Match[str]) -> list[Span]:
        name, sep, value = m.group("name"), m.group("sep"), m.group("value")
        resume[0] = m.start("value")  # a harmless name's value may hold a secret one's name
        if _HEADER_NAME.fullmatch(name) and sep.strip():  # the header's rule is there
            # (it reads "authorization: ..." and "=..."; "--authorization VALUE", a flag, is this rule's)
            return []
        if not looks_secret(name.lstrip("-")) or (not sep.strip() and not name.startswith("-")):
            return []
        start, end = m.span("value")
        if value[0] in "|>" and _BLOCK.match(m.string, end):  # a block scalar: its lines below, more indented
            end = _indented_to(m.string, m.start(), end)
            value = m.string[start:end]
        elif len(value) == 1 and value not in "\"'":  # a bare value: to its end; on the lines below the
            # key (password:\n  - pw): every line of them more indented than the key (a YAML list, a scalar)
            end = _indented_to(m.string, m.start(), start) if "\n" in sep else _matched_to(_BARE, m.string, start)
            value = m.string[start:end]

        resume[0] = _nested_start(m.string, start, end)
        if value == REDACTED:
            return []
        if (
            sep.startswith(":")
            and value.lower() in REASON_WORDS
            and _config_key(m.string, m.start("name"), m.end("name"))
        ):
            return []  # a config error's key: reason
        if (opening := _OPENING.match(value)) is not None:  # the quotes stay: "name": "***"
            start += opening.end()
            quote = opening.group(0).lstrip("bBrRuU")
            end -= len(quote) if len(value) >= opening.end() + len(quote) and value.endswith(quote) else 0

        note(m.string[start:end])
        return [(start, end)]

    def cookie(m: re.Match[str]) -> list[Span]:
        value = m.group("secret").rstrip()
        words = value.split(maxsplit=1)
        if not words or value == REDACTED:
            return []
        if words[0].lower() in REASON_WORDS and _config_key(m.string, *m.span("name")):
            return []  # a config error's key: reason (headers.Cookie: must be a string)
        note(value)
        return [(m.start("secret"), m.start("secret") + len(value))]

    out: list[Span] = []
    resume = [0]
    for pattern, read in (
        (_PEM, whole),
        (_TOKEN, whole),
        (_WEBHOOK, secret),
        (_URL, url),
        (_AUTHORIZATION, authorization),
        (_COOKIE, cookie),
        (_BEARER, secret),
        (_BASIC, basic),
        (_ORACLE, secret),
        (_PROSE, secret),
        (_INLINE, inline),
    ):
        pos = 0
        while (m := pattern.search(text, pos)) is not None:
            out += read(m)
            pos = max(resume[0], m.start() + 1) if pattern is _INLINE else _resume(m)
    for pattern, reader in FORMS:  # markup, SQL, tools' flags, encoded names (secretforms)
        pos = 0
        while (m := pattern.search(text, pos)) is not None:
            for start, end in reader(m):
                note(text[start:end])
                out.append((start, end))
            pos = _resume(m)
    return out


def _nested_start(text: str, start: int, end: int) -> int:
    """Where, in a secret's value ``text[start:end]`` (replaced whole), a name may begin whose value reads on
    past ``end`` (``token=password= pw``, ``token=--password pw``, ``token=password=b'p w'``): the last name
    in it, before separators only. One before it has its value inside this one: searching again from each
    name in ``token=token=token=...`` read the rest of the line again each time (quadratic)."""
    back = text[start:end][::-1]
    k = _matched_to(_PREFIX_BACK, back, 0) if text[end : end + 1] in ("'", '"') else 0
    return end - _matched_to(_NAME_BACK, back, _matched_to(_SEPS_BACK, back, k))


def _indented_to(text: str, key: int, pos: int) -> int:
    """The end of the line of ``pos`` and of the lines after it more indented than the line of ``key`` (blank
    lines among them): a YAML value below its key. Trailing blank lines are left."""
    home = text.rfind("\n", 0, key) + 1
    indent = _matched_to(_INDENT, text, home) - home
    last = end = text.find("\n", pos)
    if end < 0:
        return len(text)
    while end >= 0:
        following = text.find("\n", end + 1)
        stop = len(text) if following < 0 else following
        depth = _matched_to(_INDENT, text, end + 1) - end - 1
        if depth < stop - end - 1:  # not blank
            if depth <= indent:
                break
            last = stop
        end = following
    return last


def _matched_to(pattern: re.Pattern[str], text: str, pos: int) -> int:
    """Where ``pattern`` (one that matches the empty string) matched at ``pos`` ends."""
    m = pattern.match(text, pos)
    return pos if m is None else m.end()


# where a shape's next match may begin: at the value it just read, which may be the next one's head
# (``redis-cli -a redis-cli -a pw``, ``--keyboard password=pw``); a whole token, a key block and a header's
# value (to the end of its line) cover whatever starts inside them
_WHOLE_LINE = frozenset({_PEM, _TOKEN, _WEBHOOK, _AUTHORIZATION, _COOKIE})


def _resume(m: re.Match[str]) -> int:
    """Where to search again after ``m``: the start of the value it read (past ``m``'s start), else its end."""
    if m.re not in _WHOLE_LINE:
        for group in (m.lastgroup, *m.re.groupindex):  # a value is most often its branch's last group
            if group is None:
                continue
            if group.startswith(("secret", "userinfo", "value")) and m.start(group) > m.start():
                return m.start(group)
    return max(m.end(), m.start() + 1)


def replaced(text: str, cuts: list[Span]) -> str:
    """``text`` with each span replaced by ``***``; spans that overlap or touch go as one."""
    if not cuts:
        return text
    merged: list[list[int]] = []
    for start, end in sorted(cuts):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    parts: list[str] = []
    pos = 0
    for start, end in merged:
        parts += (text[pos:start], REDACTED)
        pos = end
    parts.append(text[pos:])
    return "".join(parts)
