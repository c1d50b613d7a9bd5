"""The command line as an operator uses it, against a real daemon: selectors and groups, status exit codes,
signals, logs (several at once, following, the daemon's own, with the daemon down), and the small
manners (--version, help for every option, a closed pipe, plain text)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from helpers import PY, DaemonHandle, wait_for

from foss_supervisor.cli.dispatch import SUBCOMMANDS, build_parser
from foss_supervisor.errors import CommandError

CHILD = """
import signal, sys, time
name, out = sys.argv[1], sys.argv[2]
def note(sig, frame):
    with open(out, "a") as f:
        f.write(f"{name} got {signal.Signals(sig).name}\\n")
signal.signal(signal.SIGHUP, note)
signal.signal(signal.SIGUSR1, note)
sys.stdout.buffer.write(b"raw \\xff\\xfe bytes\\n")
i = 0
while True:
    print(f"{name} line {i}", flush=True)
    i += 1
    time.sleep(0.05)
"""

PROGRAMS = """
programs:
  web: {{command: ['{py}', '{child}', 'web-{{replica}}', '{out}'], replicas: 2}}
  api: {{command: ['{py}', '{child}', api, '{out}']}}
  worker: {{command: ['{py}', '{child}', worker, '{out}']}}
groups:
  backend: [api, worker]
