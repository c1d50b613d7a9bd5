"""Config saves on a real daemon: every destructive text refused until confirmed (a property), a confirmed
empty save keeps the daemon's own settings and can be restored, racing saves, generations kept and stray
temporary files removed at start, a reload that moves the dashboard, and the CLI's ``config`` subcommand."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest
from helpers import DaemonHandle, need_root, wait_for
from helpers.strategies import RUNNING, config_text, destructive_texts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.errors import CommandError, ConfirmationRequired


@pytest.fixture
def running(daemon: DaemonHandle) -> DaemonHandle:
    daemon.config_path.write_text(config_text(daemon.state_dir, daemon.port))
    daemon.start()
    wait_for(lambda: all(daemon.program(n)["state"] == "RUNNING" for n in RUNNING), 20, "both programs running")
    return daemon


def pids(d: DaemonHandle) -> dict[str, Any]:
    return {p["name"]: (p["state"], p["pid"]) for p in d.call("status")["programs"]}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_real_daemon_refuses_every_destructive_save_and_changes_nothing(
    running: DaemonHandle, data: st.DataObject
) -> None:
    d = running
    before, up = d.config_path.read_bytes(), pids(d)
    text = data.draw(destructive_texts(d.state_dir, d.port))
    preview = d.call("config_write", text=text, dry_run=True)
    assert preview["needs_confirmation"].startswith("this save would ")
    with pytest.raises(ConfirmationRequired, match="nothing changed: to save it anyway, confirm: allow_empty=true"):
        d.call("config_write", text=text, dry_run=False)
    assert d.config_path.read_bytes() == before and pids(d) == up
    assert not d.config_path.with_name("config.yaml.history").exists()


def test_a_confirmed_empty_save_keeps_the_daemons_own_settings_and_can_be_restored(running: DaemonHandle) -> None:
    d = running
    before = d.config_path.read_text()
    reply = d.call("config_write", text="", dry_run=False, allow_empty=True)
    assert reply["generation"] == 1 and "stop every running program" in reply["needs_confirmation"]
    assert sorted(reply["plan"]["removed"]) == list(RUNNING)
    assert "state_dir" in reply["plan"]["needs_daemon_restart"]  # (the port is set by FOSS_SUPERVISOR_PORT here)
    assert d.config_path.read_bytes() == b"" and d.call("status")["programs"] == []
    ping = d.call("ping")  # the daemon still says where it really runs, so the CLI does not lose it
    assert ping["state_dir"] == str(d.state_dir)
    assert d.call("status")["daemon"]["dashboard_url"] == f"http://127.0.0.1:{d.port}/"
    assert d.call("config_show")["config"]["state_dir"] == str(d.state_dir)
    assert "reload_needs_daemon_restart" in (d.state_dir / "foss-supervisor.log").read_text()
    history = d.call("config_history")
    assert [g["generation"] for g in history["generations"]] == [1] and history["generations"][0]["lines_added"] > 0
    assert "-  alpha: " in d.call("config_diff", generation=1)["diff"]
    dry = d.call("config_restore", generation=1, dry_run=True)
    assert dry["restored"] == 1 and sorted(dry["plan"]["added"]) == list(RUNNING) and dry["needs_confirmation"] is None
    assert d.config_path.read_bytes() == b""
    done = d.call("config_restore", generation=1, dry_run=False)
    assert done["generation"] == 2 and d.config_path.read_text() == before
    wait_for(lambda: all(d.program(n)["state"] == "RUNNING" for n in RUNNING), 20, "programs back")
    with pytest.raises(CommandError, match=r"no generation 7 .* \(kept: 2, 1\)"):
        d.call("config_restore", generation=7, dry_run=False)


def test_racing_saves_and_reloads_all_succeed_one_at_a_time(running: DaemonHandle) -> None:
    d = running
    texts = [config_text(d.state_dir, d.port, (*RUNNING, f"extra{i}")) for i in range(4)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(texts) + 1)

    def save(text: str) -> None:
        barrier.wait(timeout=10)
        try:
            d.call("config_write", text=text, dry_run=False)
        except BaseException as exc:  # collected for the assert below
            errors.append(exc)

    def reload() -> None:
        barrier.wait(timeout=10)
        try:
            d.call("reload")
        except BaseException as exc:  # collected for the assert below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(t,)) for t in texts] + [threading.Thread(target=reload)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    final = d.config_path.read_text()
    assert final in texts
    assert len(d.call("config_history")["generations"]) == len(texts)
    names = {p["name"] for p in d.call("status")["programs"]}
    assert names == {*RUNNING, final.rsplit("  ", 1)[-1].split(":")[0]}  # the running set is the file's
    assert [p.name for p in d.tmp.iterdir() if p.name.endswith(".tmp")] == []


def test_a_save_keeps_config_generations_and_stray_temp_files_go_at_start(daemon: DaemonHandle) -> None:
    d = daemon
    d.config_path.write_text(config_text(d.state_dir, d.port, extra="config_generations: 2\n"))
    d.state_dir.mkdir(parents=True)
    folder = d.config_path.with_name("config.yaml.history")
    folder.mkdir()
    strays = [
        d.tmp / ".config.yaml.4242.tmp",
        d.tmp / ".config.yaml.9f8e7d6c5b4a.tmp",
        folder / ".3.yaml.abc.tmp",
        d.state_dir / ".children.json.77.tmp",
    ]
    for path in strays:
        path.write_text("API_TOKEN: hunter2\n")
    d.start()
    assert [p for p in strays if p.exists()] == []
    for i in range(4):
        d.call(
            "config_write",
            text=config_text(d.state_dir, d.port, extra=f"config_generations: 2\n# {i}\n"),
            dry_run=False,
        )
    assert [g["generation"] for g in d.call("config_history")["generations"]] == [4, 3]
    assert sorted(p.name for p in folder.iterdir()) == ["3.yaml", "4.yaml"]


def test_a_reload_that_moves_the_dashboard_keeps_it_where_it_runs(running: DaemonHandle) -> None:
    d = running
    moved = config_text(d.state_dir, d.port, (*RUNNING, "gamma"), "log: {backups: 7}\n")
    d.config_path.write_text(moved.replace("dashboard: {", "dashboard: {host: 127.0.0.2, "))
    result = d.cli("reload")
    assert result.returncode == 0 and "changed dashboard.host, log.backups" in result.stderr
    assert "until `foss-supervisor restart`" in result.stderr
    assert d.call("status")["daemon"]["dashboard_url"] == f"http://127.0.0.1:{d.port}/"
    assert d.call("config_show")["config"]["log_backups"] == 3
    wait_for(lambda: d.program("gamma")["state"] == "RUNNING", 20, "the added program running")


def test_the_config_cli_saves_refuses_lists_diffs_and_restores(running: DaemonHandle) -> None:
    d = running
    before = d.config_path.read_text()
    empty = d.tmp / "empty.yaml"
    empty.write_text("# nothing here\n")
    refused = d.cli("config", "save", str(empty))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "this save would empty the config file" in refused.stderr and "stop every running program" in refused.stderr
    assert "--allow-empty" in refused.stderr and d.config_path.read_text() == before
    checked = d.cli("config", "save", str(empty), "--dry-run")
    assert checked.returncode == 0 and "needs --allow-empty" in checked.stderr and "would apply" in checked.stdout
    saved = d.cli("config", "save", str(empty), "--allow-empty")
    assert saved.returncode == 0, saved.stderr
    assert "2 removed" in saved.stdout and "generation 1" in saved.stdout
    env = {**d.env, "FOSS_SUPERVISOR_STATE_DIR": str(d.state_dir)}  # the file no longer says where the daemon is
    d.env = env
    listed = d.cli("config", "history")
    assert listed.returncode == 0 and "1 generation(s) kept" in listed.stdout and "current" in listed.stdout
    assert "-  alpha: " in d.cli("config", "diff", "1").stdout
    restored = d.cli("config", "restore", "1")
    assert restored.returncode == 0 and "2 added" in restored.stdout and d.config_path.read_text() == before
    assert d.cli("config", "restore").returncode == 2  # no generation given: usage
    assert os.stat(d.config_path.with_name("config.yaml.history") / "2.yaml").st_size == len("# nothing here\n")


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mode=st.sampled_from([0o600, 0o640, 0o644, 0o660, 0o604, 0o2640]), owner=st.sampled_from([0, 65534]))
def test_a_save_keeps_the_files_mode_and_owner(running: DaemonHandle, mode: int, owner: int) -> None:
    need_root("the daemon runs as root and the file belongs to another user")
    d = running
    os.chown(d.config_path, owner, owner)
    os.chmod(d.config_path, mode)
    text = d.config_path.read_text() + f"# saved with mode {mode:o}\n"
    d.call("config_write", text=text, dry_run=False)
    st_after = d.config_path.stat()
    assert d.config_path.read_text() == text
    assert (st_after.st_mode & 0o7777, st_after.st_uid, st_after.st_gid) == (mode, owner, owner)
