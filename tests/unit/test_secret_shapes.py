"""Each shape of the secret table (foss_supervisor.base.secretshapes), generated: a random secret written in that
shape, in random text, never survives the redaction; ordinary words, numbers, paths and flags are left alone."""

from __future__ import annotations

import base64
import contextlib
import shlex
import signal
import string
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import examples
from helpers.strategies import SECRET, SECRET_NAME, regex_class
from hypothesis import Phase, assume, given, settings
from hypothesis import strategies as st

from foss_supervisor.base.redact import Redactor
from foss_supervisor.base.secretshapes import apply, looks_secret

WORD = regex_class("", string.ascii_lowercase, 10, 1).filter(
    lambda w: w not in {"password", "passphrase", "passwd", "secret", "token", "mysql", "sshpass"}
)
NUMBER = st.integers(-(10**9), 10**9).map(str) | st.floats(allow_nan=False, allow_infinity=False).map(str)
PATH = st.lists(regex_class("", string.ascii_lowercase + string.digits + "_.", 8, 1), min_size=1, max_size=4).map(
    lambda parts: "/" + "/".join(parts)
)
FLAG = st.sampled_from(["-a", "-l", "-p", "-v", "-n", "--port", "--verbose", "-u"])
PROSE = st.lists(WORD | NUMBER | PATH, max_size=6).map(" ".join)  # text around a secret
ALNUM = SECRET.map(lambda s: "".join(c for c in s if c.isalnum()).ljust(20, "7"))  # a token's body
HOST = st.builds("{}.{}".format, regex_class("", string.ascii_lowercase, 8, 1), st.sampled_from(["example", "test"]))
# names that hold a secret, in the spellings the review found missed: *_CREDS, APP_KEY, TLS_KEY, ...
NAME = st.builds(
    lambda prefix, word, sep: f"{prefix}{sep}{word}",
    st.sampled_from(["SMTP", "APP", "TLS", "GPG", "SSH", "GOOGLE", "STRIPE", "my", "X"]),
    st.sampled_from(["CREDS", "KEY", "PASSPHRASE", "PRIVATE", "CREDENTIALS", "PRIVATE_KEY", "Signature", "Creds"]),
    st.sampled_from(["_", "-", ""]).filter(bool) | st.just("_"),
)

Shape = Callable[[st.DrawFn, str], str]


# how a shell, a language or a log writes a value: bare, quoted (a shell's '...' or "..."), and what the red team
# found printed in clear: Python's bytes repr (b'...'), a list repr of an argv (['--password', '...'], as a
# subprocess error prints it), JSON inside a JSON string, := == =>, a quoted value cut short by the end of a line
QUOTE = st.sampled_from(["{s}", "'{s}'", '"{s}"'])


NAMED_FORMS = [
    "{n}={s}",
    "{n}: {s}",
    '"{n}": "{s}"',
    "--{n} {s}",
    "export {n}='{s}'",
    "{{'{n}': b'{s}'}}",
    "{n} := {s}",
    "{n} == {s}",
    "'{n}' => '{s}'",
    '"{n}"=>"{s}"',
    '{n}="{s}',
    '{{\\"{n}\\": \\"{s}\\"}}',
    "Command '['app', '--{n}', '{s}', '-v']' returned non-zero exit status 1.",
    '["--{n}", "{s}"]',
    "environ([('{n}', '{s}'), ('HOME', '/root')])",
    'dict_items([("{n}", b"{s}")])',
]


def _named(draw: st.DrawFn, secret: str) -> str:
    return draw(st.sampled_from(NAMED_FORMS)).format(n=draw(NAME), s=secret)


def _mysql(draw: st.DrawFn, secret: str) -> str:
    tool = draw(st.sampled_from(["mysql", "mysqldump", "mariadb", "mysqladmin", "sshpass"]))
    space = draw(st.sampled_from(["", " "]))
    return f"{tool} -u {draw(WORD)} -p{space}{draw(QUOTE).format(s=secret)} {draw(WORD)}"


def _user_password(draw: st.DrawFn, secret: str) -> str:
    flag = draw(st.sampled_from(["-u ", "--user ", "--user=", "-u", "-U ", "--proxy-user "]))
    user = draw(st.sampled_from(["", "{u}"])).format(u=draw(WORD))
    pair = draw(st.sampled_from(["{u}:{s}", "'{u}:{s}'", '"{u}:{s}"', "{u}:'{s}'", '{u}:"{s}"']))
    tool = draw(st.sampled_from(["curl", "wget", "http"]))
    return f"{tool} {flag}{pair.format(u=user, s=secret)} https://{draw(HOST)}/x"


def _redis(draw: st.DrawFn, secret: str) -> str:
    return f"redis-cli -h {draw(HOST)} -a {draw(QUOTE).format(s=secret)} ping"


