"""Variables in config values seen by a real child of a real daemon, and an unset one refusing the start with
its file, line and key."""

from __future__ import annotations

import json
import socket

from helpers import PY, DaemonHandle, wait_for


def test_a_real_child_sees_interpolated_values(daemon: DaemonHandle) -> None:
    out = daemon.tmp / "seen.json"
    (daemon.tmp / "app.env").write_text("FROM_FILE=${HOME}/data\n")
    script = "import json,os,sys; json.dump({'argv': sys.argv[1:], 'env': dict(os.environ)}, open(sys.argv[1], 'w'))"
    daemon.write_config(
        "programs:\n"
        "  show:\n"
        f"    command: ['{PY}', '-c', \"{script}\", '{out}', '$HOME', '%(ENV_HOME)s', '$$HOME']\n"
        "    env_file: app.env\n"
        "    env: {PATH: '/opt/tools/bin:${PATH}', HOST: '%(host_node_name)s'}\n"
        "    autorestart: never\n"
    )
    daemon.start()
    seen = wait_for(lambda: out.exists() and out.stat().st_size and json.loads(out.read_text()), 20, "child output")
    home = daemon.env["HOME"]
    assert seen["argv"] == [str(out), home, home, "$HOME"]
    assert seen["env"]["FROM_FILE"] == f"{home}/data"
    assert seen["env"]["PATH"] == f"/opt/tools/bin:{daemon.env['PATH']}"
    assert seen["env"]["HOST"] == socket.gethostname()


def test_unset_variable_refuses_start_with_file_line_key(daemon: DaemonHandle) -> None:
    daemon.write_config("programs:\n  a:\n    command: [x, '${FOSS_TEST_SURELY_UNSET}']\n")
    result = daemon.cli("start")
    assert result.returncode == 2
    assert f"{daemon.config_path}:" in result.stderr
    assert "programs.a.command[1]: variable FOSS_TEST_SURELY_UNSET is not set" in result.stderr
