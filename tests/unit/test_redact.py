"""The one redaction (foss_supervisor.base.redact): every shape a secret takes, in any string and at any depth of
any data; property tests generate each shape with generated secrets around generated text."""

from __future__ import annotations

import base64
import json
import re
import string
from pathlib import Path
from typing import Any

import pytest
from helpers import examples
from helpers.sources import package_sources
from helpers.strategies import KEY_LINE, LOG_TEXT, SECRET, SECRET_NAME
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from foss_supervisor.base.redact import REDACTED, Redactor, looks_secret
from foss_supervisor.config import parse_config
from foss_supervisor.errors import ConfigError


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["app", "--password=hunter2"], ["app", "--password=***"]),
        (["app", "--api-token", "abc123", "--port", "80"], ["app", "--api-token", "***", "--port", "80"]),
        (["env", "DB_PASSWORD=hunter2", "app"], ["env", "DB_PASSWORD=***", "app"]),
        (["psql", "postgres://app:hunter2@db:5432/x"], ["psql", "postgres://app:***@db:5432/x"]),
        (["sh", "-c", "exec app --secret-key hunter2 --port 80"], ["sh", "-c", "exec app --secret-key *** --port 80"]),
        (["sh", "-c", "AWS_SECRET_ACCESS_KEY='a b' app"], ["sh", "-c", "AWS_SECRET_ACCESS_KEY='***' app"]),
        (["app", "--keyboard-layout=us", "--port", "80"], ["app", "--keyboard-layout=us", "--port", "80"]),
        (["app", "--verbose", "file.txt"], ["app", "--verbose", "file.txt"]),
    ],
)
def test_secrets_in_command_lines_are_replaced(argv: list[str], shown: list[str]) -> None:
    assert Redactor().data(argv) == shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgres://user:pw-in-env-1@db/x", "postgres://user:***@db/x"),
        ("redis://:pw-in-env-2@cache:6379/0", "redis://:***@cache:6379/0"),
        ("amqp://guest:pw-in-env-3@mq//", "amqp://guest:***@mq//"),
        ("git clone https://ghp_token0123@github.com/a/b", "git clone https://***@github.com/a/b"),
        ("jdbc:postgresql://u:p%40ss@h/db", "jdbc:postgresql://u:***@h/db"),
        ("host=db port=5432 password=s3cr3t dbname=x", "host=db port=5432 password=*** dbname=x"),
        ("Server=db;Password=s3cr3t;Database=x", "Server=db;Password=***;Database=x"),
        ("POST https://hooks.example/x?access_token=abc123&a=1", "POST https://hooks.example/x?access_token=***&a=1"),
        ("curl -H 'Authorization: Bearer abc.def-123'", "curl -H 'Authorization: Bearer ***'"),
        ("sent Bearer abcdef123456 upstream", "sent Bearer *** upstream"),
        ("Basic " + base64.b64encode(b"bob:hunter2").decode(), "Basic ***"),
        ("key AKIAIOSFODNN7EXAMPLE used", "key *** used"),
        ("tok eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl end", "tok *** end"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----\nok", "***\nok"),
        ("cut -----BEGIN PRIVATE KEY-----\nMIIEvQ", "cut ***"),
        ('{"password": "hunter2", "user": "bob"}', '{"password": "***", "user": "bob"}'),
        ("{'api_key': 'abc'}", "{'api_key': '***'}"),
        ("slack xoxb-1234567890-abcdef and github_pat_11ABCDEFGHIJKLMNOPQRSTUV", "slack *** and ***"),
        # what the second red team found printed in clear (tests/unit/test_secret_shapes.py generates each kind)
        ("<password>pw</password>", "<password>***</password>"),
        ("<Password>pw</Password>", "<Password>***</Password>"),
        ("<db-password>pw</db-password>", "<db-password>***</db-password>"),
        ('<add key="DbPassword" value="pw"/>', '<add key="DbPassword" value="***"/>'),
        ("ALTER USER bob WITH PASSWORD 'pw'", "ALTER USER bob WITH PASSWORD '***'"),
        ("CREATE USER bob IDENTIFIED BY pw", "CREATE USER bob IDENTIFIED BY ***"),
        ("CREATE USER bob IDENTIFIED BY 'pw'", "CREATE USER bob IDENTIFIED BY '***'"),
        ("SET PASSWORD FOR bob = 'pw'", "SET PASSWORD FOR bob = '***'"),
        ("CREATE ROLE r LOGIN PASSWORD 'pw'", "CREATE ROLE r LOGIN PASSWORD '***'"),
        ("docker login -u bob -p pw", "docker login -u bob -p ***"),
        ("docker login -u bob --password pw", "docker login -u bob --password ***"),
        ("ldapsearch -w pw", "ldapsearch -w ***"),
        ("zip -P pw a.zip", "zip -P *** a.zip"),
        ("unzip -P pw a.zip", "unzip -P *** a.zip"),
        ("7z a -ppw a.7z", "7z a -p*** a.7z"),
        ("openssl rsa -passin pass:pw", "openssl rsa -passin pass:***"),
        ("keytool -list -storepass pw", "keytool -list -storepass ***"),
        ("Bearer 'pw'", "Bearer '***'"),
        ('Bearer "pw"', 'Bearer "***"'),
        ("Authorization: Bearer 'pw'", "Authorization: Bearer '***'"),
        ("GET /a;jsessionid=0123abcd HTTP/1.1", "GET /a;jsessionid=*** HTTP/1.1"),
        ("PHPSESSID=0123abcd sessionid=0123abcd session_id=0123abcd", "PHPSESSID=*** sessionid=*** session_id=***"),
        ("GET /x?pass%77ord=pw&a=1", "GET /x?pass%77ord=***&a=1"),
        ("GET /x?api%5Fkey=pw&a=1", "GET /x?api%5Fkey=***&a=1"),
    ],
)
def test_each_shape_of_a_secret_in_any_string(text: str, shown: str) -> None:
    assert Redactor().text(text) == shown