def _oracle(draw: st.DrawFn, secret: str) -> str:
    database = draw(st.sampled_from(["{h}", "//{h}:1521/orcl", '"{h}"', "(DESCRIPTION=(ADDRESS=(HOST={h})))"]))
    password = draw(st.sampled_from(["{s}", '"{s}"'])).format(s=secret)
    lead = draw(
        st.sampled_from(["sqlplus ", "rman target ", "CONNECT= ", "jdbc:oracle:thin:", "url=jdbc:oracle:thin:"])
    )
    return f"{lead}{draw(WORD)}/{password}@{database.format(h=draw(HOST))}"


def _prose(draw: st.DrawFn, secret: str) -> str:
    word = draw(st.sampled_from(["password", "Password", "passphrase", "secret", "token"]))
    return f"the {word} {draw(st.sampled_from(['is', 'was', 'is:', 'was :']))} {secret}"


def _cookie(draw: st.DrawFn, secret: str) -> str:
    name = draw(st.sampled_from(["sessionid", "sid", "_session", "remember_me", "connect.sid"]))
    pairs = [f"{draw(WORD)}={draw(WORD)}", f"{name}={secret}", f"{draw(WORD)}={draw(WORD)}"]
    header = draw(st.sampled_from(["Cookie: {v}", "set-cookie: {v}; Path=/", "curl -H 'Cookie: {v}' x"]))
    return header.format(v="; ".join(pairs[draw(st.integers(0, 1)) :]))


def _authorization(draw: st.DrawFn, secret: str) -> str:
    scheme = draw(st.sampled_from(["Bearer", "Basic", "Token", "Digest", "Negotiate", "ApiKey", "", "Custom"]))
    value = f"{scheme} {secret}".strip()
    form = draw(st.sampled_from(["Authorization: {v}", "curl -H 'Authorization: {v}' x", '{{"authorization": "{v}"}}']))
    return form.format(v=value)


def _userinfo(draw: st.DrawFn, secret: str) -> str:
    scheme = draw(st.sampled_from(["postgres", "redis", "amqp", "https", "mongodb+srv", "ftp", "smtp"]))
    slashes = draw(st.sampled_from(["//", "\\/\\/"]))  # JSON as PHP writes it escapes the slashes
    lead = draw(st.sampled_from(["", "-", ".", "=", "url:", "x-"]))  # glued to what precedes the scheme
    return f"{lead}{scheme}:{slashes}{draw(WORD)}:{secret}@{draw(HOST)}:5432/{draw(WORD)}"


def _query(draw: st.DrawFn, secret: str) -> str:
    param = draw(
        st.sampled_from(["sig", "token", "api_key", "access_token", "X-Amz-Signature", "X-Goog-Signature", "apikey"])
    )
    return f"GET https://{draw(HOST)}/{draw(WORD)}?a=1&{param}={secret}&b=2"


def _openai(draw: st.DrawFn, secret: str) -> str:
    return f"{draw(st.sampled_from(['sk-', 'sk-proj-', 'sk-ant-']))}{secret}"


def _github(draw: st.DrawFn, secret: str) -> str:
    return draw(st.sampled_from([f"ghp_{secret}{secret}", f"github_pat_{secret}_{secret}", f"gho_{secret}{secret}"]))


def _vendor(draw: st.DrawFn, secret: str) -> str:
    """A token known by its vendor's documented prefix (the body long enough for each vendor's length)."""
    twice = secret + secret
    return draw(
        st.sampled_from(
            [
                f"hvs.{secret}",
                f"hvb.{secret}",
                f"npm_{twice}",
                f"pypi-AgEIcHlwaS5vcmc{twice}",
                f"dckr_pat_{secret}",
                f"hf_{twice}",
                f"SG.{secret}.{secret}",
                f"shpat_{twice}",
                f"dop_v1_{twice}{twice}",
                f"glptt-{secret}",
                f"gldt-{secret}",
                f"glsa_{secret}",
                f"sk_test_{secret}",
                f"whsec_{secret}",
                f"ATATT3xFfGF0{secret}",
            ]
        )
    )


def _webhook(draw: st.DrawFn, secret: str) -> str:
    return draw(
        st.sampled_from(
            [
                f"https://hooks.slack.com/services/T0{secret[:6]}/B0{secret[:5]}/{secret}",
                f"https://discord.com/api/webhooks/{draw(st.integers(1, 10**18))}/{secret}",
                f"https://discord.com/api/v10/webhooks/{draw(st.integers(1, 10**18))}/{secret}",
            ]
        )
    )


def _aws(draw: st.DrawFn, secret: str) -> str:
    return f"AKIA{secret.upper()[:16]}"


def _jwt(draw: st.DrawFn, secret: str) -> str:
    return f"eyJhbGciOiJIUzI1NiJ9.eyJ{secret}.{secret}"


def _pem(draw: st.DrawFn, secret: str) -> str:
    kind, block = draw(st.sampled_from([("", ""), ("RSA ", ""), ("EC ", ""), ("OPENSSH ", ""), ("PGP ", " BLOCK")]))
    return f"-----BEGIN {kind}PRIVATE KEY{block}-----\n{secret}\n{secret[::-1]}\n-----END {kind}PRIVATE KEY{block}-----"


