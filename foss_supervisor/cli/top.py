"""``foss-supervisor top``: a terminal UI for an SSH session without a browser (PM2's ``monit``, process-compose's TUI).

Built on textual. It speaks the control socket like every other client: ``status`` once a second for
the table (state, health, PID, uptime, INFO), ``resources`` for CPU and memory of each program's whole
process tree (the daemon's measurement: the figures the dashboard's charts and ``/metrics`` show), ``logs``
for the pane under the table, which then follows the selected program's file.

Keys: ``s`` start, ``x`` stop, ``r`` restart, ``k`` signal (asks which; HUP by default), ``q`` quit;
arrows or the mouse select a program.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Input, Log

from foss_supervisor.cli.logfollow import DaemonFollower
from foss_supervisor.cli.terminal import fmt_uptime, info_column
from foss_supervisor.control.client import call
from foss_supervisor.errors import SupervisorError

__all__ = ["TopApp", "usage_cells"]

REFRESH_S = 1.0
LOG_POLL_S = 0.3
LOG_LINES = 200
COLUMNS = ("NAME", "STATE", "HEALTH", "PID", "CPU%", "MEM", "UPTIME", "INFO")


def usage_cells(tree: dict[str, Any] | None) -> tuple[str, str]:
    """The CPU% and MEM cells of one tree of a ``resources`` reply ("-" where there is no figure)."""
    if tree is None or tree["pid"] is None:
        return "-", "-"
    cpu = "-" if tree["cpu_percent"] is None else f"{tree['cpu_percent']:.0f}"
    return cpu, f"{tree['rss_bytes'] / 2**20:.1f}M"


class TopApp(App[None]):
    """Programs with live state, health, CPU and memory, and the selected program's log."""

    TITLE = "foss-supervisor top"
    CSS = """
    DataTable { height: 1fr; }
    Log { height: 1fr; border-top: solid $accent; }
    Input { dock: bottom; }
    """
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        Binding("s", "act('start')", "start"),
        Binding("x", "act('stop')", "stop"),
        Binding("r", "act('restart')", "restart"),
        Binding("k", "ask('signal')", "signal"),
        Binding("f", "ask('filter')", "filter"),
        Binding("slash", "ask('search')", "search log"),
        Binding("q", "quit", "quit"),
    ]
    #: what the one input line asks for: its placeholder and the value it starts with
    ASKS: ClassVar[dict[str, tuple[str, str]]] = {
        "signal": ("signal to send (HUP, TERM, USR1, 9...), Enter to send, Esc to cancel", "HUP"),
        "filter": ("show programs whose name contains this (empty: all), Enter", ""),
        "search": ("find in the log (the last line holding it), Enter", ""),
    }

    def __init__(self, control_socket: Path) -> None:
        super().__init__()
        self.control_socket = control_socket
        self.programs: list[dict[str, Any]] = []
        self.selected: str | None = None
        self._follower: DaemonFollower | None = None
        self._columns: list[Any] = []
        self._rows: list[str] = []
        self._asking = "signal"
        self.name_filter = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(cursor_type="row", zebra_stripes=True)
        yield Log(max_lines=5000, auto_scroll=True)
        yield Input()
        yield Footer()

    async def on_mount(self) -> None:
        table = self.query_one(DataTable)
        self._columns = table.add_columns(*COLUMNS)
        self.query_one(Input).display = False
        await self.refresh_programs()
        self.set_interval(REFRESH_S, self.refresh_programs)
        self.set_interval(LOG_POLL_S, self.follow_log)
        table.focus()

    async def _call(self, cmd: str, **args: Any) -> Any:
        return await asyncio.to_thread(call, self.control_socket, cmd, 65.0, **args)

    async def refresh_programs(self) -> None:
        try:
            status = await self._call("status")
            usage = (await self._call("resources"))["programs"]
        except (OSError, SupervisorError) as exc:
            self.sub_title = f"no answer from the daemon: {exc}"
            return
        d = status["daemon"]
        self.sub_title = f"pid {d['pid']}  {d['phase']}  {d['dashboard_url']}"
        self.programs = status["programs"]
        table = self.query_one(DataTable)
        names = [p["name"] for p in self.programs if self.name_filter in p["name"]]
        if names != self._rows:  # programs came or went: rebuild; else update in place (no flicker, cursor kept)
            cursor = table.cursor_row
            table.clear()
            for name in names:
                table.add_row(*([name] + [""] * (len(COLUMNS) - 1)), key=name)
            self._rows = names
            if names:
                table.move_cursor(row=min(cursor, len(names) - 1))
        for p in (p for p in self.programs if p["name"] in names):
            cpu, mem = usage_cells(usage.get(p["name"]))
            cells = (p["state"], p["health"], str(p["pid"] or "-"), cpu, mem, fmt_uptime(p["uptime_s"]), info_column(p))
            for column, value in zip(self._columns[1:], cells, strict=True):
                table.update_cell(p["name"], column, value, update_width=True)  # STARTING is never cut
        if names and self.selected not in names:
            await self.select(names[table.cursor_row])

    async def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            await self.select(str(event.row_key.value))

    async def select(self, name: str) -> None:
        """Show the last lines of ``name``'s log and follow it from there."""
        if name == self.selected:
            return
        self.selected = name
        log = self.query_one(Log)
        log.clear()
        try:
            reply = await self._call("logs", names=[name], lines=LOG_LINES)
        except (OSError, SupervisorError) as exc:
            log.write_line(f"cannot read the log of {name}: {exc}")
            return
        if self._follower is not None:
            self._follower.close()
        self._follower = await asyncio.to_thread(DaemonFollower, functools.partial(call, self.control_socket), name)
        log.write_lines(reply["lines"].get(name, []), scroll_end=True)
        self.call_after_refresh(log.scroll_end, animate=False)  # once laid out: the pane opens at the newest line

    async def follow_log(self) -> None:
        if self._follower is not None:
            try:
                lines = await asyncio.to_thread(self._follower.lines)
            except (OSError, SupervisorError) as exc:
                self.sub_title = f"no answer from the daemon: {exc}"
                return
            if lines:  # follows the end unless the reader scrolled up to read
                log = self.query_one(Log)
                log.write_lines(lines, scroll_end=log.is_vertical_scroll_end or log.max_scroll_y == 0)

    async def action_act(self, action: str) -> None:
        if self.selected is None:
            return
        self.notify(f"{action} {self.selected}...")
        try:
            results = await self._call(action, names=[self.selected], wait_s=30.0)
        except (OSError, SupervisorError) as exc:
            self.notify(str(exc), severity="error")
            return
        for p in results:
            self.notify(f"{p['name']}: {p['state']} {p['reason']}")
        await self.refresh_programs()

    def action_ask(self, what: str) -> None:
        """Open the input line for ``what``: a signal to send, a name filter or a log search."""
        self._asking = what
        field = self.query_one(Input)
        field.placeholder, field.value = self.ASKS[what]
        if what == "filter":
            field.value = self.name_filter
        field.display = True
        field.focus()

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        field = self.query_one(Input)
        field.display = False
        self.query_one(DataTable).focus()
        text = event.value.strip()
        if self._asking == "filter":
            self.name_filter = text
            await self.refresh_programs()
        elif self._asking == "search":
            self.search_log(text)
        elif self.selected is not None and text:
            await self.send_signal(text)

    def search_log(self, text: str) -> None:
        """Scroll the log pane to the last line holding ``text`` and say which one."""
        log = self.query_one(Log)
        found = next((i for i in range(len(log.lines) - 1, -1, -1) if text and text in log.lines[i]), None)
        if found is None:
            self.notify(f"not in the log pane: {text!r}", severity="warning")
            return
        log.scroll_to(y=found, animate=False)
        self.notify(f"line {found + 1} of {len(log.lines)}: {log.lines[found][:80]}")

    async def send_signal(self, signal: str) -> None:
        assert self.selected is not None
        try:
            sent = await self._call("signal", signal=signal, names=[self.selected])
        except (OSError, SupervisorError) as exc:
            self.notify(str(exc), severity="error")
            return
        for p in sent:
            self.notify(f"{p['name']}: sent {p['signal']}" if p["sent"] else f"{p['name']}: {p['reason']}")

    def key_escape(self) -> None:
        field = self.query_one(Input)
        if field.display:
            field.display = False
            self.query_one(DataTable).focus()

    def on_unmount(self) -> None:
        if self._follower is not None:
            self._follower.close()