@pytest.mark.parametrize(
    "text",
    [
        "curl https://example.org/path?q=1 --retry 3 fruit=banana",
        "Basic authentication is off",
        "pass_rate=0.97 sort_key=id keyboard=us author: ann",
        "ssh://example.org:22/repo and user@example.org",
        "exited with code 1 after 0.5s; RUNNING, health unknown",
    ],
)
def test_plain_words_and_urls_without_credentials_are_kept(text: str) -> None:
    assert Redactor().text(text) == text


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("DB_PASSWORD", True),
        ("PGPASSWORD", True),
        ("DB_PASS", True),
        ("apiKey", True),
        ("X-Api-Key", True),
        ("X-Auth-Token", True),
        ("Authorization", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("SENTRY_DSN", True),
        ("client_secret", True),
        ("session_cookie", True),
        ("secrets", True),
        ("DB_PWD", True),
        ("key", False),
        ("sort_key", False),
        ("pass_rate", False),
        ("keyboard", False),
        ("author", False),
        ("name", False),
        ("passenger", False),
        ("monkey", False),
    ],
)
def test_secret_looking_names(name: str, secret: bool) -> None:
    assert looks_secret(name) is secret


def test_values_under_secret_keys_at_any_depth_and_shared_parts_kept() -> None:
    plain = {"state": "RUNNING", "pid": 42, "key": ["id"], "pass_rate": 0.5}
    reply = {
        "programs": [{"env": {"DB_PASSWORD": "hunter22", "PORT": "80", "API_TOKEN": 12345}, **plain}],
        "hooks": [{"headers": {"Authorization": "Bearer abc", "X-Trace": "on"}}],
        "credentials": {"aws": {"id": "x-1234"}, "list": ["a-123", "b-456"]},
        "plain": plain,
    }
    out = Redactor().data(reply)
    assert out["programs"][0]["env"] == {"DB_PASSWORD": REDACTED, "PORT": "80", "API_TOKEN": REDACTED}
    assert out["hooks"][0]["headers"] == {"Authorization": REDACTED, "X-Trace": REDACTED}  # every header value
    assert out["credentials"] == {"aws": {"id": REDACTED}, "list": [REDACTED, REDACTED]}
    assert out["plain"] is plain  # nothing to redact: the very object (shared replies are not copied)
    assert reply["programs"][0]["env"]["DB_PASSWORD"] == "hunter22"  # the input is never changed


