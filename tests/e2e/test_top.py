"""``foss-supervisor top`` driven by textual's pilot against a real daemon: the table fills with live programs
and their CPU and memory, the log pane follows the selected program, and the keys act through the socket."""

from __future__ import annotations

import pytest
from helpers import PY, DaemonHandle, wait_for, wait_until
from textual.widgets import DataTable, Log

from foss_supervisor.cli.top import TopApp

CHILD = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGHUP, lambda *a: print('got HUP', flush=True))\n"
    "i = 0\n"
    "while True:\n"
    "    print(f'{sys.argv[1]} tick {i}', flush=True); i += 1; time.sleep(0.1)\n"
)


def cell(app: TopApp, name: str, column: int) -> str:
    table = app.query_one(DataTable)
    return str(table.get_row(name)[column])


@pytest.mark.timeout(120)
async def test_top_shows_programs_follows_logs_and_acts(daemon: DaemonHandle) -> None:
    child = daemon.tmp / "child.py"
    child.write_text(CHILD)
    daemon.write_config(
        f"programs:\n  alpha: {{command: ['{PY}', '{child}', alpha]}}\n  beta: {{command: ['{PY}', '{child}', beta]}}\n"
    )
    daemon.start()
    wait_for(lambda: all(p["state"] == "RUNNING" for p in daemon.call("status")["programs"]), 20, "running")
    app = TopApp(daemon.socket_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_until(lambda: app.query_one(DataTable).row_count == 2, 20, "two rows")
        assert cell(app, "alpha", 1) == "RUNNING" and cell(app, "beta", 1) == "RUNNING"
        await wait_until(lambda: cell(app, "alpha", 5).endswith("M"), 20, "memory shown")
        log = app.query_one(Log)
        await wait_until(lambda: any("alpha tick" in line for line in log.lines), 20, "alpha's log in the pane")
        count = len(log.lines)
        await wait_until(lambda: len(log.lines) > count + 3, 20, "the pane follows new lines")

        await pilot.press("down")
        await wait_until(lambda: app.selected == "beta", 20, "beta selected")
        await wait_until(lambda: any("beta tick" in line for line in log.lines), 20, "beta's log in the pane")

        await pilot.press("k")
        await pilot.press("enter")  # the prompt offers HUP
        await wait_until(lambda: any("got HUP" in line for line in log.lines), 20, "beta got the signal")

        await pilot.press("x")
        await wait_until(lambda: daemon.program("beta")["state"] == "STOPPED", 20, "beta stopped")
        await wait_until(lambda: cell(app, "beta", 1) == "STOPPED", 20, "the table shows it")
        await pilot.press("s")
        await wait_until(lambda: daemon.program("beta")["state"] == "RUNNING", 20, "beta started again")
        pid = daemon.program("beta")["pid"]
        await pilot.press("r")
        await wait_until(lambda: daemon.program("beta")["pid"] not in (None, pid), 20, "beta restarted")
        assert daemon.program("alpha")["state"] == "RUNNING"
        await pilot.press("q")


@pytest.mark.timeout(120)
async def test_top_opens_the_log_at_its_end_fits_states_filters_and_searches(daemon: DaemonHandle) -> None:
    child = daemon.tmp / "child.py"
    child.write_text(CHILD)
    slow = f"['{PY}', '-c', 'import time; time.sleep(300)']"
    daemon.write_config(
        f"programs:\n  alpha: {{command: ['{PY}', '{child}', alpha]}}\n"
        f"  gamma: {{command: ['{PY}', '{child}', gamma]}}\n"
        f"  late: {{command: {slow}, ready: notify, start_timeout: 45}}\n"  # STARTING for 45 s
    )
    daemon.start(wait_ready=False)  # it is ready once late is up or given up: the daemon answers before
    wait_for(lambda: daemon.ping() is not None and daemon.program("alpha")["state"] == "RUNNING", 30, "alpha running")
    wait_for(lambda: len(daemon.cli("logs", "alpha", "-n", "300").stdout.splitlines()) >= 100, 30, "a long log")
    app = TopApp(daemon.socket_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_until(lambda: app.query_one(DataTable).row_count == 3, 20, "three rows")
        await wait_until(lambda: cell(app, "late", 1) == "STARTING", 20, "late is STARTING")
        state_column = app.query_one(DataTable).ordered_columns[1]
        assert state_column.content_width >= len("STARTING")  # the word fits its column, whole
        log = app.query_one(Log)
        await wait_until(lambda: len(log.lines) >= 50, 20, "alpha's last lines")
        await wait_until(lambda: log.is_vertical_scroll_end, 20, "the pane at its newest line")
        count = len(log.lines)
        await wait_until(lambda: len(log.lines) > count + 3 and log.is_vertical_scroll_end, 20, "following the end")

        # a line from the middle of the pane: no later tick holds its text (that needs ten times its number)
        wanted = log.lines[len(log.lines) // 2]
        await pilot.press("slash")
        await pilot.press(*wanted, "enter")
        await wait_until(lambda: not log.is_vertical_scroll_end, 20, "scrolled to the line found")

        await pilot.press("f")
        await pilot.press(*"gam", "enter")
        await wait_until(lambda: app.query_one(DataTable).row_count == 1, 20, "only gamma")
        assert str(app.query_one(DataTable).get_row_at(0)[0]) == "gamma"
        await pilot.press("f")
        await pilot.press("backspace", "backspace", "backspace", "enter")
        await wait_until(lambda: app.query_one(DataTable).row_count == 3, 20, "all again")
        await pilot.press("q")