def _basic(draw: st.DrawFn, secret: str) -> str:
    encode = draw(st.sampled_from([base64.b64encode, base64.urlsafe_b64encode]))
    user = draw(WORD) + draw(st.sampled_from(["", "?", "~>", "?~>>"]))  # bytes base64 writes with + / or - _
    written = encode(f"{user}:{secret}".encode()).decode()
    return "Basic " + draw(st.sampled_from([written, written.rstrip("=")]))  # padded or not, as clients send it


# ------------------------------------------------------------------ the kinds the second red team found printed

# a keyword as SQL, markup or a shell writes it: lower, upper or capitalized
CASE = st.sampled_from([str.lower, str.upper, str.title])
# names of a secret written as markup and SQL consoles' clients do: tags, keys of a pair
TAG = (
    st.sampled_from(
        ["password", "Password", "db-password", "wsse:Password", "apiKey", "client_secret", "DB_PASSWORD", "token"]
    )
    | NAME
)
SQL_VALUE = st.sampled_from(["'{s}'", "N'{s}'", "E'{s}'"])  # a SQL string: plain, national, escaped


def _markup(draw: st.DrawFn, secret: str) -> str:
    """An element whose tag names a secret (Maven's ``<password>``, WS-Security's ``<wsse:Password>``)."""
    tag = draw(TAG)
    attrs = draw(st.sampled_from(["", ' type="text"', " x='1'", ' Type="ns#PasswordText"']))
    return draw(st.sampled_from(["<{t}{a}>{s}</{t}>", "<{t}{a}>{s}</{t} >", "<r><{t}{a}>{s}</{t}></r>"])).format(
        t=tag, a=attrs, s=secret
    )


def _pair(draw: st.DrawFn, secret: str) -> str:
    """A pair whose key attribute names a secret: .NET appSettings, Spring beans, Java's XML properties, a
    Kubernetes env list in JSON or YAML flow."""
    form = draw(
        st.sampled_from(
            [
                '<add key="{n}" value="{s}"/>',
                "<add key='{n}' value='{s}' />",
                '<property name="{n}" value="{s}"/>',
                '<param name="{n}" type="string" value="{s}">',
                '<entry key="{n}">{s}</entry>',
                '{{"name": "{n}", "value": "{s}"}}',
                '{{"name":"{n}","value":"{s}"}}',
                "{{name: {n}, value: {s}}}",
                "- {{name: {n}, value: '{s}'}}",
            ]
        )
    )
    return form.format(n=draw(TAG | SECRET_NAME), s=secret)


def _sql(draw: st.DrawFn, secret: str) -> str:
    """A statement that sets a password, as a SQL log, a migration or a console echoes it."""
    form = draw(
        st.sampled_from(
            [
                "alter user {0} with password {1}",
                "create user {0} with encrypted password {1} valid until 'infinity'",
                "create role {0} login password {1}",
                "create user {0} identified by {2}",
                "alter user {0} identified by {2} account unlock",
                "create user '{0}'@'%' identified with caching_sha2_password by {1}",
                "grant all on *.* to '{0}'@'localhost' identified by {1}",
                "connect to {0} identified by {2} using 'db'",
                "set password for {0} = {1}",
                "set password for '{0}'@'%' = password({1})",
                "create user mapping for {0} server s options (user '{0}', password {1})",
            ]
        )
    )
    quoted = draw(SQL_VALUE).format(s=secret)
    either = draw(st.sampled_from(["{s}", "'{s}'", '"{s}"'])).format(s=secret)
    lead = draw(st.sampled_from(["", "LOG:  statement: ", "mysql> ", "SQL> "]))
    return lead + draw(CASE)(form).format(draw(WORD), quoted, either) + draw(st.sampled_from(["", ";"]))


