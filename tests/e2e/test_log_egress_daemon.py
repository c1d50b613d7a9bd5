"""Log text never leaves a real daemon unredacted, whatever the route: a program prints generated secrets
(the value of a secret-looking env variable, a value listed under ``secrets:``, a URL password, a private key
block) in generated text, and every way its log is read comes back without them: the CLI's ``logs`` and
``logs -f``, the ``log_read`` and ``logs`` commands over HTTP, the viewer's JSON twin and its text download.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from helpers import PY, DaemonHandle, command, config_literal, free_port, get, wait_for
from helpers.strategies import KEY_LINE, LOG_TEXT, SECRET, SECRET_NAME
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

# prints its secrets in every form, numbered, a few times a second (so a follower sees new lines come)
APP = """import json, os, sys, time
plan = json.loads(sys.argv[1])
n = 0
while True:
    n += 1
    s = plan["secrets"]
    print(n, plan["before"], os.environ[plan["env_name"]], plan["after"], "listed", s[1], flush=True)
    print(n, "dsn", f"postgres://app:{s[2]}@db/x", plan["after"], flush=True)
    print(n, "-----BEGIN RSA PRIVATE KEY-----", flush=True)
    for line in plan["key_lines"]:
        print(line, flush=True)
    print("-----END RSA PRIVATE KEY-----", n, "done", flush=True)
    time.sleep(0.1)
"""


@st.composite
def planted(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "secrets": draw(st.lists(SECRET, min_size=3, max_size=3, unique=True)),
        "env_name": draw(SECRET_NAME.filter(lambda n: re.fullmatch(r"[A-Za-z_]\w*", n) is not None)),
        "before": draw(LOG_TEXT),
        "after": draw(LOG_TEXT),
        "key_lines": draw(st.lists(KEY_LINE, min_size=1, max_size=4, unique=True)),
    }


def _follow(d: DaemonHandle, want_after: int) -> str:
    """What ``logs -f app`` prints until it shows a line numbered past ``want_after`` (bounded)."""
    argv = [PY, "-m", "foss_supervisor", "logs", "--config", str(d.config_path), "-f", "-n", "0", "app"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=d.env, text=True)
    out: list[str] = []
    try:
        assert proc.stdout is not None

        def seen_new() -> bool:
            line = proc.stdout.readline() if proc.stdout else ""
            out.append(line)
            numbers = re.match(r"(\d+) ", line)
            return bool(numbers and int(numbers[1]) > want_after + 1) or proc.poll() is not None

        wait_for(seen_new, 30, "logs -f printed new lines")
    finally:
        proc.kill()
        proc.wait(timeout=10)
    return "".join(out)


@settings(
    max_examples=3,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(planted())
@example(  # text that looks like the config's variables: "$n" once made the daemon refuse the config
    {
        "secrets": ["s3cretValue1", "l1stedValue2", "urlPassw0rd3"],
        "env_name": "DB_PASSWORD",
        "before": "$n ${x} %(here)s",
        "after": "%%(y)s $$",
        "key_lines": ["MIIEowIBAAKCAQEA1234"],
    }
)
def test_no_route_of_log_text_carries_a_secret(plan: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="logegress-") as tmp_name:
        d = DaemonHandle(Path(tmp_name), free_port())
        s = plan["secrets"]
        config = {
            "secrets": [config_literal(s[1])],
            "programs": {
                # the plan is text for the app, not variables: written as literals ("$n" was refused as unset)
                "app": {
                    "command": [PY, "-c", config_literal(APP), config_literal(json.dumps(plan))],
                    "env": {plan["env_name"]: config_literal(s[0])},
                },
            },
        }
        d.write_config(yaml.safe_dump(config))
        seen: dict[str, str] = {}
        try:
            d.start()
            wait_for(lambda: "done" in json.dumps(d.call("logs", names=["app"], lines=50)), 20, "the app printed")
            seen["cli logs"] = d.cli("logs", "app", "-n", "200").stdout
            last = max(int(n) for n in re.findall(r"^(\d+) ", seen["cli logs"], re.M))
            seen["cli logs -f"] = _follow(d, last)
            seen["GET text"] = get(d.port, "/logs/app?format=text").text
            seen["GET json"] = get(d.port, "/logs/app?format=json").text
            seen["log_read"] = command(d.port, "log_read", {"source": "app", "offset": 0}).text
            seen["logs"] = command(d.port, "logs", {"names": ["app"], "lines": 500}).text
            seen["GET search"] = get(d.port, "/logs?q=dsn&format=json").text
            seen["cli logs --grep"] = d.cli("logs", "app", "--grep", "listed").stdout
            for secret in s:  # a search cannot find what reading would not show (its reply echoes q: not kept)
                assert get(d.port, f"/logs?q={quote(secret)}&format=json").json()["matches"] == []
        finally:
            d.cleanup()
        seen["cli logs offline"] = d.cli("logs", "app", "-n", "200").stdout
    assert "done" in seen["GET text"] and "done" in seen["cli logs offline"]  # the routes did carry the log
    assert "dsn" in seen["GET search"] and "listed" in seen["cli logs --grep"]
    assert re.search(r"^\d+ ", seen["cli logs -f"], re.M), seen["cli logs -f"]
    hidden = [*s, *plan["key_lines"]]
    leaks = {where: [x for x in hidden if x in text] for where, text in seen.items()}
    assert not {where: found for where, found in leaks.items() if found}