"""


@pytest.fixture
def fleet(daemon: DaemonHandle) -> DaemonHandle:
    child = daemon.tmp / "child.py"
    child.write_text(CHILD)
    daemon.write_config(PROGRAMS.format(py=PY, child=child, out=daemon.tmp / "signals.txt"))
    daemon.start()
    wait_for(lambda: all(p["state"] == "RUNNING" for p in daemon.call("status")["programs"]), 20, "all running")
    return daemon


def states(d: DaemonHandle) -> dict[str, str]:
    return {p["name"]: p["state"] for p in d.call("status")["programs"]}


def test_ctl_takes_all_groups_replica_sets_and_globs(fleet: DaemonHandle) -> None:
    result = fleet.cli("ctl", "stop", "backend")
    assert result.returncode == 0, result.stderr
    assert states(fleet) == {"web-0": "RUNNING", "web-1": "RUNNING", "api": "STOPPED", "worker": "STOPPED"}
    assert fleet.cli("ctl", "stop", "web-*").returncode == 0
    assert set(states(fleet).values()) == {"STOPPED"}
    assert fleet.cli("ctl", "start", "all").returncode == 0
    assert set(states(fleet).values()) == {"RUNNING"}
    before = fleet.program("web-1")["pid"]
    assert fleet.cli("ctl", "restart", "web").returncode == 0
    assert fleet.program("web-1")["pid"] != before
    unknown = fleet.cli("ctl", "stop", "nope")
    assert (
        unknown.returncode == 1 and "known programs: api, web, web-0, web-1, worker; groups: backend" in unknown.stderr
    )


def test_status_filters_and_exits_3_when_a_program_is_not_as_wanted(daemon: DaemonHandle) -> None:
    daemon.write_config(
        "programs:\n"
        f"  ok: {{command: ['{PY}', '-c', 'import time; time.sleep(600)']}}\n"
        f"  broken: {{command: ['{PY}', '-c', 'raise SystemExit(3)'], start_retries: 0}}\n"
    )
    daemon.start()
    wait_for(lambda: daemon.program("broken")["state"] == "FATAL", 20, "broken FATAL")
    wait_for(lambda: daemon.program("ok")["state"] == "RUNNING", 20, "ok RUNNING")
    everything = daemon.cli("status")
    assert everything.returncode == 3
    assert "FATAL*" in everything.stdout and "not in its wanted state" in everything.stdout
    only_ok = daemon.cli("status", "ok")
    assert only_ok.returncode == 0 and "broken" not in only_ok.stdout
    row = next(line for line in only_ok.stdout.splitlines() if line.startswith("ok "))
    assert "up for" not in row  # the INFO column says what is useful now, not the start-up reason
    as_json = daemon.cli("status", "broken", "--json")  # scripts parse the JSON: exit 0, the verdict inside
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["all_as_wanted"] is False
    assert daemon.cli("ctl", "stop", "ok").returncode == 0
    assert daemon.cli("status", "ok").returncode == 0  # stopped by hand is its wanted state


def test_ctl_signal_by_name_and_number_to_the_selected_programs(fleet: DaemonHandle) -> None:
    out = fleet.tmp / "signals.txt"
    result = fleet.cli("ctl", "signal", "HUP", "backend")
    assert result.returncode == 0, result.stderr
    assert "api: sent SIGHUP to pid" in result.stdout
    assert fleet.cli("ctl", "signal", str(int(__import__("signal").SIGUSR1)), "web-0").returncode == 0
    wait_for(lambda: out.exists() and len(out.read_text().splitlines()) == 3, 10, "three signals noted")
    assert sorted(out.read_text().splitlines()) == ["api got SIGHUP", "web-0 got SIGUSR1", "worker got SIGHUP"]
    bad = fleet.cli("ctl", "signal", "NOPE", "api")
    assert bad.returncode == 1 and "unknown signal 'NOPE'" in bad.stderr
    fleet.cli("ctl", "stop", "api")
    stopped = fleet.cli("ctl", "signal", "HUP", "api")
    assert stopped.returncode == 1 and "not running" in stopped.stdout


def test_logs_of_several_programs_are_prefixed_and_followed_interleaved(fleet: DaemonHandle) -> None:
    wait_for(lambda: "api line 3" in fleet.cli("logs", "api", "-n", "5").stdout, 10, "api output")
    both = fleet.cli("logs", "backend", "-n", "2")
    assert both.returncode == 0
    assert any(line.startswith("api    | api line") for line in both.stdout.splitlines())
    assert any(line.startswith("worker | worker line") for line in both.stdout.splitlines())
    argv = [PY, "-m", "foss_supervisor", "logs", "--config", str(fleet.config_path), "web", "-f", "-n", "0"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=fleet.env) as follower:
        try:
            seen: set[str] = set()
            assert follower.stdout is not None
            deadline = time.monotonic() + 20
            while seen != {"web-0", "web-1"} and time.monotonic() < deadline:
                line = follower.stdout.readline()
                seen.add(line.split(" | ")[0].strip())
            assert seen == {"web-0", "web-1"}
        finally:
            follower.terminate()
            follower.wait(10)


def test_logs_keep_raw_bytes_escaped_show_the_daemon_log_and_list_names(fleet: DaemonHandle) -> None:
    wait_for(lambda: "api line" in fleet.cli("logs", "api", "-n", "500").stdout, 10, "api output")
    assert "raw \\xff\\xfe bytes" in fleet.cli("logs", "api", "-n", "500").stdout
    daemon_log = fleet.cli("logs", "daemon", "-n", "20")
    assert (
        daemon_log.returncode == 0 and '"event": "daemon_starting"' in fleet.cli("logs", "daemon", "-n", "5000").stdout
    )
    unknown = fleet.cli("logs", "nope")
    assert unknown.returncode == 1
    assert "known programs: api, web, web-0, web-1, worker; groups: backend; also: daemon, pipeline" in unknown.stderr
    assert "PosixPath(" not in (fleet.state_dir / "foss-supervisor.log").read_text()


def test_logs_read_the_files_when_the_daemon_is_down(fleet: DaemonHandle) -> None:
    wait_for(lambda: "worker line 2" in fleet.cli("logs", "worker").stdout, 10, "worker output")
    assert fleet.proc is not None
    fleet.proc.terminate()
    fleet.proc.wait(30)
    result = fleet.cli("logs", "worker", "-n", "3")
    assert result.returncode == 0, result.stderr
    assert "not running; reading the log files" in result.stdout
    assert "worker line" in result.stdout


def test_closed_pipe_ends_quietly(fleet: DaemonHandle) -> None:
    wait_for(lambda: len(fleet.cli("logs", "all", "-n", "50").stdout.splitlines()) > 100, 20, "enough output")
    argv = [PY, "-m", "foss_supervisor", "logs", "--config", str(fleet.config_path), "all", "-n", "100000"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=fleet.env) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.readline()
        proc.stdout.close()  # what `| head -1` does
        err = proc.stderr.read().decode()
        proc.wait(30)
    assert "Traceback" not in err and "BrokenPipeError" not in err


def test_restart_does_not_talk_about_a_flag_nobody_passed(daemon: DaemonHandle) -> None:
    daemon.write_config()
    first = daemon.cli("start")
    assert first.returncode == 0, first.stderr
    result = daemon.cli("restart")
    assert result.returncode == 0, result.stderr
    assert "--restart" not in result.stdout + result.stderr
    assert "stopping the running instance" in result.stdout
    # a reader that goes away (`restart | head -1`) silences the command, never stops it halfway
    old_pid = daemon.read_pid()
    argv = [PY, "-m", "foss_supervisor", "restart", "--config", str(daemon.config_path)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=daemon.env) as proc:
        assert proc.stdout is not None
        proc.stdout.close()
        assert proc.wait(90) == 0
    new_pid = daemon.read_pid()
    assert new_pid is not None and new_pid != old_pid
    daemon.extra_pids.append(new_pid)
    assert daemon.ping() is not None


def test_version_and_help_for_every_option() -> None:
    version = subprocess.run([PY, "-m", "foss_supervisor", "--version"], capture_output=True, text=True, timeout=30)
    assert version.returncode == 0 and version.stdout.startswith("foss-supervisor ")
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [
        f"{name} {action.dest}"
        for name in SUBCOMMANDS
        for action in sub.choices[name]._actions
        if action.help is None and not isinstance(action, argparse._HelpAction)
    ]
    assert missing == []


def test_no_config_error_reaches_the_user_as_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("programs:\n  a: {command: [x], stop_timeout: soon}\n  b: {command: '$NOPE_NOT_SET'}\n")
    env = {k: v for k, v in os.environ.items() if k != "NOPE_NOT_SET"}
    result = subprocess.run(
        [PY, "-m", "foss_supervisor", "start", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert result.returncode == 2
    assert f"{bad}:2: programs.a.stop_timeout" in result.stderr and f"{bad}:3: programs.b.command" in result.stderr


def test_ctl_scale_adds_and_removes_replicas_and_refuses_with_other_edits(fleet: DaemonHandle) -> None:
    result = fleet.cli("ctl", "scale", "web", "3")
    assert result.returncode == 0, result.stderr
    assert "added: web-2" in result.stdout
    wait_for(lambda: states(fleet).get("web-2") == "RUNNING", 20, "web-2 running")
    assert fleet.cli("ctl", "stop", "web").stdout.count("STOPPED") == 3  # the replica set now has three
    assert fleet.cli("ctl", "scale", "web", "1").returncode == 0
    assert set(states(fleet)) == {"web-0", "api", "worker"}  # names follow the file's count: never renamed
    fleet.config_path.write_text(fleet.config_path.read_text().replace("groups:", "  extra: {command: [x]}\ngroups:"))
    refused = fleet.cli("ctl", "scale", "api", "2")
    assert refused.returncode == 1 and "other changes (extra)" in refused.stderr
    assert set(states(fleet)) == {"web-0", "api", "worker"}
    assert fleet.cli("ctl", "scale", "nope", "2").returncode == 1


def test_scales_at_once_take_turns_and_never_break_the_daemon(fleet: DaemonHandle) -> None:
    """Two scale commands at once (found by schemathesis: a KeyError, a 500, replicas stopped twice): reloads
    take turns; each scale applies whole or is refused as one that raced another, and the fleet is one of
    the counts asked for."""
    import threading

    from foss_supervisor.control.client import call

    refused: list[str] = []
    crashed: list[BaseException] = []

    def scale(count: int) -> None:
        try:
            call(fleet.socket_path, "scale", timeout_s=60.0, name="web", replicas=count)
        except CommandError as exc:
            refused.append(str(exc))
        except BaseException as exc:  # collected and asserted on below
            crashed.append(exc)

    threads = [threading.Thread(target=scale, args=(n,)) for n in (4, 1, 3, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert crashed == [] and not any(t.is_alive() for t in threads)
    assert all("other changes (web-" in why for why in refused), refused
    assert len(refused) < len(threads) and fleet.ping() is not None
    web = sorted(n for n in states(fleet) if n.startswith("web"))
    assert web in (["web-0"], ["web-0", "web-1", "web-2"], ["web-0", "web-1", "web-2", "web-3"]), web
    wait_for(lambda: all(states(fleet)[n] == "RUNNING" for n in web), 20, "the replicas running")


def test_stop_works_when_the_config_file_has_since_been_broken(daemon: DaemonHandle) -> None:
    daemon.write_config(f"programs:\n  a: {{command: ['{PY}', '-c', 'import time; time.sleep(600)']}}\n")
    daemon.start()
    child = daemon.program("a")["pid"]
    daemon.config_path.write_text(daemon.config_path.read_text() + "  b: {command: [x], stop_timeout: soon}\n")
    result = daemon.cli("stop")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "config refused" in result.stderr and "stopping the daemon" in result.stderr
    assert daemon.proc is not None and daemon.proc.wait(30) == 0
    wait_for(lambda: not Path(f"/proc/{child}").exists(), 10, "the program ended with the daemon")


def test_logs_pipeline_shows_the_runner_and_its_steps(daemon: DaemonHandle) -> None:
    daemon.write_config("pipelines:\n  orders: {on_new_files: false, demo_data: false}\n")
    daemon.start()
    daemon.call("demo_data", orders=500)
    run = daemon.call("pipeline_run", name="orders", wait=True)
    assert run["status"] in ("succeeded", "succeeded_with_warnings")
    result = daemon.cli("logs", "pipeline", "-n", "500")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line)["event"] for line in result.stdout.splitlines()]
    assert {"pipeline_run_started", "pipeline_step_state", "pipeline_run_finished"} <= set(events)
    assert "program_state" not in events and "daemon_state" not in events  # only the pipeline's share


def test_reload_refuses_a_config_other_than_the_daemons(daemon: DaemonHandle) -> None:
    """`reload --dry-run --config other.yaml` would check the daemon's own file and say all is well: refused,
    with the commands that do check or run the other file."""
    daemon.write_config()
    daemon.start()
    other = daemon.tmp / "other.yaml"
    other.write_text(daemon.config_path.read_text().replace("programs: {}", "programs: {extra: {command: [x]}}"))
    refused = daemon.cli("reload", "--dry-run", "--config", str(other))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    said = refused.stdout + refused.stderr
    assert f"the daemon runs {daemon.config_path}" in said and f"config save {other} --dry-run" in said
    assert daemon.cli("reload", "--dry-run").returncode == 0  # its own file, as before