TOOL_FORMS = [
    "docker login -u {u} -p {v} registry.example",
    "podman login --username {u} -p {v} quay.io",
    "helm registry login -u {u} -p {v} h.example",
    "ldapsearch -x -H ldap://h -D cn={u},dc=x -w {v} -b dc=x",
    "ldapmodify -D cn={u} -w {v} -f x.ldif",
    "ldappasswd -x -D cn={u} -s {v}",
    "zip -r -P {v} out.zip dir",
    "unzip -o -P {v} out.zip",
    "7z a -p{g} out.7z dir",
    "7za x -p{g} -o/tmp a.7z",
    "mongosh -u {u} -p {v} --authenticationDatabase admin",
    "mongodump --host h -u {u} -p {v}",
    "sqlcmd -S h -U {u} -P {v} -Q x",
    "bcp t out f -U {u} -P {v}",
    "mosquitto_pub -h h -u {u} -P {v} -t x -m y",
    "smbclient //h/s -U {u}%{g}",
    "smbclient //h/s -U '{u}%{g}'",
    "rpcclient -U {u}%{g} h",
    "openssl enc -aes-256-cbc -k {v} -in f",
    "xfreerdp /u:{u} /p:{g} /v:h",
    "mysqladmin -u {u} password {v}",
    "htpasswd -bc /etc/nginx/.htpasswd {u} {v}",
    "htpasswd -nb {u} {v}",
    "rabbitmqctl add_user {u} {v}",
    "rabbitmqctl change_password {u} {v}",
    "ssh-keygen -t ed25519 -N {v} -f k",
    "ipmitool -I lanplus -H h -U {u} -P {v} power status",
    "cqlsh -u {u} -p {v} h",
    "cypher-shell -u {u} -p {v}",
    "nodetool -u {u} -pw {v} status",
    "plink -ssh {u}@h -pw {v}",
    "lftp -u {u},{g} ftp.example",
    "net ads join -U {u}%{g}",
    "snmpwalk -v2c -c {v} h 1.3.6",
    "snmpget -v 2c -c{g} h sysDescr.0",
    "snmpbulkwalk -v3 -l authPriv -u {u} -a SHA -A {v} -x AES -X {v} h",
    "snmpget -v3 -u {u} -A {u}{u} -X {v} h sysUpTime.0",  # the second passphrase (the table takes one a tool)
]


def _tool(draw: st.DrawFn, secret: str) -> str:
    """A tool's flag that takes a password (beyond mysql's -p, redis-cli's -a and -u user:pw)."""
    form = draw(st.sampled_from(TOOL_FORMS))
    return form.format(u=draw(WORD), v=draw(QUOTE).format(s=secret), g=secret)


def _scheme_quoted(draw: st.DrawFn, secret: str) -> str:
    """A quoted credential after an auth scheme (a header built by string concatenation, printed)."""
    scheme = draw(CASE)("bearer")
    form = draw(
        st.sampled_from(
            ["{b} '{s}'", '{b} "{s}"', "Authorization: {b} '{s}'", 'authorization: {b} "{s}"', "-H \"X: {b} '{s}'\""]
        )
    )
    return form.format(b=scheme, s=secret)


SESSION_NAMES = ["jsessionid", "JSESSIONID", "PHPSESSID", "sessionid", "session_id", "SessionId", "ASP.NET_SessionId"]


def _session(draw: st.DrawFn, secret: str) -> str:
    """A session id by its name: in a URL's path (;jsessionid=), a query, a pair. (A path parameter's value
    before a query, ``;jsessionid=v?a=1``, is replaced with the query, and learned with it: not drawn here.)"""
    name = draw(st.sampled_from([*SESSION_NAMES, "session-id", "x-session-id", "sessid"]))
    form = draw(
        st.sampled_from(["GET /app/cart;{n}={s} HTTP/1.1", "/x;{n}={s}", "?{n}={s}&a=1", "{n}={s}", '"{n}": "{s}"'])
    )
    return form.format(n=name, s=secret)


def _encoded_name(draw: st.DrawFn, secret: str) -> str:
    """A query string's or a form body's name percent-encoded in part (``pass%77ord``, ``api%5Fkey``), or a
    nested one in brackets as Rails and PHP write it (``user[password]``, ``user%5Bpassword%5D``)."""
    name = draw(st.sampled_from(["password", "pass", "api_key", "access_token", "client_secret", "passwd", "apiKey"]))
    mask = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    hexed = draw(st.sampled_from(["%{:02X}", "%{:02x}"]))
    written = "".join(hexed.format(ord(c)) if m else c for c, m in zip(name, mask, strict=True))
    nested = draw(st.sampled_from(["{e}", "user[{e}]", "user%5B{e}%5D", "user%5b{e}%5d", "[{e}]"]))
    assume("%" in written or "[" in nested)
    form = draw(st.sampled_from(["GET https://{h}/x?a=1&{w}={s}&b=2", "POST /login {w}={s}&remember=1", "?{w}={s}"]))
    return form.format(h=draw(HOST), w=nested.format(e=written), s=secret)


def _directive(draw: st.DrawFn, secret: str) -> str:
    """A name and its value a space apart where a file's syntax says so: Dockerfile's ``ENV NAME value`` (as the
    classic builder prints its steps), redis' ``requirepass``/``masterauth``, a ``.netrc`` entry (from a line's
    start: "ssh: machine web1 password authentication failed" is prose)."""
    form = draw(
        st.sampled_from(
            [
                "Step 3/9 : ENV {n} {v}",
                "ENV {n} {v}",
                "requirepass {v}",
                "CONFIG SET requirepass {v}",
                "masterauth {v}",
                "\nmachine {h} login {u} password {v}",  # a .netrc entry starts a line
                "\nmachine {h} password {v}",
                "ACL SETUSER {u} on >{g} ~* +@all",
                "redis-cli acl setuser {u} reset on >{g} ~cache:* +get",
                "\nuser {u} on nopass >{g} ~* &* +@all",  # a users.acl line
                "\nuser {u} >{g} off",
            ]
        )
    )
    return form.format(n=draw(NAME | SECRET_NAME), v=draw(QUOTE).format(s=secret), h=draw(HOST), u=draw(WORD), g=secret)


