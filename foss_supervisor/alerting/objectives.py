"""Freshness and uptime objectives, evaluated in the daemon from what it already knows (no DuckDB here).

Three kinds of objective (docs/graph.md, "Objectives"):

- ``pipelines.NAME.fresh_within: 2h``: the pipeline's last *good* run (succeeded, or succeeded with
  warnings) finished at most that long ago, else it is ``late``;
- ``tables: {schema.table: {fresh_within: 2h}}``: the table was last written at most that long ago, else
  ``late``. A table is written by each good run of a pipeline that writes it (:class:`ObjectiveSources`
  ``table_writers``: the pipelines whose steps' SQL writes it, or whose schemas hold it) and, continuously,
  by a program that ``feeds:`` it while that program is RUNNING (it stops writing when it leaves RUNNING);
- ``programs.NAME.uptime: 99.5%`` (``{target: 99.5%, window: 7d}``): the program was down (not RUNNING) at
  most ``(100 - target)`` % of the window, its *error budget* (99.5 % of 7 days: 50.4 minutes), else
  ``violated``. Down time counts against the whole window's budget as soon as it happens, so a daemon just
  started is not ``violated`` by a program's first second in STARTING, and a program down longer than
  the budget is ``violated`` at once, not only after a full window.

How time is counted, on the supervisor's clock (``clock``, the same injectable wall clock its seams carry):

- only RUNNING is up; STARTING, BACKOFF, STOPPING, EXITED, FATAL and STOPPED (by hand too) are down;
- the window is the last ``window_s`` seconds *that a daemon watched*: time no daemon watched (before the
  first start, between a stop and the next start) is neither up nor down, so a daemon restart neither
  punishes nor flatters a program (a program added by a reload is watched from the reload on); a restarted
  daemon goes on from what the last one saved (:meth:`RunningLedger.export`, kept in alerts.json: the
  periods watched and each program's RUNNING stretches); ``observed_s`` says how much of the window was
  watched; ``uptime_percent`` is up / watched;
- a freshness objective with no write seen yet counts its age from when the daemon started watching (or from
  the last write a previous daemon saw, :meth:`Objectives.remember`), so a table nothing wrote since the
  start is late ``fresh_within`` after it.

States are ``ok``, ``late`` (freshness) and ``violated`` (uptime). Stdlib only.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from foss_supervisor.base.processstates import ProcessState
from foss_supervisor.config import Config
from foss_supervisor.core.events import ConfigReloaded, StateChanged

__all__ = ["LATE", "OK", "VIOLATED", "ObjectiveSources", "Objectives", "RunningLedger"]

OK, LATE, VIOLATED = "ok", "late", "violated"
#: RUNNING stretches kept per program (older ones are dropped first): a program restarting every second
#: for a week would need 600k; past this bound its uptime is computed from the newest stretches only
MAX_STRETCHES = 10_000
#: what a daemon keeps for the next one (alerts.json): periods it and its predecessors watched, RUNNING
#: stretches per program with an uptime objective, programs
KEPT_PERIODS, KEPT_STRETCHES, MAX_RESTORED = 64, 64, 1_000  # 1,000 x 64 stretches: about 2 MB of JSON


class ObjectiveSources(Protocol):
    """What the evaluator reads of the pipelines (the daemon passes its pipeline service's answers)."""

    def last_good_run(self, pipeline: str) -> float | None:
        """When ``pipeline``'s last good run finished (Unix seconds on the supervisor's clock), or None."""
        ...

    def table_writers(self, table: str) -> Iterable[str]:
        """The pipelines that write ``table`` (schema.table)."""
        ...


class _Stretches:
    """A program's RUNNING stretches ``[begin, end)``, oldest first, with running sums of their lengths, so the
    up time within any window is two binary searches and a subtraction (:meth:`up_since`), not a walk: one
    evaluation of a thousand programs restarting a hundred times each stays a few milliseconds on the loop.

    Bounded: at most :data:`MAX_STRETCHES` (the oldest quarter is dropped past it) and none ending before the
    ``keep_s`` horizon handed to :meth:`prune`.
    """

    __slots__ = ("_begins", "_cum", "_ends", "_first")

    def __init__(self) -> None:
        self._begins: list[float] = []
        self._ends: list[float] = []
        self._cum: list[float] = [0.0]  # _cum[i]: total length of the stretches before index i
        self._first = 0  # stretches before this index are dropped (compacted now and then)

    def __len__(self) -> int:
        return len(self._ends) - self._first

    def newest(self, count: int, after: float) -> list[tuple[float, float]]:
        """The newest ``count`` stretches that end after ``after``, oldest first."""
        i = max(bisect_right(self._ends, after, lo=self._first), len(self._ends) - count)
        return list(zip(self._begins[i:], self._ends[i:], strict=True))

    def append(self, begin: float, end: float) -> None:
        """Add the stretch ``[begin, end)``; a wall clock stepped back is clamped to the last end, so the
        stretches stay in order (the time it stepped back is not counted twice)."""
        if self._ends:
            begin = max(begin, self._ends[-1])
            end = max(end, begin)
        self._begins.append(begin)
        self._ends.append(end)
        self._cum.append(self._cum[-1] + max(0.0, end - begin))
        if len(self) > MAX_STRETCHES:
            self._first += MAX_STRETCHES // 4
        if self._first > MAX_STRETCHES // 2:  # compact: the dropped prefix is never read again
            del self._begins[: self._first], self._ends[: self._first], self._cum[: self._first]
            self._first = 0

    def prune(self, horizon: float) -> None:
        """Drop the stretches that ended before ``horizon``."""
        self._first = bisect_left(self._ends, horizon, lo=self._first)

    def up_since(self, start: float) -> float:
        """Seconds of the kept stretches after ``start`` (a wall clock stepped back may count a little time
        after its new now; :meth:`RunningLedger.uptime` caps up time at the time watched)."""
        i = bisect_right(self._ends, start, lo=self._first)  # the first stretch ending after start
        if i >= len(self._ends):
            return 0.0
        up = self._cum[-1] - self._cum[i]
        up -= max(0.0, start - self._begins[i])  # the part of stretch i before start (it ends after start)
        return max(0.0, up)


@dataclass(slots=True)
class _Program:
    state: ProcessState
    since: float  # when it entered ``state``
    watched_from: float  # when the ledger first heard of it (or started)
    stretches: _Stretches = field(default_factory=_Stretches)
    left_running_at: float | None = None  # when it last left RUNNING
    looping_since: float | None = None  # its first BACKOFF since it last ran stably, stopped or gave up


class RunningLedger:
    """Each program's RUNNING stretches, heard from the bus (:meth:`observe`), stamped with ``clock``.

    Bounded: :data:`MAX_STRETCHES` per program, and stretches older than ``keep_s`` are pruned.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        keep_s: float = 366 * 86400.0,
        stable_s: Callable[[str], float] = lambda n: 10.0,
    ) -> None:
        self._clock = clock
        self._keep_s = keep_s
        self._stable_s = stable_s  # a program's backoff.reset_after: a run this long ends a crash loop
        self.started_at = clock()
        self._programs: dict[str, _Program] = {}
        self._before: list[tuple[float, float]] = []  # earlier daemons' watched periods (restore), oldest first

    def observe(self, event: object) -> None:
        """The bus callback: a program's edge (StateChanged), and the programs a reload added (ConfigReloaded:
        watched from then, not from the daemon's start); other events are ignored."""
        if isinstance(event, ConfigReloaded):
            now = self._clock()
            for name in event.added:
                if name not in self._programs:
                    self._programs[name] = _Program(ProcessState.STOPPED, now, now)
            return
        if not isinstance(event, StateChanged):
            return
        now = self._clock()
        prog = self._programs.get(event.name)
        if prog is None:
            prog = self._programs[event.name] = _Program(event.old, self.started_at, self.started_at)
        if prog.state is ProcessState.RUNNING and event.new is not ProcessState.RUNNING:
            prog.stretches.append(prog.since, now)
            prog.left_running_at = now
            if now - prog.since >= self._stable_s(event.name):
                prog.looping_since = None
        if event.new in (ProcessState.STOPPED, ProcessState.FATAL):  # not EXITED: a crash passes through it
            prog.looping_since = None
        elif event.new is ProcessState.BACKOFF and prog.looping_since is None:
            prog.looping_since = now
        if event.new is not prog.state:
            prog.state, prog.since = event.new, now
        prog.stretches.prune(now - self._keep_s)

    def state(self, name: str) -> tuple[ProcessState, float] | None:
        """``name``'s state and since when (clock seconds), or None when no edge of it was heard."""
        prog = self._programs.get(name)
        return None if prog is None else (prog.state, prog.since)

    def stable_s(self, name: str) -> float:
        """How long a run of ``name`` must last to end a crash loop (its ``backoff.reset_after``), seconds."""
        return self._stable_s(name)

    def looping_since(self, name: str, now: float) -> float | None:
        """When ``name`` entered a crash loop: its first BACKOFF since it last ran for its ``reset_after``, was
        stopped, exited or went FATAL; None when it is not in one (a run now that lasted that long ends it)."""
        prog = self._programs.get(name)
        if prog is None or prog.looping_since is None or prog.state in (ProcessState.EXITED, ProcessState.STOPPED):
            return None  # ended (an exit it will not be restarted from) is not a loop
        if prog.state is ProcessState.RUNNING and now - prog.since >= self._stable_s(name):
            return None
        return prog.looping_since

    def last_running(self, name: str, now: float) -> float | None:
        """When ``name`` was last RUNNING: ``now`` while it is, else when it left RUNNING (None: never seen up)."""
        prog = self._programs.get(name)
        if prog is None:
            return None
        return now if prog.state is ProcessState.RUNNING else prog.left_running_at

    def uptime(self, name: str, window_s: float, now: float) -> tuple[float, float]:
        """(seconds RUNNING, seconds watched) of ``name`` within the last ``window_s`` seconds before ``now``;
        watched counts this daemon's time and the periods earlier daemons watched (:meth:`restore`)."""
        prog = self._programs.get(name)
        start = max(now - window_s, self.started_at if prog is None else prog.watched_from)
        periods = [*self._before, (self.started_at, now)]
        watched = sum(max(0.0, min(end, now) - max(begin, start)) for begin, end in periods)
        if prog is None:
            return 0.0, watched
        up = prog.stretches.up_since(start)
        if prog.state is ProcessState.RUNNING:
            up += max(0.0, now - max(prog.since, start))
        return min(up, watched), watched

    def export(self, windows: Mapping[str, float], now: float) -> dict[str, Any]:
        """What a restarted daemon needs to go on counting the uptime objectives ``windows`` (program -> window
        seconds): ``{"periods": [[from, to], ...], "programs": {name: {"from": s, "stretches": [[b, e], ...]}}}``.
        Bounded: the newest :data:`KEPT_PERIODS` periods and :data:`KEPT_STRETCHES` stretches per program (a
        RUNNING program's current one ends ``now``); with older stretches left out, ``from`` moves up to the
        oldest kept one, so what was not kept counts as not watched rather than down."""
        periods = [p for p in [*self._before, (self.started_at, now)] if p[1] > p[0]][-KEPT_PERIODS:]
        programs: dict[str, Any] = {}
        for name, window_s in windows.items():
            prog = self._programs.get(name)
            if prog is None:
                continue
            horizon = now - window_s
            kept = prog.stretches.newest(KEPT_STRETCHES, horizon)
            if prog.state is ProcessState.RUNNING:
                kept = [*kept, (prog.since, now)][-KEPT_STRETCHES:]
            begin = max(prog.watched_from, horizon)
            if kept and len(kept) == KEPT_STRETCHES:
                begin = max(begin, kept[0][0])
            programs[name] = {"from": round(begin, 3), "stretches": [[round(b, 3), round(e, 3)] for b, e in kept]}
            if len(programs) >= MAX_RESTORED:
                break
        return {"periods": [[round(b, 3), round(e, 3)] for b, e in periods], "programs": programs}

    def restore(self, data: Any) -> None:
        """Take back :meth:`export`'s data of an earlier daemon (call before the first :meth:`observe`). Malformed
        data raises ValueError (or TypeError) and changes nothing; times after this daemon's start are cut."""
        periods = _pairs(data["periods"], KEPT_PERIODS, self.started_at)
        programs: dict[str, _Program] = {}
        for name, raw in list(data["programs"].items())[:MAX_RESTORED]:
            stretches = _pairs(raw["stretches"], KEPT_STRETCHES, self.started_at)
            begin = float(raw["from"])
            if not math.isfinite(begin):
                raise ValueError("a non-finite time")
            prog = _Program(ProcessState.STOPPED, self.started_at, min(begin, self.started_at))
            for b, e in stretches:
                prog.stretches.append(b, e)
            programs[str(name)] = prog
        self._before = [(b, e) for b, e in periods if b < self.started_at]
        self._programs.update(programs)


def _pairs(raw: Any, limit: int, until: float) -> list[tuple[float, float]]:
    """``[[a, b], ...]`` as ordered pairs of finite times, at most ``limit`` (the newest), cut at ``until``."""
    if not isinstance(raw, list):
        raise TypeError("a list of [from, to] pairs")
    out = []
    for pair in raw[-limit:]:
        a, b = (float(x) for x in pair)
        if not (math.isfinite(a) and math.isfinite(b)) or b < a:
            raise ValueError(f"not an ordered pair of times: {pair!r}")
        if a < until:
            out.append((a, min(b, until)))
    return sorted(out)


class Objectives:
    """Evaluates every objective of the current config at the clock's now (:meth:`evaluate`).

    ``config`` returns the running config (it changes on reload); ``ledger`` hears the bus; ``sources``
    answers about pipelines (None: no pipelines).
    """

    def __init__(
        self,
        config: Callable[[], Config],
        clock: Callable[[], float],
        ledger: RunningLedger,
        sources: ObjectiveSources | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self.ledger = ledger
        self._sources = sources
        self._remembered: dict[str, float] = {}

    def remember(self, writes: Mapping[str, float]) -> None:
        """Last writes seen before (objective id -> Unix seconds: a restarted daemon's), used while no newer one
        is known: a table nothing wrote since is as late as it was, not fresh from the start."""
        self._remembered = dict(writes)

    def evaluate(self) -> list[dict[str, Any]]:
        """Every objective, sorted by id: ``{"id", "kind": "freshness"|"uptime", "node" (a graph node id),
        "name", "state": "ok"|"late"|"violated", "detail"}`` plus, for freshness, ``fresh_within_s``,
        ``last_write_at`` (Unix seconds or None), ``age_s`` (seconds since then, or since watching began),
        ``due_at`` (when it turns late unless written again); for uptime, ``target_percent``, ``window_s``,
        ``uptime_percent`` (of the watched part), ``up_s``, ``down_s``, ``budget_s`` (the down time allowed per
        window: violated above it), ``observed_s`` (seconds of the window watched), ``due_at`` (when it turns
        violated if it stays down; None while RUNNING or once violated)."""
        cfg, now = self._config(), self._clock()
        out = [
            self._fresh("pipeline", name, pc.fresh_within_s, self._pipeline_write(name), now)
            for name, pc in cfg.pipelines.items()
            if pc.fresh_within_s is not None
        ]
        feeders: dict[str, list[str]] = {}
        for name, prog in cfg.programs.items():
            for target in prog.feeds:
                feeders.setdefault(target, []).append(name)
        for table, fresh_s in cfg.tables.items():
            out.append(self._fresh("table", table, fresh_s, self._table_write(feeders.get(table, ()), table, now), now))
        for name, prog in cfg.programs.items():
            if prog.uptime is not None:
                out.append(self._uptime(name, prog.uptime.target_percent, prog.uptime.window_s, now))
        return sorted(out, key=lambda o: str(o["id"]))

    def _pipeline_write(self, pipeline: str) -> float | None:
        return None if self._sources is None else self._sources.last_good_run(pipeline)

    def _table_write(self, feeders: Iterable[str], table: str, now: float) -> float | None:
        times = []
        if self._sources is not None:
            times += [self._sources.last_good_run(p) for p in self._sources.table_writers(table)]
        times += [self.ledger.last_running(n, now) for n in feeders]
        found = [t for t in times if t is not None]
        return max(found) if found else None

    def _fresh(self, kind: str, name: str, fresh_s: float, last: float | None, now: float) -> dict[str, Any]:
        remembered = self._remembered.get(f"freshness:{kind}:{name}")
        if remembered is not None and (last is None or remembered > last):
            last = min(remembered, now)
        since = self.ledger.started_at if last is None else last
        age = max(0.0, now - since)
        late = now >= since + fresh_s  # the same sum as due_at: late exactly when the clock reaches it
        if last is None:
            detail = f"no write seen in the {age:.0f}s watched; due within {fresh_s:g}s"
        else:
            detail = f"last written {age:.0f}s ago; due within {fresh_s:g}s"
        return {
            "id": f"freshness:{kind}:{name}",
            "kind": "freshness",
            "node": f"{kind}:{name}",
            "name": name,
            "state": LATE if late else OK,
            "detail": detail,
            "fresh_within_s": fresh_s,
            "last_write_at": last,
            "age_s": round(age, 3),
            "due_at": since + fresh_s,
        }

    def _uptime(self, name: str, target: float, window_s: float, now: float) -> dict[str, Any]:
        up, watched = self.ledger.uptime(name, window_s, now)
        down = watched - up
        budget = (1 - target / 100) * window_s  # the down time the target allows over the whole window
        percent = 100.0 if watched <= 0 else 100.0 * up / watched
        state = self.ledger.state(name)
        running = state is not None and state[0] is ProcessState.RUNNING
        return {
            "id": f"uptime:program:{name}",
            "kind": "uptime",
            "node": f"program:{name}",
            "name": name,
            "state": VIOLATED if down > budget else OK,
            "detail": f"down {down:.3g}s of the {watched:.3g}s watched, {budget:.3g}s allowed per {window_s:g}s "
            f"({target:g}% up)",
            "target_percent": target,
            "window_s": window_s,
            "uptime_percent": round(percent, 4),
            "up_s": round(up, 3),
            "down_s": round(down, 3),
            "budget_s": round(budget, 3),
            "observed_s": round(watched, 3),
            "due_at": None if running or down > budget else now + budget - down,  # violated then, if still down
        }