def test_learned_literals_are_redacted_wherever_they_appear() -> None:
    redactor = Redactor()
    config = {
        "secrets": ["operator-listed-1"],
        "programs": {
            "api": {
                "env": {"DATABASE_URL": "postgres://u:url-password@db/x", "API_KEY": "key-value-9"},
                "command": ["app", "--token", "flag-value-7"],
            }
        },
        "hooks": [{"headers": {"Authorization": "Bearer header-token-5"}}],
        "short": {"PIN": "42"},
    }
    assert redactor.learn(config) == 6  # the header whole, and its token alone
    line = "cwd /srv/operator-listed-1 pw url-password k key-value-9 t flag-value-7 h header-token-5 pin 42"
    assert redactor.text(line) == "cwd /srv/*** pw *** k *** t *** h *** pin 42"
    redactor.learn({"secrets": ["second-value"]})  # a reload adds; nothing learned is forgotten
    assert redactor.text("operator-listed-1 second-value") == "*** ***"


# ------------------------------------------------------------------------------------------ the whole class

NOISE = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30)


@st.composite
def shaped(draw: st.DrawFn) -> tuple[str, str]:
    """(a text carrying a secret in one of the shapes of redact.py, that secret)."""
    secret = draw(SECRET)
    scheme = draw(st.sampled_from(["postgres", "redis", "amqp", "mongodb+srv", "https", "mysql"]))
    user = draw(st.sampled_from(["", "user", "app_1"]))
    name = draw(SECRET_NAME)
    token_secret = "".join(c for c in secret if c.isalnum()).ljust(16, "7")
    forms = [
        f"{scheme}://{user}:{secret}@db.example:5432/x",
        f"{name}={secret}",
        f"{name}: {secret}",
        f'"{name}": "{secret}"',
        f"--{name.lower()} {secret}",
        f"host=db {name.lower()}={secret} dbname=x",
        f"Authorization: Bearer {secret}",
        f"AKIA{token_secret.upper()[:16]}",
        f"eyJhbGciOiJub25lIn0.eyJ{token_secret}.{token_secret}",
        f"ghp_{token_secret * 3}",
        f"-----BEGIN EC PRIVATE KEY-----\n{secret}\n-----END EC PRIVATE KEY-----",
        "Basic " + base64.b64encode(f"bob:{secret}".encode()).decode(),
    ]
    index = draw(st.integers(0, len(forms) - 1))
    core = secret if index < 7 or index in (10, 11) else forms[index]
    return forms[index], core


def _plant(tree: Any, text: str, path: list[int]) -> Any:
    """``tree`` with ``text`` put somewhere in it (a dict value, a list item, or a string's middle)."""
    step = path[0] if path else 0
    if isinstance(tree, dict) and tree:
        key = sorted(tree)[step % len(tree)]
        return {**tree, key: _plant(tree[key], text, path[1:])}
    if isinstance(tree, list) and tree:
        i = step % len(tree)
        return [*tree[:i], _plant(tree[i], text, path[1:]), *tree[i + 1 :]]
    if isinstance(tree, str):
        cut = step % (len(tree) + 1)
        return f"{tree[:cut]} {text} {tree[cut:]}"
    return [tree, text]


KEY = st.text(string.ascii_lowercase, max_size=8).filter(lambda k: not looks_secret(k))
DATA = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | NOISE,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEY, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=examples(400))
@given(shaped(), DATA, st.lists(st.integers(0, 50), max_size=6))
@example(("--authorization 000000000A", "000000000A"), None, [])  # found by a random run: the header's name as a flag
def test_no_shape_of_secret_survives_anywhere_in_any_data(carried: tuple[str, str], data: Any, path: list[int]) -> None:
    text, secret = carried
    assume(secret not in json.dumps(data, ensure_ascii=False))  # elsewhere only a learned literal goes
    out = Redactor().data(_plant(data, text, path))
    assert secret not in json.dumps(out, ensure_ascii=False)


