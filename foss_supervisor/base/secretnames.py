"""The names that say a value is a secret: :func:`looks_secret`, which the redaction's rules and its walk of data
ask of every key, flag, header and parameter name (``DB_PASSWORD``, ``apiKey``, ``X-Auth-Token``, ``--db-pass``).

Secret: ``*PASSWORD``, ``*PASS``, ``*PWD``, ``*TOKEN``, ``*SECRET*``, ``*CREDENTIAL*``, ``*CREDS``, ``*PASSPHRASE``,
``*PRIVATE*``, ``*COOKIE``, ``*AUTH*``, ``*DSN``, ``*SIGNATURE``, ``sig``, a session id (``*SESSIONID``,
``*SESSID``, ``session_id``), and ``X_KEY`` for any ``X`` but the keys
of data (``sort_key``, ``primary_key``, ``partition_key``...). Not: ``key`` alone, ``keyboard``, ``author``,
``monkey``, ``pass_rate``.
"""

from __future__ import annotations

import functools
import re

__all__ = ["NAME_WORDS", "looks_secret"]


# searched in the name lowercased with separators removed: PGPASSWORD, apiKey, X-Api-Key, client_secret
_SECRET_IN_NAME = re.compile(
    r"passw(?:or)?d|passphrase|secret|token|credential|cookie|authoriz|connectionstring|dsn|signature"
    r"|(?:api|access|private|signing|encryption|master|client|session|auth|license|subscription|webhook|ssh)key"
    r"|sess(?:ion)?id$"  # a session id, at the name's end: jsessionid, PHPSESSID, session_id, ASP.NET_SessionId
)  # (not SESSION_IDLE_TIMEOUT nor session_identity: what a rule finds under such a name is learned everywhere)
_SECRET_WORDS = frozenset({"pwd", "pw", "auth", "jwt", "bearer", "otp", "creds", "cred", "private", "sig"})
# the keys of data, not of locks: X_KEY is secret for every other X
_DATA_KEYS = frozenset(
    {
        "sort",
        "primary",
        "foreign",
        "partition",
        "cache",
        "dedupe",
        "dedup",
        "group",
        "join",
        "unique",
        "row",
        "lookup",
        "index",
        "idempotency",
        "routing",
        "shard",
        "composite",
        "natural",
        "surrogate",
        "business",
        "public",
        "hot",
        "map",
        "dict",
        "hash",
        "order",
        "cluster",
        "distribution",
        "bucket",
        "object",
        "s3",
        "record",
        "message",
        "event",
        "key",
        "sharding",
        "search",
        "short",
    }
)
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


@functools.lru_cache(maxsize=4096)
def looks_secret(name: str) -> bool:
    """True for names like DB_PASSWORD, DB_PASS, API_KEY, APP_KEY, TLS_KEY, SMTP_CREDS, X-Auth-Token.

    Not for ``key`` alone, ``sort_key``, ``pass_rate``, ``keyboard``, ``author`` or ``monkey``.
    """
    flat = re.sub(r"[^a-z0-9]", "", name.lower())
    if _SECRET_IN_NAME.search(flat) or flat.endswith(("pass", "pwd")):  # SMTPPASS, MYSQL_PWD (and --bypass)
        return True
    words = [w.lower() for w in _WORD.findall(name)]
    if len(words) >= 2 and words[-1] == "key" and words[-2] not in _DATA_KEYS:
        return True
    return bool(words) and (words[-1] == "pass" or any(w in _SECRET_WORDS for w in words))


#: the words of a secret's name as a regex alternation (case-insensitive): a superset of what :func:`looks_secret`
#: finds in a name, for the cheap pre-checks of the rules that read a name (``TRIGGER``, a tag's name)
NAME_WORDS = (
    r"pass|pwd|pw|secret|token|credential|creds?|cookie|auth|key|dsn|connection|jwt|otp|bearer|sig|private"
    r"|sess(?:ion)?[\W_]?id"
)
