"""What starts pipeline runs on their own: a timer (``every:``), a cron schedule and a landing-folder watcher.

Each is a task in the service's task group that calls ``fire(name, trigger)`` when it is time; the service
decides whether a run starts (not while one runs, not while the schedules are paused) and says so.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable, Sequence

from foss_supervisor.config import PipelineConfig
from foss_supervisor.pipeline.engine.fingerprint import landing_signature

__all__ = ["Triggers"]


class Triggers:
    """The trigger tasks of every pipeline, by name.

    ``fire(name, trigger)`` returns True when it started a run (``trigger`` is "interval", "cron" or
    "files_landed"; the run's reason is "schedule" or "files_landed", see history.run_reason);
    ``watch_interval_s()`` is asked before each scan of a landing folder (seconds).
    """

    def __init__(self, fire: Callable[[str, str], bool], watch_interval_s: Callable[[], float]) -> None:
        self._fire = fire
        self._watch_interval_s = watch_interval_s
        self._tasks: dict[str, list[asyncio.Task[None]]] = {}

    def start(
        self, group: asyncio.TaskGroup, pc: PipelineConfig, patterns: Sequence[str], *, baseline: bool = False
    ) -> None:
        """Start the triggers ``pc`` declares, in ``group``. With ``baseline`` (a reload that starts its own
        ``config_changed`` run) the landing files already there count as seen: only files landing later fire."""
        tasks = self._tasks.setdefault(pc.name, [])
        if pc.every_s > 0:
            tasks.append(group.create_task(self._every(pc), name=f"pipeline-timer:{pc.name}"))
        if pc.on_new_files:
            tasks.append(
                group.create_task(self._watch_landing(pc, patterns, baseline), name=f"pipeline-watch:{pc.name}")
            )
        if pc.cron:
            tasks.append(group.create_task(self._cron(pc, pc.cron), name=f"pipeline-cron:{pc.name}"))

    def forget(self, group: asyncio.TaskGroup | None, pc: PipelineConfig, patterns: Sequence[str]) -> None:
        """Start the triggers of ``pc`` again with nothing seen (after a reset emptied its ledger: the files
        in its landing folder are new to it again and start a run, once its schedules are not paused)."""
        if group is not None and pc.name in self._tasks:
            self.stop(pc.name)
            self.start(group, pc, patterns)

    def stop(self, name: str) -> None:
        """Cancel the triggers of pipeline ``name`` (none: nothing to do)."""
        for task in self._tasks.pop(name, []):
            task.cancel()

    def stop_all(self) -> None:
        """Cancel every trigger."""
        for name in list(self._tasks):
            self.stop(name)

    async def _every(self, pc: PipelineConfig) -> None:
        while True:
            await asyncio.sleep(pc.every_s)
            self._fire(pc.name, "interval")

    async def _cron(self, pc: PipelineConfig, expression: str) -> None:
        """Start a run at each time the cron expression names (local time; a missed time is not made up)."""
        from croniter import croniter

        schedule = croniter(expression, datetime.datetime.now().astimezone())
        while True:
            due = schedule.get_next(float)
            await asyncio.sleep(max(0.0, due - time.time()))
            self._fire(pc.name, "cron")

    async def _watch_landing(self, pc: PipelineConfig, patterns: Sequence[str], baseline: bool) -> None:
        """Start a run when files landed (and once at start for what is already there, unless ``baseline``).

        It waits until the folder looks the same on two scans in a row, so a drop of many files (or a
        file still being copied in place) starts one run with all of it, not a run per partial view.
        """
        seen: frozenset[tuple[str, int, int]] = frozenset()
        previous: frozenset[tuple[str, int, int]] | None = None
        while True:
            current = await asyncio.to_thread(landing_signature, pc.landing, patterns)
            if baseline:
                seen, baseline = current, False
            if current == previous and current - seen and self._fire(pc.name, "files_landed"):
                seen = current
            previous = current
            await asyncio.sleep(self._watch_interval_s())
