"""The daemon's events as sd_notify messages: the status line systemd shows, READY, RELOADING, STOPPING.

The protocol itself is :mod:`foss_supervisor.systemd.notify`; this is the bus observer that speaks it.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from foss_supervisor.base.processstates import DaemonPhase, Health, ProcessState
from foss_supervisor.core.events import DaemonStateChanged
from foss_supervisor.systemd.notify import Notifier

__all__ = ["SystemdNotifier", "format_status"]

log = structlog.get_logger("foss_supervisor.daemon")


def format_status(
    running: int, total: int, *, fatal: int = 0, unhealthy: int = 0, last_pipeline_run: str | None = None
) -> str:
    """The operator's one-liner, e.g. ``5/6 programs running (1 FATAL); last pipeline run: orders ok 12:03``."""
    text = f"{running}/{total} programs running"
    problems = [f"{n} {what}" for n, what in ((fatal, ProcessState.FATAL), (unhealthy, Health.UNHEALTHY)) if n]
    if problems:
        text += f" ({', '.join(problems)})"
    if last_pipeline_run:
        text += f"; last pipeline run: {last_pipeline_run}"
    return text


class SystemdNotifier:
    """A bus observer (``bus.on(SystemdNotifier(...))``) that turns daemon events into sd_notify messages.

    ``DaemonStateChanged``: ``ready`` -> ``READY=1`` (again after a reload), ``reloading`` -> ``RELOADING=1``
    with ``MONOTONIC_USEC``, ``stopping`` -> ``STOPPING=1``, each with the current ``STATUS=``. Any other
    event (``StateChanged``, ``HealthChanged``, pipeline runs ...) refreshes ``STATUS=`` when its text
    changed. ``status_text()`` is called with no arguments and returns the counts part (see
    :func:`format_status`); outside the ready phase it is prefixed with the phase (``stopping: 2/6 ...``).
    """

    def __init__(self, notifier: Notifier, status_text: Callable[[], str]) -> None:
        self.notifier = notifier
        self._status_text = status_text
        self.phase = DaemonPhase.STARTING
        self._last_status: str | None = None

    def __call__(self, event: object) -> None:
        try:
            self._handle(event)
        except Exception:  # bus callbacks must not raise: the core would see our bug as its own
            log.exception("sd_notify_observer_failed")

    def _status(self) -> str:
        text = self._status_text()
        return text if self.phase == DaemonPhase.READY else f"{self.phase}: {text}"

    def _handle(self, event: object) -> None:
        if isinstance(event, DaemonStateChanged):
            if self.phase == DaemonPhase.STOPPING or event.state == self.phase:
                return  # nothing un-stops a daemon; a repeated phase is not news
            self.phase = event.state
            if not self.notifier.enabled:
                return
            status = self._status()
            if event.state == DaemonPhase.READY:
                self.notifier.ready(status)
            elif event.state == DaemonPhase.RELOADING:
                self.notifier.reloading(status)
            elif event.state == DaemonPhase.STOPPING:
                self.notifier.stopping(status)
            else:
                self.notifier.status(status)
            self._last_status = status
            return
        if not self.notifier.enabled:
            return
        status = self._status()
        if status != self._last_status:
            self.notifier.status(status)
            self._last_status = status
