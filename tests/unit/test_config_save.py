"""Config saves that cannot destroy: the gate for every destructive text (a property, on the pure gate and on a
real daemon), daemon-level settings kept until a restart, racing saves, generations kept, diffed, restored,
stray temporary files removed at start, and the CLI's ``config`` subcommand."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import PY, DaemonHandle, wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.config import parse_config
from foss_supervisor.config.change import holds_no_settings, pin_daemon_settings, save_refusal
from foss_supervisor.config.history import MAX_DIFF_LINES, ConfigHistory
from foss_supervisor.errors import CommandError, ConfirmationRequired

SLEEPER = f"{{command: [{PY!r}, '-c', 'import time; time.sleep(300)'], start_timeout: 0.1}}"
RUNNING = ("alpha", "beta")

# ------------------------------------------------------------------------------------------ the class of texts

_comment = st.from_regex(r"#[ -~]{0,24}", fullmatch=True)
_filler = st.lists(st.one_of(st.just(""), st.just("   "), _comment), max_size=4).map("\n".join)
# a text that sets nothing: empty, blank, comments, a document marker, an empty mapping
BLANK = st.builds(
    lambda a, mark, b: f"{a}\n{mark}\n{b}", _filler, st.sampled_from(["", "---", "{}", "--- {}"]), _filler
)
_others = st.lists(st.from_regex(r"[c-z][a-z0-9_]{0,8}", fullmatch=True), min_size=1, max_size=4, unique=True)


def _settings(state_dir: Path, port: int) -> st.SearchStrategy[list[str]]:
    """Top-level lines other than programs: the running daemon's own, other valid ones, or none."""
    lines = [
        f"state_dir: {state_dir}",
        f"dashboard: {{port: {port}}}",
        "debug: false",
        "log: {backups: 2}",
        "config_generations: 4",
        "hooks: {}",
    ]
    return st.lists(st.sampled_from(lines), unique=True, max_size=len(lines))


def destructive_texts(state_dir: Path, port: int) -> st.SearchStrategy[str]:
    """Every shape of a text that keeps none of the running programs: blank ones, settings with an empty or
    missing ``programs``, and valid files that name only other programs."""
    empty_programs = st.sampled_from(["programs: {}", "programs:", "programs: null", ""])
    others = _others.map(lambda names: "programs:\n" + "".join(f"  {n}: {SLEEPER}\n" for n in names))

    def assemble(head: list[str], programs: str, pad: str) -> str:
        return "\n".join([pad, *head, programs, pad]) + "\n"

    return st.one_of(BLANK, st.builds(assemble, _settings(state_dir, port), st.one_of(empty_programs, others), _filler))


def config_text(state_dir: Path, port: int, programs: tuple[str, ...] = RUNNING, extra: str = "") -> str:
    body = "".join(f"  {n}: {SLEEPER}\n" for n in programs)
    return f"state_dir: {state_dir}\ndashboard: {{port: {port}}}\n{extra}programs:\n{body}"


