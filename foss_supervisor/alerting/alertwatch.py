"""The daemon's watch over objectives and alerts: evaluates, opens and clears incidents, tells the hooks.

:func:`conditions` turns what holds now into the alert rules' conditions (``alerts.on``; all by default):

==================  ==============================================  ============================================
rule                holds while                                     key
==================  ==============================================  ============================================
``objective``       a freshness objective is late, or an uptime     ``objective:<objective id>``, e.g.
                    objective violated                              ``objective:freshness:table:gold.daily_revenue``
``fatal``           a program is FATAL                              ``program:NAME:fatal``
``backoff``         a program has been crash-looping (BACKOFF,      ``program:NAME:backoff``
                    STARTING, short runs) for ``alerts.backoff_for``
                    (default 5m) since its first BACKOFF; a run of
                    its ``backoff.reset_after`` ends the loop
``pipeline_failed`` a pipeline's last finished run failed or was    ``pipeline:NAME:failed``
                    abandoned (a later good run clears it)
``quality``         its last finished run succeeded with warnings   ``pipeline:NAME:quality``
                    (a quality threshold, a failed publish)
``regression``      a step's last successful run took over 1.5x    ``step:PIPELINE/STEP:regressed``
                    the median of its ten before and at least
                    ``alerts.regression_min`` (default 1s) more
                    (``StepRegressed``; its next run that is not
                    slow clears it)
==================  ==============================================  ============================================

:class:`AlertWatch` runs in the daemon: after each program or pipeline event, and at least every
:data:`TICK_S` seconds (sooner when an objective falls due), on the supervisor's clock and sleep (virtual in
tests), it evaluates the objectives, hands the conditions to the :class:`~foss_supervisor.alerting.alerts.AlertBook`
and publishes each notice as an :class:`~foss_supervisor.core.events.AlertNotice` on the bus, where the
hooks (``on: [alert_firing, alert_resolved]``) and the journal hear it. The book is written atomically to
``<state_dir>/alerts.json`` when it changed (by the daemon's file-writer thread: a slow or hung disk never
holds the supervision loop), so a restarted daemon does not tell an open incident again;
beside it, the last write seen of each freshness objective (``writes``), so that a restart does not take a
table nothing wrote meanwhile for fresh (and resolve its incident) until ``fresh_within`` after the start,
and what the uptime objectives need to go on across a restart (``uptime``: the periods watched and each
program's RUNNING stretches, :meth:`~foss_supervisor.alerting.objectives.RunningLedger.export`); it is saved
again when the watch stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from foss_supervisor.alerting.alerts import AlertBook, Condition, Notice
from foss_supervisor.alerting.objectives import LATE, OK, VIOLATED, Objectives
from foss_supervisor.base.atomicfile import atomic_write
from foss_supervisor.base.filewriter import FileWriter
from foss_supervisor.base.jsontext import parse_json
from foss_supervisor.base.pipelinestates import RUN_FAILED, STEP_SUCCEEDED, RunStatus
from foss_supervisor.base.processstates import ProcessState
from foss_supervisor.config import Config
from foss_supervisor.config.model import AlertsConfig
from foss_supervisor.core.events import AlertNotice, EventBus, StateChanged

__all__ = ["ALERTS_FILE", "TICK_S", "AlertWatch", "conditions"]

log = structlog.get_logger("foss_supervisor.alerting.alertwatch")

ALERTS_FILE = "alerts.json"
TICK_S = 300.0  # the longest wait between two evaluations (objectives falling due wake it sooner)
MIN_WAIT_S = 0.001
MIN_TICK_S = 1.0  # evaluations caused by events are at least this far apart
WRITES_SAVE_S = 60.0  # the objectives' last writes are saved at least this often (and with each change)
_MAX_FILE_BYTES = 4 * 2**20
_MAX_WRITES = 10_000  # freshness objectives' last writes kept
_FAILED = RUN_FAILED
_SUCCEEDED = STEP_SUCCEEDED  # a step's states that end its regression
_MAX_TEXT = 512


def conditions(
    rules: AlertsConfig,
    objectives: list[dict[str, Any]],
    programs: Mapping[str, tuple[ProcessState, float | None]],
    last_runs: Mapping[str, Mapping[str, Any] | None],
    now: float,
    regressed: Mapping[str, str] | None = None,
) -> dict[str, Condition]:
    """The conditions that hold at ``now`` (see the module's table).

    ``objectives`` are :meth:`Objectives.evaluate`'s; ``programs`` each program's (state, since when it is in a
    crash loop: :meth:`RunningLedger.looping_since`, or None);
    ``last_runs`` each pipeline's last finished run (``{"run_id", "status", "error"}``) or None;
    ``regressed`` the steps (``PIPELINE/STEP``) whose last successful run regressed, with what it said.
    """
    out: dict[str, Condition] = {}
    if "objective" in rules.rules:
        for o in objectives:
            if o["state"] in (LATE, VIOLATED):
                out[f"objective:{o['id']}"] = Condition(
                    "objective", o["node"], f"{o['node']} {o['state']}: {o['detail']}"
                )
    for name, (state, looping) in sorted(programs.items()):
        if state is ProcessState.FATAL and "fatal" in rules.rules:
            out[f"program:{name}:fatal"] = Condition("fatal", f"program:{name}", f"program {name} is FATAL")
        elif looping is not None and "backoff" in rules.rules and now - looping >= rules.backoff_for_s:
            summary = f"program {name} crash-looping (BACKOFF) for {now - looping:.0f}s"
            out[f"program:{name}:backoff"] = Condition("backoff", f"program:{name}", summary)
    for name, run in sorted(last_runs.items()):
        if run is None:
            continue
        said = f"pipeline {name}: run {run.get('run_id')} {run.get('status')}: {run.get('error') or ''}".rstrip(": ")
        if run.get("status") in _FAILED and "pipeline_failed" in rules.rules:
            out[f"pipeline:{name}:failed"] = Condition("pipeline_failed", f"pipeline:{name}", said)
        elif run.get("status") == RunStatus.SUCCEEDED_WITH_WARNINGS and "quality" in rules.rules:
            out[f"pipeline:{name}:quality"] = Condition("quality", f"pipeline:{name}", said)
    if "regression" in rules.rules:
        for step, said in sorted((regressed or {}).items()):
            out[f"step:{step}:regressed"] = Condition("regression", f"step:{step}", said)
    return out


def _event(notice: Notice) -> AlertNotice:
    i = notice.incident
    return AlertNotice(
        notice=notice.kind,
        repeat=notice.repeat,
        id=i["id"],
        key=i["key"],
        rule=i["rule"],
        subject=i["subject"],
        summary=i["summary"],
        opened_at=i["opened_at"],
        notices=i["notices"],
        acked=i["acked"],
    )


class AlertWatch:
    """Evaluates objectives and alert rules on ``clock``/``sleep`` and publishes notices on ``bus``.

    ``last_runs`` returns each configured pipeline's last finished run (or None); ``state_dir`` holds the
    book (None: kept in memory only), written by ``writer``'s thread (None: at once, by the caller, for
    tools and tests without a loop to keep free). Call :meth:`observe` from the bus and run :meth:`run` in a
    task.
    """

    def __init__(
        self,
        config: Callable[[], Config],
        objectives: Objectives,
        bus: EventBus,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        last_runs: Callable[[], Mapping[str, Mapping[str, Any] | None]] = dict,
        state_dir: Path | None = None,
        writer: FileWriter | None = None,
    ) -> None:
        self._config = config
        self._writer = writer
        self.objectives = objectives
        self._bus = bus
        self._clock = clock
        self._sleep = sleep
        self._last_runs = last_runs
        self._path = None if state_dir is None else state_dir / ALERTS_FILE
        self.book, writes, self.regressed, uptime = self._load()
        objectives.remember(writes)
        if uptime is not None:
            try:
                objectives.ledger.restore(uptime)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:  # lost: counted from now on, as new
                log.warning("alerts_file_uptime_unreadable", path=str(self._path), error=str(exc))
        self.results: list[dict[str, Any]] = []  # the last evaluation of the objectives
        self._wake = asyncio.Event()
        self.save_failures = 0
        self._saved_changes, self._saved_at = 0, self._clock()  # the book's changes and the time, as last saved
        self._regressed_changed = False

    def _load(self) -> tuple[AlertBook, dict[str, float], dict[str, str], Any]:
        """The book, the objectives' last writes, the regressed steps and the uptime ledger's data, as last
        saved (empty, and None, when none)."""
        if self._path is None:
            return AlertBook(), {}, {}, None
        try:
            with self._path.open("rb") as f:
                text = f.read(_MAX_FILE_BYTES + 1)
            if len(text) > _MAX_FILE_BYTES:
                raise ValueError(f"larger than {_MAX_FILE_BYTES} bytes")
            data = parse_json(text.decode())
            book = AlertBook.from_data(data)
            if book.unreadable:
                log.warning("alerts_file_entries_unreadable", path=str(self._path), left_out=book.unreadable)
            writes, regressed = data.get("writes") or {}, data.get("regressed") or {}
            if not isinstance(writes, dict) or not isinstance(regressed, dict):
                raise ValueError("writes and regressed must be mappings")
            kept = {str(k): float(v) for k, v in list(writes.items())[:_MAX_WRITES] if math.isfinite(float(v))}
            steps = {str(k)[:_MAX_TEXT]: str(v)[:_MAX_TEXT] for k, v in list(regressed.items())[:_MAX_WRITES]}
            return book, kept, steps, data.get("uptime")
        except FileNotFoundError:
            return AlertBook(), {}, {}, None
        except (OSError, ValueError, KeyError, TypeError) as exc:  # a bad file loses the book, not the daemon
            aside = self._path.with_name(ALERTS_FILE + ".unreadable")
            with contextlib.suppress(OSError):  # kept for a look; the next save writes a new book
                os.replace(self._path, aside)
            log.warning("alerts_file_unreadable", path=str(self._path), kept=str(aside), error=str(exc)[:300])
            return AlertBook(), {}, {}, None

    def _dumps(self) -> str:
        writes = {o["id"]: o["last_write_at"] for o in self.results if o.get("last_write_at") is not None}
        windows = {n: p.uptime.window_s for n, p in self._config().programs.items() if p.uptime is not None}
        uptime = self.objectives.ledger.export(windows, self._clock())
        return self.book.dumps(writes=dict(list(writes.items())[:_MAX_WRITES]), regressed=self.regressed, uptime=uptime)

    def save(self) -> None:
        """Write the book atomically, by the writer's thread when there is one (a failure, or a writer queue
        full behind a hung disk, is logged and counted; the book stays in memory and the next save tries
        again: the file always holds a whole book, the newest the disk took)."""
        path = self._path
        if path is None:
            return
        self._saved_changes, self._saved_at = self.book.changes, self._clock()
        self._regressed_changed = False
        text = self._dumps().encode()

        def write() -> None:
            try:
                atomic_write(path, text)
            except OSError as exc:
                self.save_failures += 1
                log.warning("alerts_file_write_failed", path=str(path), error=str(exc))

        if self._writer is None:
            write()
        elif not self._writer.submit(write, len(text)):
            self.save_failures += 1
            log.warning("alerts_file_write_failed", path=str(path), error="the file writer's queue is full")

    def observe(self, event: object) -> None:
        """The bus callback: the objectives' ledger hears it; a program or pipeline event wakes the watch."""
        self.objectives.ledger.observe(event)
        kind = getattr(event, "type", "")
        if kind in ("StepStateChanged", "StepRegressed"):  # pipeline events: the core does not import their package
            self._step(event, kind)
        if isinstance(event, StateChanged) or kind in ("RunFinished", "StepRegressed"):
            self._wake.set()

    def _step(self, event: object, kind: str) -> None:
        """A step that succeeds is no longer regressed; a regression, told right after its success, is."""
        step = f"{getattr(event, 'pipeline', '')}/{getattr(event, 'step', '')}"
        if kind == "StepRegressed":
            ratio, median = getattr(event, "ratio", 0.0), getattr(event, "median_s", 0.0)
            if (ratio - 1.0) * median < self._config().alerts.regression_min_s:
                return  # milliseconds of jitter on a quick step: the event and /metrics say it, no incident
            if step in self.regressed or len(self.regressed) < _MAX_WRITES:
                self.regressed[step] = (
                    f"step {step}: run {getattr(event, 'run_id', '')} took {ratio:.1f}x the median "
                    f"({median:.1f} s) of its runs before"
                )
                self._regressed_changed = True
        elif str(getattr(event, "new", "")) in _SUCCEEDED and self.regressed.pop(step, None) is not None:
            self._regressed_changed = True

    def tick(self) -> list[Notice]:
        """One evaluation: the objectives, the conditions, the book; notices published and returned."""
        cfg, now = self._config(), self._clock()
        self.results = self.objectives.evaluate()
        ledger = self.objectives.ledger
        states = {n: (s[0], ledger.looping_since(n, now)) for n in cfg.programs if (s := ledger.state(n)) is not None}
        holding = conditions(cfg.alerts, self.results, states, self._last_runs(), now, self.regressed)
        notices = self.book.observe(holding, now, cfg.alerts.renotify_after_s)
        for notice in notices:
            self._bus.publish(_event(notice))
        # the book at once when it changed; the last writes (a feeding program's moves every tick) once a minute
        if self.book.changes != self._saved_changes or self._regressed_changed or now - self._saved_at >= WRITES_SAVE_S:
            self.save()
        return notices

    def now(self) -> float:
        """The watch's clock (Unix seconds)."""
        return self._clock()

    def change(self, edit: Callable[[AlertBook], Any]) -> Any:
        """Apply ``edit`` (an ack, a silence) to the book, save it, and evaluate again at once."""
        result = edit(self.book)
        self.save()
        self._wake.set()
        return result

    def _next_wait(self) -> float:
        now, cfg = self._clock(), self._config()
        waits = [TICK_S]
        waits += [o["due_at"] - now for o in self.results if o["state"] == OK and o["due_at"] is not None]
        ledger = self.objectives.ledger
        for name in cfg.programs:
            if (looping := ledger.looping_since(name, now)) is not None:
                waits.append(looping + cfg.alerts.backoff_for_s - now)  # it becomes an incident then
                state = ledger.state(name)
                if state is not None and state[0] is ProcessState.RUNNING:
                    waits.append(state[1] + ledger.stable_s(name) - now)  # a stable run ends the loop then
        waits += [until - now for until in self.book.silences.values()]
        # what is already due was judged by this tick: only what falls due later wakes it
        return max(
            MIN_WAIT_S, min(w for w in waits if w > 0)
        )  # never 0: a state due "now" by float rounding must not spin

    async def run(self) -> None:
        """Evaluate until cancelled: when something falls due, and after events (an edge, a run, an ack), at most
        once per :data:`MIN_TICK_S` for those (a fleet restarting at once costs one evaluation, not one each)."""
        try:
            await self._evaluate_until_cancelled()
        finally:  # a stop keeps what this daemon watched up to now (a kill -9 loses what came since the last tick)
            self.save()

    async def _evaluate_until_cancelled(self) -> None:
        while True:
            self._wake.clear()
            ticked_at = self._clock()
            self.tick()
            sleeper = asyncio.ensure_future(self._sleep(self._next_wait()))
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait([sleeper, waker], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (sleeper, waker):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if not sleeper.done() or sleeper.cancelled():  # woken by an event: not sooner than MIN_TICK_S, ...
                throttle = ticked_at + MIN_TICK_S - self._clock()
                if throttle > 0:  # ... unless something falls due before: an incident is told when it is one
                    await self._sleep(min(throttle, self._next_wait()))
