"""Config saves that cannot destroy, the pure parts: the gate for every destructive text (a property),
daemon-level settings kept until a restart, generations numbered, pruned and diffed (on a real daemon:
tests/e2e/test_config_save_daemon.py)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from helpers import examples
from helpers.strategies import (
    FILLER,
    OTHER_NAMES,
    RUNNING,
    config_text,
    destructive_texts,
    moving_texts,
    stopping_texts,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from foss_supervisor.config import parse_config
from foss_supervisor.config.change import holds_no_settings, pin_daemon_settings, save_refusal
from foss_supervisor.config.history import MAX_DIFF_LINES, ConfigHistory

# ------------------------------------------------------------------------------------------ the pure gate


def refusal(folder: Path, text: str) -> str | None:
    """The gate's answer to saving ``text`` over the usual current file (alpha and beta, both running)."""
    file = folder / "config.yaml"
    current = config_text(folder / "state", 15000)
    return save_refusal(current, text, parse_config(text, file), parse_config(current, file), RUNNING)


@settings(max_examples=examples(300), deadline=None)
@given(data=st.data())
def test_every_destructive_text_needs_a_confirmation(
    data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.getbasetemp()
    text = data.draw(destructive_texts(folder / "state", 15000))
    reason = refusal(folder, text)
    assert reason is not None and reason.startswith("this save would ")
    if holds_no_settings(text):
        assert "empty the config file" in reason
    assert "stop every running program (2: alpha, beta)" in reason


@settings(max_examples=examples(200), deadline=None)
@given(data=st.data())
def test_a_save_that_stops_every_running_program_by_any_means_needs_a_confirmation(
    data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.getbasetemp()
    text = data.draw(stopping_texts(folder / "state", 15000))
    reason = refusal(folder, text)
    assert reason is not None and "stop every running program (2: alpha, beta)" in reason


@settings(max_examples=examples(100), deadline=None)
@given(data=st.data())
def test_a_save_that_moves_the_daemon_needs_a_confirmation_naming_the_restart(
    data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.getbasetemp()
    text, moved = data.draw(moving_texts(folder / "state", 15000))
    reason = refusal(folder, text)
    assert reason is not None and "foss-supervisor restart" in reason
    assert all(f"{key} from " in reason for key in moved)
    assert "stop every running program" not in reason


@settings(max_examples=examples(150), deadline=None)
@given(keep=st.sampled_from([("alpha",), ("beta",), RUNNING]), others=OTHER_NAMES, pad=FILLER)
def test_a_text_that_keeps_a_running_program_passes(
    keep: tuple[str, ...], others: list[str], pad: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.getbasetemp()
    text = pad + "\n" + config_text(folder / "state", 15000, (*keep, *others))
    assert refusal(folder, text) is None


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
