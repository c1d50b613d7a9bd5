"""Log search across programs (issue 21: "log search across programs"): the dashboard's ``/logs?q=``, the
``logs`` command's ``contains`` and ``logs --grep``, with the daemon up and down, on a real daemon."""

from __future__ import annotations

import pytest
from helpers import PY, DaemonHandle, get, wait_for

from foss_supervisor.errors import SupervisorError

# prints numbered lines; every third one says "needle" in some case
TALKER = (
    "import sys, time\n"
    "for n in range(30):\n"
    "    print(sys.argv[1], n, 'NeEdLe' if n % 3 == 0 else 'hay', flush=True)\n"
    "time.sleep(600)\n"
)


def test_a_search_finds_lines_of_every_program_and_only_those(daemon: DaemonHandle) -> None:
    daemon.write_config(
        "programs:\n"
        + "".join(f"  {name}: {{command: [{PY!r}, '-c', {TALKER!r}, {name}]}}\n" for name in ("alpha", "beta"))
    )
    daemon.start()
    wait_for(
        lambda: len(daemon.call("logs", names=["all"], lines=100, contains="29 hay")["lines"]["beta"]) == 1,
        20,
        "printed",
    )

    page = get(daemon.port, "/logs?q=needle&format=json").json()
    by_source: dict[str, list[str]] = {}
    for match in page["matches"]:
        by_source.setdefault(match["source"], []).append(match["line"])
    for name in ("alpha", "beta"):
        assert by_source[name] == [f"{name} {n} NeEdLe" for n in range(0, 30, 3)], by_source
    html = get(daemon.port, "/logs?q=needle").text
    assert "alpha 27 NeEdLe" in html and "beta 0 NeEdLe" in html and "hay" not in html
    assert get(daemon.port, "/logs?q=" + "x" * 257).status == 400

    cli = daemon.cli("logs", "--grep", "NEEDLE", "-n", "2")
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.splitlines() == [
        "alpha | alpha 24 NeEdLe",
        "alpha | alpha 27 NeEdLe",
        "beta  | beta 24 NeEdLe",
        "beta  | beta 27 NeEdLe",
    ]
    assert daemon.cli("logs", "beta", "--grep", "no such text").stdout == ""
    with pytest.raises(SupervisorError, match="256"):  # a search text is bounded like every argument
        daemon.call("logs", names=["all"], contains="x" * 257)

    daemon.cli("stop")
    offline = daemon.cli("logs", "alpha", "--grep", "needle", "-n", "1")
    assert offline.returncode == 0 and offline.stdout.splitlines()[-1:] == ["alpha 27 NeEdLe"], offline
    assert "not running" in offline.stdout.splitlines()[0]