SHAPES: dict[str, tuple[Shape, st.SearchStrategy[str]]] = {
    "secret-looking name": (_named, SECRET),
    "mysql -p": (_mysql, SECRET),
    "-u user:password": (_user_password, SECRET),
    "redis-cli -a": (_redis, SECRET),
    "oracle user/password@db": (_oracle, SECRET),
    "password is": (_prose, SECRET),
    "Authorization, any scheme": (_authorization, SECRET),
    "URL userinfo": (_userinfo, SECRET),
    "query parameter": (_query, SECRET),
    "sk- token": (_openai, ALNUM),
    "GitHub token": (_github, ALNUM),
    "vendor token": (_vendor, ALNUM),
    "webhook URL": (_webhook, ALNUM),
    "AWS key id": (_aws, ALNUM.map(lambda s: s.upper()).filter(lambda s: s[:16].isalnum())),
    "JWT": (_jwt, ALNUM),
    "PEM private key": (_pem, ALNUM),
    "Basic credentials": (_basic, SECRET),
    "Cookie header": (_cookie, SECRET),
    "markup element": (_markup, SECRET),
    "key/value pair": (_pair, SECRET),
    "SQL password": (_sql, SECRET),
    "tool password flag": (_tool, SECRET),
    "quoted after a scheme": (_scheme_quoted, SECRET),
    "session id": (_session, SECRET),
    "encoded or nested name": (_encoded_name, SECRET),
    "directive": (_directive, SECRET),
}


WHOLE = {
    "sk- token",
    "GitHub token",
    "vendor token",
    "webhook URL",
    "AWS key id",
    "JWT",
    "PEM private key",
    "Authorization, any scheme",
    "Cookie header",
}


@pytest.mark.parametrize("form", NAMED_FORMS)
@settings(max_examples=examples(15))
@given(NAME, SECRET, PROSE, PROSE)
def test_no_secret_survives_in_any_form_of_a_secret_looking_name(
    form: str, name: str, secret: str, before: str, after: str
) -> None:
    """Each way a language, a shell or a log writes a name and its value (every form is drawn here, where the
    test of every shape below may draw some of them only)."""
    text = f"{before} {form.format(n=name, s=secret)} {after}"
    assert secret not in Redactor().text(text)
    assert not [line for line in Redactor().lines(text.splitlines()) if secret in line]


@pytest.mark.parametrize("shape", sorted(SHAPES))
@settings(max_examples=examples(60))
@given(data=st.data())
def test_no_secret_of_a_shape_survives_in_any_text(shape: str, data: st.DataObject) -> None:
    write, secrets = SHAPES[shape]
    secret = data.draw(secrets, "secret")
    text = write(data.draw, secret)
    before, after = data.draw(PROSE, "before"), data.draw(PROSE, "after")
    redactor = Redactor()
    shown = redactor.text(f"{before} {text} {after}")
    assert secret not in shown, shown
    assert not [line for line in redactor.lines(f"{before} {text} {after}".splitlines()) if secret in line]
    learned = Redactor()
    learned.learn({"programs": {"p": {"command": ["sh", "-c", text]}}})  # a config that holds it teaches it
    again = text if shape in WHOLE else secret  # a token is learned whole (its body alone is no secret shape)
    assert secret not in learned.text(f"printed {again} again")


# flags of data whose names hold a secret word: a rule reads them, leaves them, and must not skip what follows
HARMLESS = st.sampled_from(["--keyboard", "--monkey", "--sort-key", "--author", "--pass-rate", "--primary_key"])


@settings(max_examples=examples(400))
@given(
    st.sampled_from(sorted(SHAPES)),
    st.sampled_from(sorted(SHAPES)),
    st.sampled_from(["whole", "head", "flag"]),
    st.data(),
)
def test_a_shape_right_before_another_never_hides_its_secret(first: str, second: str, lead: str, data: Any) -> None:
    """One shape's text, only what precedes its secret (``bearer``, ``Authorization:``, ``mysql -p``,
    ``redis-cli -a``), or a harmless flag with a secret word in its name, right before another shape: every
    shape reads the text as given and goes on from the value it read, so a rule taking the next words for its
    value never hides the secret of the shape they begin (``bearer redis-cli -a <pw>``,
    ``--keyboard password=<pw>``, ``redis-cli -a redis-cli -a <pw>``)."""
    write_a, secrets_a = SHAPES[first]
    write_b, secrets_b = SHAPES[second]
    secret_a, secret_b = data.draw(secrets_a, "first secret"), data.draw(secrets_b, "second secret")
    text_a, text_b = write_a(data.draw, secret_a), write_b(data.draw, secret_b)
    before = {
        "whole": text_a,
        "head": text_a[: max(text_a.find(secret_a), 0)],
        "flag": data.draw(HARMLESS, "flag"),
    }[lead]
    assume(secret_b not in before and secret_a not in text_b)
    shown = Redactor().text(f"{before} {text_b}")
    assert secret_b not in shown, shown
    assert lead != "whole" or secret_a not in shown, shown


