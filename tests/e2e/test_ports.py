"""What each program listens on, in ``status --ports`` and on the dashboard (a real server, a real daemon)."""

from __future__ import annotations

import json

from helpers import PY, DaemonHandle, free_port, get, wait_for


def test_a_programs_listening_port_shows_in_status_and_on_the_dashboard(daemon: DaemonHandle) -> None:
    port = free_port()
    # under a shell that stays its parent: the port belongs to the tree, not to the program's first process
    web = f"sh -c '{PY} -m http.server --bind 127.0.0.1 {port}; exit 1'"
    quiet = f"['{PY}', '-c', 'import time; time.sleep(300)']"
    daemon.write_config(f'programs:\n  web: {{command: "{web}"}}\n  quiet: {{command: {quiet}}}\n')
    daemon.start()

    def ports() -> dict[str, list[str]]:
        reply = json.loads(daemon.cli("status", "--ports", "--json").stdout)
        return {p["name"]: p["ports"] for p in reply["programs"]}

    wait_for(lambda: ports()["web"] == [f"127.0.0.1:{port}"], 20, "web's port in status --ports")
    assert ports()["quiet"] == []
    table = daemon.cli("status", "--ports").stdout
    assert any(line.startswith("web ") and f"127.0.0.1:{port}" in line for line in table.splitlines()), table
    assert "ports" not in json.loads(daemon.cli("status", "--json").stdout)["programs"][0]  # asked for only
    page = get(daemon.port, "/", daemon.bearer()).text
    assert f"127.0.0.1:{port}" in page
