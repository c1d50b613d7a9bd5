"""The shapes a secret takes in a language's syntax: rows of the table of
:mod:`~foss_supervisor.base.secretshapes` (which applies them with the others), kept here by kind.

============================  =====================================================================
markup                        ``<password>***</password>``, ``<wsse:Password ...>***</...>``: an element whose
                              tag names a secret; a pair whose key attribute names one: ``<add key="DbPassword"
                              value="***"/>``, ``<property name="password" value="***"/>``,
                              ``<entry key="db.password">***</entry>``, ``{"name": "DB_PASSWORD", "value": "***"}``,
                              ``{name: DB_PASSWORD, value: ***}`` (a Kubernetes env list)
SQL that sets a password      ``PASSWORD '***'`` (``WITH [ENCRYPTED] PASSWORD``, ``LOGIN PASSWORD``, an ``OPTIONS``
                              list's), ``PASSWORD('***')``, ``PASSWORD = N'***'``, ``IDENTIFIED [WITH plugin]
                              BY '***'``, ``USER u IDENTIFIED BY ***`` (Oracle's bare word),
                              ``SET PASSWORD FOR u = '***'``
tools' password flags         a table: ``mysql -p***`` (the mysql family, sshpass), ``redis-cli -a ***``,
                              ``docker|podman|... login -p ***``, ``ldap* -w ***``, ``ldappasswd -a|-s ***``,
                              ``zip|unzip -P ***``, ``7z -p***``, ``mongo* -p ***``, ``sqlcmd|bcp -P ***``,
                              ``mosquitto_* -P ***``, ``openssl -k ***``, ``xfreerdp /p:***``,
                              ``smbclient|net -U user%***``, ``ipmitool -P ***``, ``cqlsh|racadm|... -p ***``,
                              ``plink|nodetool -pw ***``, ``lftp -u user,***``, ``ssh-keygen -N|-P ***``,
                              ``snmpwalk|snmpget|... -c ***`` (and SNMPv3's ``-A|-X ***``);
                              positional: ``htpasswd -b[c] [file] user ***``, ``rabbitmqctl add_user u ***``,
                              ``mysqladmin password ***``; and ``-u user:***`` of any tool (curl, wget...)
encoded or nested names       a query's or a form's name percent-encoded (``pass%77ord=***``, ``api%5Fkey=***``)
                              or nested in brackets (``user[password]=***``, ``user%5Bpassword%5D=***``,
                              PHP's ``print_r``: ``[password] => ***``), read decoded
directives                    Dockerfile's ``ENV DB_PASSWORD ***``, redis' ``requirepass ***``/``masterauth ***``
                              and ACL ``ACL SETUSER u on >***`` (a ``users.acl`` line ``user u on >***``),
                              a ``.netrc``'s ``machine HOST login USER password ***``
============================  =====================================================================

Each rule is a regex and a reader that returns the spans of ``text`` to replace (what they hold is learned).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import unquote_plus

from foss_supervisor.base.secretnames import NAME_WORDS, looks_secret

__all__ = ["FORMS", "TOOL", "Span"]

Span = tuple[int, int]
_REDACTED = "***"

# ---------------------------------------------------------------------------------------------- markup

# <password>pw</password> (the tag read once: a name word in it, else no reader is asked)
_MARKUP = re.compile(
    rf"<(?P<tag>(?=[\w.:-]*?(?:{NAME_WORDS}))[A-Za-z_][\w.:-]*+)(?:\s[^<>]*)?>(?P<secret>[^<]+)</(?P=tag)\s*>",
    re.I,
)
# key="NAME" [other attributes] value="v" | key="NAME" ...>v< | "name": "NAME", "value": "v"
# (the other attributes are never a key=: a line of key="password" key="password"... is read once)
_PAIR = re.compile(
    r"(?=[\"'kn])(?:\b(?:key|name)\s*=\s*(?P<q>[\"'])(?P<name>[^\"'<>\s]+)(?P=q)"
    r"(?:\s+(?!(?:key|name)\s*=)[\w:.-]+\s*=\s*(?:\"[^\"<>\n]*\"|'[^'<>\n]*'))*?"
    r"(?:\s+value\s*=\s*(?P<vq>[\"'])(?P<secret>[^\"'\n]*)(?P=vq)|\s*>(?P<secret2>[^<>]+)<)"
    r"|(?P<kq>[\"']?)\b(?:key|name)(?P=kq)\s*:\s*(?P<nq>[\"']?)(?P<name2>[^\"'\s,{}]+)(?P=nq)\s*,\s*"
    r"(?P<wq>[\"']?)value(?P=wq)\s*:\s*(?:(?P<open>[\"'])(?P<secret3>[^\"'\n]*)(?P=open)|(?P<secret4>[^\s\"',{}]+)))",
    re.I,
)

# ---------------------------------------------------------------------------------------------- SQL

# a quoted value after PASSWORD, PASSWORD(, PASSWORD =, IDENTIFIED [WITH plugin] BY|AS, SET PASSWORD FOR u =;
# a bare one after IDENTIFIED BY only where a user is named before it (CREATE USER u IDENTIFIED BY pw: not the
# prose "identified by pid 42"); a column named password (CREATE TABLE t (password text)) is no value
_SQL = re.compile(
    r"(?=[piurtsgc])(?:\bpassword(?:\s*=\s*|\s*\(\s*|\s+)(?=[EeNn]?['\"])"
    r"|\bidentified\s+(?:with\s+\S+\s+)?(?:by|as)\s+(?:(?:password|values)\s+)?(?=[EeNn]?['\"])"
    r"|\b(?:user|role|connect\s+to)\s+(?:if\s+not\s+exists\s+)?[^\s;,]+\s+identified\s+by\s+(?!(?:random|values|password)\b)"
    # MySQL 5's GRANT ... TO u IDENTIFIED BY pw, in the same statement (read up to the next GRANT: linear)
    r"|\bgrant\b(?:(?!\bgrant\b)[^;\n])*?\bto\s+[^\s;,]+\s+identified\s+by\s+(?!(?:random|values|password)\b)"
    r"|\bset\s+password\s+for\s+[^\s=]+\s*=\s*(?:password\s*\(\s*)?)"
    r"(?:[EeNn]?(?P<q>['\"])(?P<secret>(?:(?!(?P=q))[^\n]|(?P=q){2})*)(?P=q)|(?P<secret2>[^\s'\";,)]+))",
    re.I,
)

# ---------------------------------------------------------------------------------------------- tools

# a value as a shell takes it: bare or quoted (-p'pw', -a "pw", -u 'bob:pw', -ubob:"pw")
_ARG_VALUE = r"'[^'\n]*'|\"[^\"\n]*\"|[^\s'\";|&]+"
# the tools, and the flag (with what joins it to its value) that takes their password; a value that starts
# with a dash is the next flag (mongosh -p --authenticationDatabase admin prompts for the password)
_TOOL_FLAGS = (
    (r"mysqladmin", r"\s(?:password|passwd)\s+(?!-)"),  # mysqladmin -u root password NEW
    (r"mysql\w*|mariadb\w*|sshpass", r"\s-p\s?"),
    (r"redis-cli", r"\s-a\s+"),
    (r"(?:docker|podman|nerdctl|buildah|skopeo|oras|az|helm\s+registry)\s+login", r"\s-p\s+(?!-)"),
    (r"ldappasswd", r"\s-[was]\s+(?!-)"),
    (r"ldap(?!passwd\b)\w+", r"\s-w\s+(?!-)"),
    (r"zip|unzip|zipcloak", r"\s-P\s+(?!-)"),
    (r"7z[ar]?", r"\s[\"']?-p(?=[^\s\"'])"),
    (r"mongo\w*", r"\s-p\s+(?!-)"),
    (r"sqlcmd|bcp|osql", r"\s-P\s*(?!-)"),
    (r"mosquitto_\w+", r"\s-P\s+(?!-)"),
    (r"openssl", r"\s-k\s+(?!-)"),
    (r"(?:x|wl|sdl-)?freerdp3?", r"\s/p:"),
    (r"smbclient|rpcclient|smbcacls|smbget|net", r"\s(?:-U|--user=?)\s*[\"']?[^\s%'\"]*%"),
    (r"htpasswd", r"\s-(?=[a-zA-Z]*b)(?![a-zA-Z]*n)[a-zA-Z]+\s+\S+\s+\S+\s+"),  # -b[c] FILE USER password
    (r"htpasswd", r"\s-(?=[a-zA-Z]*b)(?=[a-zA-Z]*n)[a-zA-Z]+\s+\S+\s+"),  # -nb USER password
    (r"rabbitmqctl", r"\s(?:add_user|change_password)\s+\S+\s+"),
    (r"ssh-keygen", r"\s-[NP]\s*(?!-)"),
    (r"ipmitool", r"\s-P\s+(?!-)"),
    (r"racadm|cqlsh|cypher-shell|rabbitmqadmin|rdesktop|hdbsql", r"\s-p\s+(?!-)"),
    (r"nodetool|plink|pscp|psftp", r"\s-pw\s+(?!-)"),
    (r"lftp", r"\s-u\s+[\"']?[^\s,'\"]*,"),
)
# where a word may start a tool of the table (their first letters): a search costs a fifth over text with none
_TOOL_START = r"(?<!\w)(?=[abcdfhilmnoprsuwxz7])"
#: a tool of the table, or the -u of any tool: a command held as a list without one has no shape across its items
_SNMP_TOOL = r"snmp(?!(?:trap)?d\b)\w*+"
TOOL = re.compile(
    rf"{_TOOL_START}(?:{'|'.join(tools for tools, _ in _TOOL_FLAGS)}|{_SNMP_TOOL})\b"
    r"|(?<!\S)(?:-u|-U|--user|--proxy-user)"
)
_ARGUMENT = re.compile(
    # (what lies between a tool and its flag is read up to the next such tool: "mysql mysql mysql ..." was
    # quadratic)
    # (tried at a word that may start a tool, and at a dash)
    rf"(?:{_TOOL_START}|(?<!\S)(?=-))(?:"
    + "|".join(
        rf"(?P<head{i}>\b(?:{tools})\b(?:(?!\b(?:{tools})\b)[^\n;|&])*?{flag})(?P<secret{i}>{_ARG_VALUE})"
        for i, (tools, flag) in enumerate(_TOOL_FLAGS)
    )
    # -u user:pw of any tool (curl's -U/--proxy-user too)
    + r"|(?P<headu>(?<!\S)(?:-u|-U|--user|--proxy-user)(?:[\s=]+|(?=[^\s=-]))[\"']?[^\s:'\"]*:)"
    rf"(?P<secretu>{_ARG_VALUE}))"
)

# net-snmp's tools (snmpwalk, snmpget, snmpbulkwalk, snmptrap...): -c COMMUNITY (v1, v2c), and SNMPv3's -A and -X
# passphrases, every one of them in the command (the table above takes one flag a tool); not the daemons snmpd and
# snmptrapd, whose -c is a config file
_SNMP = re.compile(rf"\b{_SNMP_TOOL}(?P<args>[^\n;|&]*+)")
_SNMP_FLAG = re.compile(rf"(?<!\S)-[cAX](?:\s+(?!-)|(?=[^\s-]))(?P<secret>{_ARG_VALUE})")

# ---------------------------------------------------------------------------------------------- directives

# a name and its value a space apart, where a file's syntax says so: Dockerfile's ENV NAME value (the classic
# builder prints "Step 3/9 : ENV DB_PASSWORD pw"), redis.conf's (and CONFIG SET's) requirepass/masterauth, a
# .netrc's machine HOST [login USER] password pw, "machine" starting a line ("ssh: machine web1 password
# authentication failed" is prose)
_DIRECTIVE = re.compile(
    r"(?=[ErmaAu])(?:\bENV\s+(?P<name>[A-Za-z_][\w.-]*)[ \t]+(?![=\s])"
    r"|\b(?:requirepass|masterauth)\s+|(?<![^\n])machine\s+\S+\s+(?:login\s+\S+\s+)?password\s+)"
    rf"(?P<secret>{_ARG_VALUE})"
    # redis' ACL: ACL SETUSER u [rules] >pw, a users.acl line "user u on|off [rules] >pw" (a rule is one word;
    # the first >pw of the command or line, read once from the name)
    r"|(?:\b(?i:acl\s+setuser)|(?<![^\n])user(?=[ \t]+\S+[ \t][^\n]*\b(?:on|off)\b))[ \t]+\S+(?:[ \t]+[^\s>]\S*)*?"
    r"[ \t]+>(?P<secret2>\S+)"
)

# ---------------------------------------------------------------------------------------------- names

# a name with a %XX or a [ in it (read once from its start), = or =>, a value (bare, up to an = but a base64
# value's padding: a=a=a=... is read once)
_PARAM = re.compile(
    r"(?<![\w.%\[\]+-])(?=[\w.+-]*+[%\[])(?P<name>[\w.%\[\]+-]++)(?:=|\s*=>\s*)"
    r"(?:(?P<q>['\"])(?P<secret>[^'\"\n]*)(?P=q)|(?P<secret2>[^\s&#'\";,=]++(?:=++(?![^\s&#'\";,]))?))"
)
_NESTING = re.compile(r"[\[\]]")


def _first_secret(m: re.Match[str]) -> Span | None:
    """The span of ``m``'s ``secret*`` group that matched (None if it is empty or ``***``): each rule's value is
    the last group of its branch (``lastgroup``: no dict of the tools' table's 30 groups made for each match)."""
    for group in (m.lastgroup, *m.re.groupindex):
        if group is not None and group.startswith("secret") and m.start(group) >= 0:
            start, end = m.span(group)
            while start < end and m.string[start].isspace():
                start += 1
            while end > start and m.string[end - 1].isspace():
                end -= 1
            value = m.string[start:end]
            return None if start == end or value in (_REDACTED, "''", '""') else (start, end)
    return None  # (never: a match of these rules has a value)


def _markup(m: re.Match[str]) -> list[Span]:
    span = _first_secret(m)
    return [span] if span is not None and looks_secret(m.group("tag")) else []


def _pair(m: re.Match[str]) -> list[Span]:
    span = _first_secret(m)
    return [span] if span is not None and looks_secret(m.group("name") or m.group("name2")) else []


def _always(m: re.Match[str]) -> list[Span]:
    span = _first_secret(m)
    return [] if span is None else [span]


def _snmp(m: re.Match[str]) -> list[Span]:
    start = m.start("args")
    found = (_first_secret(f) for f in _SNMP_FLAG.finditer(m.group("args")))
    return [(start + a, start + b) for a, b in (span for span in found if span is not None)]


def _directive(m: re.Match[str]) -> list[Span]:
    span = _first_secret(m)
    name = m.group("name")
    return [span] if span is not None and (name is None or looks_secret(name)) else []


def _param(m: re.Match[str]) -> list[Span]:
    """A name decoded (``pass%77ord`` is ``password``); of a nested one (``user[password]``), its last part."""
    parts = [p for p in _NESTING.split(unquote_plus(m.group("name"))) if p and not p.isdigit()]
    span = _first_secret(m)
    return [span] if span is not None and parts and looks_secret(parts[-1]) else []


#: the rules of this module, in the order :func:`~foss_supervisor.base.secretshapes.spans` applies them
FORMS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], list[Span]]], ...] = (
    (_MARKUP, _markup),
    (_PAIR, _pair),
    (_SQL, _always),
    (_ARGUMENT, _always),
    (_SNMP, _snmp),
    (_DIRECTIVE, _directive),
    (_PARAM, _param),
)