@settings(max_examples=examples(100))
@given(st.sampled_from(sorted(SHAPES)), st.integers(20, 400), st.data())
def test_a_line_of_repeated_heads_hides_no_secret_and_spares_the_next_line(shape: str, times: int, data: Any) -> None:
    """A line made of one shape's head over and over (``token=token=...``, ``redis-cli -a redis-cli -a ...``,
    ``eyJ...eyJ``) then that shape with its secret: the secret goes; each rule reads such a text a few times
    over at most, so the next line is redacted as if alone (unless a head opened a quote: its value may run on)."""
    write, secrets = SHAPES[shape]
    secret, other_secret = data.draw(secrets, "secret"), data.draw(secrets, "next line's secret")
    text, other = write(data.draw, secret), write(data.draw, other_secret)
    head = text[: max(text.find(secret), 0)]
    assume(head.strip() and "\n" not in text + other and secret not in other and other_secret not in text)
    # heads glued where they end in a separator (``token=token=``), else a space apart: a word glued to a head
    # is a new word (``-pmysql``, ``ghp_ghp_``: no word boundary), as written by no one
    sep = "" if head[-1] in " =:" else " "
    shown = Redactor().text(f"{(head + sep) * times}{text}\n{other}")
    first, _, second = shown.partition("\n")
    assert secret not in first
    if head.count('"') % 2 == 0 and head.count("'") % 2 == 0:  # an open quote's value may run on (YAML, shell)
        assert second == Redactor().text(other)


@given(
    st.dictionaries(
        regex_class(string.ascii_letters, string.ascii_letters + string.digits + "-", 20),
        SECRET,
        min_size=1,
        max_size=4,
    )
)
def test_every_value_of_a_hook_header_is_redacted_whatever_its_name(headers: dict[str, str]) -> None:
    reply = {"hooks": [{"name": "h", "url": "https://x.example/", "headers": headers}]}
    redactor = Redactor()
    redactor.learn(reply)
    assert not [v for v in headers.values() if v in str(redactor.data(reply)) or v in redactor.text(f"log {v}")]


@given(st.lists(WORD | NUMBER | PATH | FLAG | HOST, max_size=12).map(" ".join))
def test_ordinary_words_numbers_paths_and_flags_are_left_alone(text: str) -> None:
    assert Redactor().text(text) == text


# the same kinds' ordinary text: markup, SQL, tool lines and URLs that carry no secret are left whole (a column
# named password, a process identified by its pid, unzip's -p that pipes, docker's -p that publishes a port)
HARMLESS_FORMS = [
    "<{w}>{x}</{w}>",
    "<keyboard>{x}</keyboard>",
    "<author>{x}</author> <sort_key>{x}</sort_key> <pass_rate>0.9</pass_rate>",
    '<add key="{w}" value="{x}"/>',
    '<add key="sort_key" value="{x}"/>',
    '{{"name": "author", "value": "{x}"}}',
    "{{name: keyboard, value: {x}}}",
    "select password_hash from users where {w} = 1",
    "select password, {w} from users",
    "create table users (id int, password text not null, {w} varchar(64))",
    "alter table users add column password text",
    "the process identified by pid {n} exited",
    "{w} identified by {x}",
    "unzip -p archive.zip {w}",
    "docker run -p 8080:80 {w}",
    "7z a -t7z out.7z {w}",
    "ldapsearch -x -b dc={w}",
    "mongosh --port 27017 {w}",
    "zip -r out.zip {w}",
    "openssl x509 -in {w}.pem -noout",
    "htpasswd -v /etc/{w} {x}",
    "ssh-keygen -t ed25519 -N '' -f {w}",
    "rabbitmqctl list_users {w}",
    "ipmitool -H {w} power status",
    "net use {w}",
    "ENV MODE {w}",
    "ENV PATH /usr/{w}",
    "machine {w} login {x}",
    "session {w} closed after {n} s",
    "GET /x?q=a%20b&page={n}",
    "?user%5Bname%5D={w}&user[email]={x}",
    "SESSION_IDLE_TIMEOUT={n} session_identity={x} sessions_id_count={n}",
    "signal sent to child {w} identified by tag {x}",
    "ssh: machine {w} password authentication failed",
]


@settings(max_examples=examples(100))
@given(st.sampled_from(HARMLESS_FORMS), CASE, WORD, WORD, st.integers(0, 10**6))
def test_ordinary_markup_sql_tool_lines_and_urls_are_left_alone(
    form: str, case: Callable[[str], str], word: str, other: str, number: int
) -> None:
    text = form.format(w=word, x=other, n=number)
    for written in (text, case(text)):
        assert Redactor().text(written) == written