@settings(max_examples=examples(200))
@given(SECRET_NAME, SECRET, DATA)
def test_a_value_under_a_secret_key_goes_whole_at_any_depth(name: str, secret: str, data: Any) -> None:
    tree = {"outer": [data, {name: secret}], name: {"nested": [secret, {"deeper": secret}]}}
    out = Redactor().data(tree)
    assert secret not in json.dumps([out["outer"][1], out[name]])
    learned = Redactor()
    learned.learn(tree)  # a config holding it under that key: the same value elsewhere goes too
    assert secret not in json.dumps(learned.data([tree, f"in a log line: {secret}."]))


@settings(max_examples=examples(200))
@given(st.lists(SECRET, min_size=1, max_size=5, unique=True), NOISE, NOISE)
def test_listed_and_learned_literals_go_inside_any_text(secrets: list[str], before: str, after: str) -> None:
    redactor = Redactor()
    redactor.learn({"secrets": secrets})
    for secret in secrets:
        assert secret not in redactor.text(f"{before}{secret}{after}")  # no separator needed


# an alphabet no shape's trigger can spell (no s, k, t, p, w...): only the literals act on such text
PLAIN = "abcé日1"


@st.composite
def overlapping_literals(draw: st.DrawFn) -> tuple[str, list[str]]:
    """(a source text, literals cut from it): prefixes, suffixes and overlaps of each other by construction."""
    source = draw(st.text(PLAIN, min_size=6, max_size=30))
    cuts = st.tuples(st.integers(0, len(source) - 4), st.integers(4, 12))
    literals = {source[i : i + n] for i, n in draw(st.lists(cuts, min_size=1, max_size=30))}
    return source, sorted(literals)


@settings(max_examples=examples(200))
@given(overlapping_literals(), st.data())
def test_literals_go_leftmost_first_and_longest_at_a_place_however_many(
    carried: tuple[str, list[str]], data: Any
) -> None:
    """Many literals, prefixes and overlaps of each other, in text made of their pieces: replaced as a regex
    alternation of them, longest first, replaces them (the leftmost match, the longest there, then on after it)."""
    source, literals = carried
    redactor = Redactor()
    redactor.learn({"secrets": literals})
    oracle = re.compile("|".join(map(re.escape, sorted(literals, key=lambda v: (-len(v), v)))))
    pieces = st.sampled_from([source, *literals]).flatmap(lambda t: st.sampled_from([t, t[:3], t[1:], t[2:7]]))
    for _ in range(10):
        text = "".join(data.draw(st.lists(pieces | st.text(PLAIN, max_size=3), max_size=12)))
        assert redactor.text(text) == oracle.sub(REDACTED, text), text


@settings(max_examples=examples(100))
@given(DATA, st.integers(2, 6))
def test_a_document_repeated_teaches_what_it_teaches_once(data: Any, times: int) -> None:
    """Learning reads each distinct string once (a config repeats its interpreter's path in every command):
    the values learned are those of the document alone."""
    once, repeated = Redactor(), Redactor()
    assert repeated.learn([data] * times) == once.learn(data)
    text = json.dumps(data, ensure_ascii=False)
    assert repeated.text(text) == once.text(text)