# ------------------------------------------------------------------------------------------ the pure gate


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_every_destructive_text_needs_a_confirmation(
    data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.getbasetemp()
    current = config_text(folder / "state", 15000)
    file = folder / "config.yaml"
    running = parse_config(current, file)
    text = data.draw(destructive_texts(folder / "state", 15000))
    reason = save_refusal(current, text, parse_config(text, file), running, RUNNING)
    assert reason is not None and reason.startswith("this save would ")
    if holds_no_settings(text):
        assert "empty the config file" in reason
    assert "stop every running program (2: alpha, beta)" in reason


@settings(max_examples=150, deadline=None)
@given(keep=st.sampled_from([("alpha",), ("beta",), RUNNING]), others=_others, pad=_filler)
def test_a_text_that_keeps_a_running_program_passes(
    keep: tuple[str, ...], others: list[str], pad: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.getbasetemp()
    file = folder / "config.yaml"
    current = config_text(folder / "state", 15000)
    text = pad + "\n" + config_text(folder / "state", 15000, (*keep, *others))
    assert save_refusal(current, text, parse_config(text, file), parse_config(current, file), RUNNING) is None


def test_gate_edges(tmp_path: Path) -> None:
    file = tmp_path / "config.yaml"
    current = config_text(tmp_path, 15000)
    running = parse_config(current, file)
    empty = parse_config("", file)
    # nothing up (all stopped by hand), some configured: removing them all still asks
    assert "remove every configured program (2: alpha, beta)" in str(save_refusal(current, "{}", empty, running, []))
    # a blank file saved over a blank file destroys nothing
    nothing = parse_config("# none\n", file)
    assert save_refusal("\n# old\n", "# none\n", nothing, nothing, []) is None
    # a file that is not valid YAML is never taken for an empty one
    assert not holds_no_settings("programs: [\n") and holds_no_settings("# x\n---\n{}\n")
    many = tuple(f"p{i}" for i in range(9))
    reason = save_refusal(current, "programs: {}", empty, parse_config(config_text(tmp_path, 1, many), file), many)
    assert "(9: p0, p1, p2, p3, p4 and 4 more)" in str(reason)


def test_daemon_level_settings_keep_their_running_values(tmp_path: Path) -> None:
    file = tmp_path / "config.yaml"
    running = parse_config(config_text(tmp_path / "a", 15000), file)
    moved = parse_config(
        config_text(tmp_path / "b", 15001, ("alpha", "gamma"), "debug: true\nlog: {backups: 9}\n"), file
    )
    pinned, waiting = pin_daemon_settings(running, moved)
    assert waiting == ["state_dir", "dashboard.port", "debug", "log.backups", "data_dir"]
    assert (pinned.state_dir, pinned.dashboard_port, pinned.debug, pinned.log_backups, pinned.data_path) == (
        running.state_dir,
        15000,
        False,
        3,
        running.data_path,
    )
    assert sorted(pinned.programs) == ["alpha", "gamma"]  # programs apply at once
    same, none_waiting = pin_daemon_settings(running, parse_config(config_text(tmp_path / "a", 15000), file))
    assert none_waiting == [] and same == running


# ------------------------------------------------------------------------------------------ generations


def test_generations_are_private_numbered_pruned_and_diffed(tmp_path: Path) -> None:
    file = tmp_path / "config.yaml"
    history = ConfigHistory(file)
    for i in range(1, 6):
        history.keep(f"version: {i}\nsecret: hunter2\n".encode(), 1_700_000_000.0 + i, keep=3)
    kept = history.generations()
    assert [g.number for g in kept] == [5, 4, 3] and kept[0].saved_at == 1_700_000_005.0
    assert stat.S_IMODE(history.folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(g.path.stat().st_mode) == 0o600 for g in kept)
    current = b"version: 6\nsecret: hunter2\n"
    diff = history.diff(4, current)
    assert diff.splitlines() == [
        f"--- {file} (generation 4)",
        f"+++ {file} (current)",
        "@@ -1,2 +1,2 @@",
        "-version: 4",
        "+version: 6",
        " secret: hunter2",
    ]
    summary = history.summary(current)
    assert [(s["generation"], s["lines_added"], s["lines_removed"]) for s in summary] == [
        (5, 1, 1),
        (4, 1, 1),
        (3, 1, 1),
    ]
    with pytest.raises(LookupError, match="kept: 5, 4, 3"):
        history.read(1)
    assert history.keep(b"x", 0.0, keep=0) is None and history.generations() == []


def test_a_diff_deep_in_a_long_file_is_numbered_right_and_a_huge_one_is_bounded(tmp_path: Path) -> None:
    history = ConfigHistory(tmp_path / "config.yaml")
    old = [f"line {i}\n" for i in range(20_000)]
    new = list(old)
    new[15_000] = "changed\n"
    history.keep("".join(old).encode(), 0.0, keep=2)
    diff = history.diff(1, "".join(new).encode()).splitlines()
    assert diff[2:] == [
        "@@ -14998,7 +14998,7 @@",
        " line 14997",
        " line 14998",
        " line 14999",
        "-line 15000",
        "+changed",
        " line 15001",
        " line 15002",
        " line 15003",
    ]
    scattered = [f"other {i}\n" if i % 2 else line for i, line in enumerate(old)]
    too_large = history.diff(1, "".join(scattered).encode())
    assert f"more than {MAX_DIFF_LINES} lines" in too_large and "diff -u" in too_large


# ------------------------------------------------------------------------------------------ a real daemon


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