@settings(max_examples=examples(50))
@given(WORD, SECRET, CASE, st.sampled_from(["AUTH PLAIN {b}", "send: 'AUTH PLAIN {b}\\r\\n'", "C: AUTH PLAIN {b}"]))
def test_an_smtp_auth_plain_credential_goes_and_its_password_is_learned(
    user: str, secret: str, case: Callable[[str], str], form: str
) -> None:
    """SMTP's ``AUTH PLAIN <base64 of [authzid]\\0user\\0password>``, as smtplib's debug output prints it."""
    body = base64.b64encode(f"\0{user}\0{secret}".encode()).decode()
    text = form.replace("AUTH PLAIN", case("AUTH PLAIN")).format(b=body)
    assert body not in Redactor().text(text)
    learned = Redactor()
    learned.learn({"programs": {"p": {"command": ["sh", "-c", text]}}})
    assert secret not in learned.text(f"printed {secret} again")


ARGV_FORMS = [
    "mysql -u {u} -p{g}",
    "mysqldump -u {u} -p {g} db",
    "redis-cli -a {g} ping",
    "sshpass -p {g} ssh h",
    "curl --user {u}:{g} https://h.example/",
    "curl -u {u}:{g} https://h.example/",
    "wget --proxy-user {u}:{g} https://h.example/",
]


@settings(max_examples=examples(60))
@given(st.sampled_from([*ARGV_FORMS, *TOOL_FORMS]), WORD, SECRET)
def test_a_tools_password_in_a_command_held_as_a_list_goes(form: str, user: str, secret: str) -> None:
    """A program's ``command`` as a list (a config's, ``status``'s, a CalledProcessError's ``cmd``): the tool,
    its flag and the password are items of their own, read as the line they make."""
    argv = shlex.split(form.format(u=user, v=secret, g=secret))
    assert secret not in str(Redactor().data(argv))
    assert secret not in str(Redactor().data(tuple(argv)))
    learned = Redactor()
    learned.learn({"programs": {"p": {"command": argv}}})
    assert secret not in learned.text(f"printed {secret} again")


@pytest.mark.parametrize("name", [*SESSION_NAMES, "session-id", "sessid"])
def test_a_session_ids_name_is_secret(name: str) -> None:
    assert looks_secret(name)


@pytest.mark.parametrize(
    "name",
    ["key", "sort_key", "primary_key", "partition_key", "row_key", "keyboard", "monkey", "pass_rate", "author"],
)
def test_keys_of_data_are_not_secret_names(name: str) -> None:
    assert not looks_secret(name)


@given(st.text(string.ascii_letters, min_size=1, max_size=12))
def test_a_name_ending_in_creds_passphrase_or_credentials_is_secret(prefix: str) -> None:
    assert all(looks_secret(f"{prefix}_{word}") for word in ("CREDS", "PASSPHRASE", "CREDENTIALS", "PRIVATE"))


# what a rule reads before its value, and runs a rule's class reads: a line made of one of them, repeated, made a
# rule read the rest of the line again from each (token=token=..., mysql mysql ..., a.a.a..., sk-sk-...,
# hooks.slack.com/services/... : 4 s to 75 s for a 64 KB line, on the daemon's loop)
HEADS = st.sampled_from(
    [
        "token=",
        "token= ",
        "auth:",
        "authorization: ",
        "Authorization: x\n",
        "mysql ",
        "mysql -p",
        "mysql -p'",
        "redis-cli ",
        "redis-cli -a ",
        "u/pw@",
        'u/"',
        "a/",
        "bearer ",
        "basic ",
        "password is ",
        "-u a:",
        "-u a:'",
        "--token ",
        "x://",
        "a://b@",
        "hooks.slack.com/services/",
        "-----BEGIN ",
        "eyJaaaa.",
        "eyJaaaa.eyJ",
        "sk-",
        "a_token.",
        "a.",
        "a-",
        "a=",
        ".",
        '"token": ',
        'password="',
        "password='",
        'token="a ',
        "token=password=",
        "x:1: a.token: ",
        "a.token: must ",
        "cookie: a",
        "--token --token ",
        "token=>",
        'x=\\"',
        "token: |\n  a ",
        "token:\n ",
        "  password: >-\n",
        "a:\n  - ",
        "<password>",
        "<password ",
        "<password>a",
        'key="password" ',
        'key="password" a="1" ',
        "name: password, ",
        "identified by ",
        "user a identified by ",
        "set password for a = ",
        "password '",
        "password('",
        "docker login ",
        "docker login -p ",
        "ldapsearch -w ",
        "7z -p",
        "smbclient -U a%",
        "bearer '",
        'bearer "',
        "jsessionid=",
        "pass%77ord=",
        "%41",
        "user[password]=",
        "[password] => ",
        "a[",
        "AUTH PLAIN ",
        "htpasswd -b a a ",
        "rabbitmqctl add_user a ",
        "ipmitool -P ",
        "lftp -u a,",
        "net -U a%",
        "ENV TOKEN ",
        "requirepass ",
        "machine a password ",
        "machine a login a ",
    ]
)
LONG_LINE = 128 * 1024  # characters (a log line the daemon reads back, a reply's string)
BOUND = 5.0  # seconds: not a timing, a bound; the linear reading takes ~0.3 s at most, the quadratic took minutes