@settings(max_examples=examples(200))
@given(DATA)
def test_redaction_keeps_the_shape_and_is_idempotent(data: Any) -> None:
    redactor = Redactor()
    once = redactor.data(data)
    assert redactor.data(once) == once

    def shape(value: Any) -> Any:
        if isinstance(value, dict):
            return {len(value): [shape(v) for v in value.values()]}
        if isinstance(value, list):
            return [shape(v) for v in value]
        return type(value).__name__ if not isinstance(value, str) else "str"

    assert shape(once) == shape(data)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("secrets: abcdefgh", "secrets: must be a list of at most 1000 strings of 4 to 4096 characters, got a str"),
        (
            "secrets: [abc]",
            "secrets[0]: must be a string of 4 to 4096 characters (not only '*', no NUL), got 3 characters",
        ),
        (
            "secrets: [abcdef, 12345678]",
            "secrets[1]: must be a string of 4 to 4096 characters (not only '*', no NUL), got int",
        ),
        (
            "secrets: ['****']",
            "secrets[0]: must be a string of 4 to 4096 characters (not only '*', no NUL), got 4 characters",
        ),
        (f"secrets: [{'x' * 4097}]", "got 4097 characters"),
    ],
)
def test_listed_secrets_are_checked_at_load_and_never_quoted_back(tmp_path: Path, value: str, reason: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(f"state_dir: {tmp_path}\n{value}\n", tmp_path / "config.yaml")
    assert "config.yaml:2: secrets" in str(refused.value) and reason in str(refused.value)
    assert "abcdef" not in str(refused.value)


def test_listed_secrets_may_name_environment_variables(tmp_path: Path) -> None:
    text = f"state_dir: {tmp_path}\nsecrets: [literal-1, '${{API_TOKEN}}']\n"
    config = parse_config(text, tmp_path / "config.yaml", environ={"API_TOKEN": "from-the-env-9"})
    assert config.secrets == ("literal-1", "from-the-env-9")


@given(
    st.lists(SECRET, min_size=1, max_size=3, unique=True),
    SECRET_NAME,
    st.lists(KEY_LINE, min_size=1, max_size=4),
    st.lists(LOG_TEXT, min_size=3, max_size=3),
)
def test_log_lines_carry_no_learned_secret_nor_key_body(
    secrets: list[str], name: str, key_lines: list[str], text: list[str]
) -> None:
    """Redactor.lines, the one gate of log text read back: the env value of a secret-looking name and the
    ``secrets:`` values anywhere in a line, and a private key's body (which spans lines) go; the rest stays."""
    assume(not [x for x in [*secrets, *key_lines] if any(x in t for t in text)])  # the text is not secret
    redactor = Redactor()
    redactor.learn({"secrets": secrets[1:], "programs": {"p": {"env": {name: secrets[0]}}}})
    block = ["-----BEGIN EC PRIVATE KEY-----", *key_lines, f"-----END EC PRIVATE KEY-----{text[2]}"]
    lines = [f"{text[0]}{s}{text[1]}" for s in secrets] + [f"{text[0]} {block[0]}", *block[1:]]
    out = list(redactor.lines(iter(lines)))
    assert len(out) == len(lines)
    assert not [x for x in [*secrets, *key_lines] if any(x in line for line in out)]
    assert out[-1].endswith(redactor.text(text[2]))


_TOKEN = st.text(alphabet="abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=8, max_size=40).map(
    lambda t: "zQ7" + t  # nothing else in a hook's config reads like it
)


@settings(max_examples=examples(200), deadline=None)
@given(
    token=_TOKEN,
    shape=st.sampled_from(["/{t}", "/trigger/x/with/key/{t}", "/hook?key={t}", "/a?code={t}&x=1", "/p/{t}?k=v"]),
    key=st.sampled_from(["url", "ntfy"]),
)
def test_what_follows_the_host_of_a_hook_destination_never_leaves_the_daemon(token: str, shape: str, key: str) -> None:
    """An ntfy topic, a webhook's path token or a query value of any name (``?key=`` once showed in clear to a
    read-only viewer): after the config is learned, only scheme and host of the destination are shown."""
    url = "https://hooks.example" + shape.format(t=token)
    cfg = parse_config(f"programs: {{}}\nhooks:\n  h: {{on: all, {key}: '{url}'}}\n", Path("/c.yaml"), {})
    redactor = Redactor()
    redactor.learn(cfg)
    shown = redactor.data(cfg.hooks[0])
    assert token not in repr(shown) and "hooks.example" in repr(shown)
    assert token not in redactor.text(f"POST {url} -> 500")


REASON_WORD = st.sampled_from(["must", "unknown", "is", "only", "no", "cannot", "not", "needs", "invalid", "missing"])


@given(
    SECRET_NAME,
    st.sampled_from(["", "folders.", "steps[3].", "programs.web.env.", "steps[0].params."]),
    REASON_WORD,
    st.integers(1, 99_999),
    SECRET,
)
def test_a_config_errors_reason_is_never_taken_for_a_secret(
    name: str, path: str, reason: str, line: int, secret: str
) -> None:
    """``file:line: KEY: reason``, for any secret-looking key at the top of a file or at any depth of a path,
    keeps its reason (it read ``api_token: *** key`` for a top-level key); the same key with a value is
    still redacted, in the same place. An ``Authorization`` key is the header's rule, which takes the rest of
    its line whatever it reads (a program may print ``app.yaml:3: Authorization: the <token>``): its reason
    goes too."""
    assume("authorization" not in name.lower())
    error = f"p.yaml:{line}: {path}{name}: {reason} key (allowed: a, b)"
    assert Redactor().text(error) == error
    assert secret not in Redactor().text(f"p.yaml:{line}: {path}{name}: {secret}")


@given(SECRET, st.sampled_from(["request.headers.", "app.yaml:3: ", "x.yaml:12: programs.p.env.", ""]))
def test_a_line_shaped_like_a_config_error_never_keeps_an_authorization_value(secret: str, lead: str) -> None:
    """The config-error exemption is no way around the header's rule: whatever word comes first."""
    for reason in ("the", "one", "must be", "unknown key", "is"):
        assert secret not in Redactor().text(f"{lead}Authorization: {reason} {secret}")


def test_every_config_errors_reason_starts_with_a_word_the_redactor_keeps() -> None:
    """The exemption above keeps a config error's reason by its first word (secretshapes.REASON_WORDS): every
    reason the package gives a ``*ConfigError(file, key, reason)`` as text starts with one of them, so none
    reads ``steps.token_load.sql: *** file ... is empty``. Read from the source (every call, literal or f-string)."""
    import ast
    import re

    from foss_supervisor.base.secretshapes import REASON_WORDS

    missing: dict[str, str] = {}
    for source in package_sources():
        path = source.path
        for node in source.nodes:
            func = getattr(node, "func", None)
            name = getattr(func, "id", None) or getattr(func, "attr", "")
            if not (isinstance(node, ast.Call) and name.endswith("ConfigError") and len(node.args) >= 3):
                continue
            reason = node.args[2]
            head = reason.values[0] if isinstance(reason, ast.JoinedStr) and reason.values else reason
            if isinstance(head, ast.Constant) and isinstance(head.value, str) and head.value.strip():
                word = re.split(r"[\s(:,]", head.value.strip(), maxsplit=1)[0].lower()
                if word not in REASON_WORDS:
                    missing[word] = f"{path.name}:{node.lineno}"
    assert not missing, missing


def test_a_reason_word_is_never_learned_as_a_literal() -> None:
    """A config that holds ``must`` as a secret value (the hostile tester's ``x.db_password: must hunter2`` in a
    command line) must not have every later reason read ``*** be an integer``."""
    redactor = Redactor()
    redactor.learn({"programs": [{"env": {"DB_PASSWORD": "must", "API_TOKEN": "unknown"}}], "secrets": ["only"]})
    reason = "p.yaml:4: programs.plain.replicas: must be an integer from 1 to 1000, got 'abc'; unknown key; only"
    assert redactor.text(reason) == reason


# ------------------------------------------------------------------------------------------ red team, 2026-12-06

# the shapes a listed passphrase may stand in, each reading less than the whole of it (a word, up to a , or ;)
CUT_BY_A_SHAPE = st.sampled_from(
    [
        "{n}={s}",
        "{n}: {s}",
        "the password is {s}",
        "mysql -u app -p{s} db",
        "redis-cli -a {s} ping",
        "curl -u bob:{s} https://x.example/",
        "Bearer {s}",
        "--{n} {s}",
    ]
)


@settings(max_examples=examples(200))
@given(
    st.lists(SECRET, min_size=2, max_size=4, unique=True),
    st.sampled_from([" ", ", ", ";", "\t", " - "]),
    SECRET_NAME,
    CUT_BY_A_SHAPE,
    LOG_TEXT,
)
def test_a_listed_passphrase_goes_whole_where_a_shape_reads_only_its_first_word(
    words: list[str], sep: str, name: str, form: str, around: str
) -> None:
    """A literal with spaces or , ; (a passphrase, listed under ``secrets:``) after a shape's head: the shape
    reads its first word only. The literals were matched on the shapes' output, where the passphrase was cut
    (``DB_PASSWORD=*** horse battery staple``): they are matched on the text as given now."""
    passphrase = sep.join(words)
    assume(not any(w in around for w in words))
    redactor = Redactor()
    redactor.learn({"secrets": [passphrase]})
    text = f"{around} {form.format(n=name, s=passphrase)} {around}"
    for shown in (redactor.text(text), *redactor.lines([text])):
        assert not [w for w in words if w in shown], shown


UNPRINTED = st.sampled_from([bytes, bytearray, Path, float])


@given(SECRET_NAME, SECRET, UNPRINTED, DATA)
def test_a_value_under_a_secret_key_goes_whatever_its_type(name: str, secret: str, kind: type, data: Any) -> None:
    """bytes, a Path, a float under a secret-looking key: only strings and ints went; the rest was printed as
    it is (``{"password": b"hunter2"}``, in a reply, an event or a log line's key/values)."""
    made: dict[type, object] = {bytes: secret.encode(), bytearray: bytearray(secret.encode())}
    value = made.get(kind, Path("/run", secret))
    if kind is float:
        value = float(len(secret)) + 0.123456789
    out = Redactor().data({"outer": [data, {name: value}]})
    assert out["outer"][1][name] == REDACTED
    learned = Redactor()
    learned.learn({"programs": {"p": {"env": {name: value}}}})  # learned as printed: the text, the path
    assume(kind is not float)  # a fraction is not learned: no literal to blank in every reply (0.25)
    printed = str(value) if kind is not bytes and kind is not bytearray else secret

    assert printed not in learned.text(f"printed {printed} again")


PEM_KIND = st.sampled_from([("RSA ", ""), ("EC ", ""), ("", ""), ("OPENSSH ", ""), ("PGP ", " BLOCK")])


@settings(max_examples=examples(200))
@given(st.lists(st.tuples(PEM_KIND, st.lists(KEY_LINE, min_size=1, max_size=3)), min_size=1, max_size=3), st.data())
def test_key_blocks_one_after_another_in_log_lines_go_whole(
    blocks: list[tuple[tuple[str, str], list[str]]], data: Any
) -> None:
    """Private key blocks, PEM or OpenPGP armor, one after another: each on its lines, or a block's BEGIN on the
    line that ends the one before (two key files printed together, the first with no final newline). The
    body of a block that began after another's END on one line was shown, and so was a PGP block's."""
    lines: list[str] = ["starting"]
    bodies = []
    for (kind, block), body in blocks:
        begin, end = f"-----BEGIN {kind}PRIVATE KEY{block}-----", f"-----END {kind}PRIVATE KEY{block}-----"
        glued = data.draw(st.booleans(), "glued to the line before")
        lines[-1:] = [lines[-1] + begin] if glued else [lines[-1], begin]
        lines += [*body, end]
        bodies += body
    lines.append("done")
    out = list(Redactor().lines(iter(lines)))
    assert len(out) == len(lines)
    assert not [b for b in bodies if any(b in line for line in out)], out
    assert out[0].startswith("starting") and out[-1] == "done"


def _raised(kind: str, secret: str, text: str) -> BaseException:
    """An exception whose ``str()`` is made of what it was given, as each kind makes it."""
    import subprocess

    if kind == "oserror":  # [Errno 2] No such file or directory: '<filename>' -> '<filename2>'
        return FileNotFoundError(2, "No such file or directory", text, None, f"/run/x?token={secret}")
    if kind == "called":  # Command '<cmd>' returned non-zero exit status 1.
        return subprocess.CalledProcessError(1, ["app", "--password", secret, text], output=text.encode())
    if kind == "fields":  # an exception with its own __str__, reading its fields

        class Refused(Exception):
            def __init__(self, url: str) -> None:
                super().__init__()
                self.url = url

            def __str__(self) -> str:
                return f"refused: {self.url}"

        return Refused(text)
    error = ValueError(text)
    error.add_note(f"while reading {text}")
    return error


@given(shaped(), st.sampled_from(["oserror", "called", "fields", "args"]), SECRET)
def test_an_exceptions_message_carries_no_secret_whatever_it_is_made_of(
    carried: tuple[str, str], kind: str, other: str
) -> None:
    """answer redacts an error before its str() leaves (control socket, web): str() of an OSError is made of
    its file names, of a CalledProcessError of its cmd, of some exceptions of their fields; only args went."""
    text, secret = carried
    exc = Redactor().exception(_raised(kind, other, text))
    shown = f"{exc} {getattr(exc, '__notes__', '')} {getattr(exc, 'output', '')}"
    assert secret not in shown and other not in shown, shown


@given(shaped(), LOG_TEXT)
def test_a_log_lines_keys_carry_no_secret(carried: tuple[str, str], word: str) -> None:
    """A log call may spread a mapping into its keys (``log.info("seen", **by_url)``): a key is redacted too."""
    text, secret = carried
    assume(secret not in word and not word.startswith("_"))
    event = Redactor().log_processor(None, "info", {"event": word, text: 1, "_record": None})
    assert not [key for key in event if secret in str(key)], event
    assert event["_record"] is None and event["event"] == Redactor().text(word)


YAML_VALUE = st.sampled_from(
    [
        "{k}:\n{i}  {s}",
        "{k}: |\n{i}  {s}\n{i}  {t}",
        "{k}: >-\n{i}    {s}\n\n{i}    {t}",
        "{k}: |+2\n{i}    {s}",
        "{k}:\n{i}  - {s}\n{i}  - {t}",
        '"{k}":\n{i}  {s}',
    ]
)


@settings(max_examples=examples(200))
@given(SECRET_NAME, SECRET, SECRET, YAML_VALUE, st.sampled_from(["", "  ", "    "]), st.sampled_from(["x", "y_1"]))
def test_a_secret_keys_value_on_the_lines_below_goes_in_text_and_in_log_lines(
    name: str, secret: str, other: str, form: str, indent: str, after: str
) -> None:
    """YAML a program prints (a config dump) may put a secret key's value on the lines below it: a plain
    scalar, a block scalar (| >- |+2) or a list. Log text is read back a line at a time (Redactor.lines), where the
    key's line has no value: the more indented lines after it go. text() took the block's indicator for the
    value. The next key, back at the key's indent, is kept."""
    assume(name.lower() != "authorization" and other != secret)
    doc = f"{indent}{form.format(k=name, i=indent, s=secret, t=other)}\n{indent}{after}: kept"
    redactor = Redactor()
    for shown in (redactor.text(doc), "\n".join(redactor.lines(doc.splitlines()))):
        assert secret not in shown and other not in shown, shown
        assert shown.endswith(f"{indent}{after}: kept"), shown


def _escaped(secret: str) -> list[str]:
    import urllib.parse

    return [
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
    ]


@settings(max_examples=examples(200))
@given(
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=2, max_size=12),
    st.sampled_from(['"', "\\", "@", " ", "é", "/", "'", "%", "\t", "\n"]),
    st.text(string.ascii_letters + string.digits, min_size=4, max_size=12),
    NOISE,
)
def test_a_listed_secret_goes_as_a_json_log_a_repr_or_a_url_writes_it(
    core: str, special: str, tail: str, around: str
) -> None:
    """A secret with a quote, a backslash, an @, a space or a non-ASCII letter, printed escaped: by a JSON logger
    (\\" \\\\ \\u00e9), in a Python repr, percent-encoded in a URL. The literal matched only as listed."""
    secret = core + special + tail
    redactor = Redactor()
    redactor.learn({"secrets": [secret]})
    for written in _escaped(secret):
        assume(written not in around)
        shown = redactor.text(f"{around}{written}{around}")
        assert written not in shown, (written, shown)