@contextlib.contextmanager
def _bounded(seconds: float) -> Iterator[None]:
    """Raise TimeoutError in the block after ``seconds`` (a SIGALRM: the rules' loop runs Python between searches)."""

    def expired(_signum: int, _frame: object) -> None:
        raise TimeoutError(f"not done in {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@settings(max_examples=examples(15))
@given(st.lists(HEADS, min_size=1, max_size=3), SECRET)
def test_a_line_of_repeated_heads_is_read_once(heads: list[str], secret: str) -> None:
    """Each rule reads a long line of repeated heads (any of the table's, alone or mixed) once: a rule searches
    again from the value it read, so a value read to the end of the line, or a name or a scheme read from each
    of its dots, made the work quadratic in the line. The secret at the end still goes."""
    unit = "".join(heads)
    line = "token " + unit * (LONG_LINE // len(unit)) + f" password={secret}"
    with _bounded(BOUND):
        shown = apply(line)
    assert secret not in shown


# ------------------------------------------------------------------------------------------ found, not fixed


# a known gap's property stops at its first failing example: shrinking it would only cost time (about 3 s each)
KNOWN_GAP = settings(phases=[Phase.explicit, Phase.reuse, Phase.generate])


@pytest.mark.xfail(strict=True, reason="a second -p/-a of one command: the rule reads the first after its tool only")
@KNOWN_GAP
@given(st.sampled_from(["mysql", "mysqldump", "sshpass"]), WORD, SECRET, SECRET)
def test_a_second_password_flag_of_one_command_goes(tool: str, word: str, first: str, second: str) -> None:
    """``mysql -p<a> ... -p<b>`` (a wrapper that passes -p twice, the last winning): the rule reads the -p after
    its tool and goes on from that value, where no tool precedes the second -p."""
    assume(first not in second and second not in first)
    assert second not in Redactor().text(f"{tool} -p{first} {word} -p{second} {word}")


@pytest.mark.xfail(strict=True, reason="a raw / ? # in a URL's password: where the userinfo ends is ambiguous")
@KNOWN_GAP
@given(st.sampled_from(["postgres", "redis", "amqp"]), WORD, SECRET, st.sampled_from(["/", "?", "#"]), SECRET)
def test_a_url_password_with_a_raw_path_character_goes(scheme: str, user: str, head: str, char: str, tail: str) -> None:
    """``postgres://u:ab/cd@db/x`` (the password not percent-encoded, which drivers often accept): the userinfo
    rule stops at the first / ? #, as RFC 3986 reads it, so the password's tail is shown. Reading on to an @ would
    take ``https://host/path/user@example.org`` for a password."""
    assert tail not in Redactor().text(f"{scheme}://{user}:{head}{char}{tail}@db.example/x")


@pytest.mark.xfail(strict=True, reason="log lines are redacted one at a time: a flag ending a line has no value")
@KNOWN_GAP
@given(NAME, SECRET)
def test_a_flags_value_on_the_next_log_line_goes(name: str, secret: str) -> None:
    """``--db-password`` ending a line, its value on the next (an argv printed one item a line): the next line is
    not indented under it, as a YAML value is, so nothing says it is the value and not the next log line."""
    assert not [line for line in Redactor().lines([f"args: --{name}", secret]) if secret in line]


@settings(max_examples=examples(100))
@given(
    st.sampled_from(["mysql -p", "redis-cli -a", "sshpass -p", "docker login -u bob -p", "ldapsearch -w"]),
    st.lists(st.text(string.ascii_letters + string.digits + "'\"!", min_size=1, max_size=8), min_size=2, max_size=4)
    .map(" ".join)
    .filter(lambda pw: pw[0] not in "'\""),  # one that begins with an unclosed quote: README Secrets' known gap
    st.sampled_from(["mysql", "/usr/bin/mysql", "/opt/My Tools/mysql"]),
)
def test_a_password_item_with_spaces_or_quotes_goes_whole(head: str, secret: str, program: str) -> None:
    """A flag's value that is an item of its own goes whole, whatever it holds (the line the items make ends it
    at its first space or quote), and a program's path may have a space in a folder's name."""
    argv = [*head.split(), secret]
    if argv[0] == "mysql":
        argv[0] = program
    out = Redactor().data(argv)
    assert out[-1] == "***", out
    assert out[:-1] == argv[:-1] or head.startswith("docker")
