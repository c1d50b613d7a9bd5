"""Hooks: state changes out of the daemon, as supervisord's event listeners and PM2's notifications.

A hook (the config's ``hooks:`` section) names event kinds and one sender: a command, a URL (the event as
JSON), an ntfy-style topic URL or email (the last two a message for people, :mod:`~.senders`)::

    hooks:
      pager:
        on: [program_fatal, pipeline_failed]
        url: https://alerts.example/hook          # POST, the event as a JSON body
        headers: {Authorization: "Bearer ${PAGER_TOKEN}"}
        timeout: 5s
        retries: 3
      journal:
        on: all
        select: [web, "api-*"]                    # only these programs (selectors) / pipelines
        command: [/usr/local/bin/record-event]     # the event as JSON on stdin and in FOSS_EVENT_JSON
      phone:
        on: [alert_firing, alert_resolved]
        ntfy: https://ntfy.sh/my-hosts-alerts      # a titled text message (Title, Priority, Tags headers)
      mail:
        on: [alert_firing, alert_resolved]
        email: {to: [ops@example.com], smtp: "mail.example.com:587", tls: starttls,
                username: alerts, password: "${SMTP_PASSWORD}"}

Event kinds (:data:`EVENT_KINDS`) and the JSON each delivers (every one has ``kind``, ``at``, ``host``)::

    program_fatal       {"program", "state", "old", "pid", "exit_code", "reason"}  gave up restarting
    program_exited      same keys        it left RUNNING without being asked to stop (crash, kill, exit)
    program_unhealthy   {"program", "health", "old", "detail"}   its probes crossed the failure threshold
    pipeline_failed     {"pipeline", "run_id", "status", "duration_s", "error"}   failed, cancelled, abandoned
    pipeline_succeeded  same keys                                                 succeeded (with warnings)
    step_regressed      {"pipeline", "run_id", "step", "duration_s", "median_s", "ratio", "previous"}  a step's
                        successful run took over 1.5x the median of its previous ten (pipeline/engine/regression.py)
    alert_firing        {"id", "key", "rule", "subject", "summary", "opened_at", "repeat", "notices", "acked"}
                        an incident opened, or is told again after the quiet period (alerting/alertwatch.py)
    alert_resolved      same keys                                     the incident's condition cleared

Every payload is redacted before it is queued (the daemon's :class:`~foss_supervisor.base.redact.Redactor`:
a program's ``reason`` or a pipeline's ``error`` may quote a URL with its password); the hook's own
``url`` and ``headers`` are sent as configured.

Supervision never waits for a hook: the bus callback only enqueues and each hook delivers from its own
lane, in order, one delivery at a time (a bounded queue per hook; the oldest delivery is dropped, and
counted, when it is full), so a receiver that hangs holds back only its own hook, never another's. A
delivery is made with the hook as the config says *then* (a reload that fixes a hook's URL reaches what is
still queued; a hook removed, or no longer hearing the kind, drops it). A delivery that fails,
times out (the command's process group is killed) or gets a non-2xx reply is retried ``retries``
times, 1 s, 2 s, 4 s... apart, then logged as ``hook_failed``. Each delivery's end, taken or given up, is
also told back (``report``: the daemon's bus) as a :class:`~foss_supervisor.core.events.HookDelivered`
event, which the journal keeps.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog

from foss_supervisor.alerting.senders import send_email, send_json, send_ntfy
from foss_supervisor.base.pipelinestates import RUN_SUCCEEDED
from foss_supervisor.base.processstates import Health, ProcessState
from foss_supervisor.base.redact import Redactor
from foss_supervisor.config import EVENT_KINDS, HookConfig
from foss_supervisor.core.child import spawn
from foss_supervisor.core.events import AlertNotice, HealthChanged, HookDelivered, StateChanged
from foss_supervisor.core.selectors import resolve
from foss_supervisor.errors import CommandError
from foss_supervisor.systemd.notify import without_systemd_environ

__all__ = ["EVENT_KINDS", "HookConfig", "HookDispatcher", "event_payload"]

log = structlog.get_logger("foss_supervisor.alerting.hooks")

QUEUE_MAX = 1000  # deliveries queued per hook
RETRY_DELAY_S = 1.0
RETRY_DELAY_MAX_S = 30.0
_GOOD_RUNS = RUN_SUCCEEDED


def event_payload(event: object) -> dict[str, Any] | None:
    """The hook payload for a bus event, or None when no hook kind covers it."""
    if isinstance(event, StateChanged):
        base = {
            "program": event.name,
            "state": str(event.new),
            "old": str(event.old),
            "pid": event.pid,
            "exit_code": event.exit_code,
            "reason": event.reason,
        }
        if event.new is ProcessState.FATAL:
            return {"kind": "program_fatal", **base}
        if event.old is ProcessState.RUNNING and event.new is not ProcessState.STOPPING:
            return {"kind": "program_exited", **base}
        return None
    if isinstance(event, HealthChanged) and event.new is Health.UNHEALTHY:
        return {
            "kind": "program_unhealthy",
            "program": event.name,
            "health": str(event.new),
            "old": str(event.old),
            "detail": event.detail,
        }
    if isinstance(event, AlertNotice):
        fields = ("id", "key", "rule", "subject", "summary", "opened_at", "repeat", "notices", "acked")
        return {"kind": event.notice, **{f: getattr(event, f) for f in fields}}
    if getattr(event, "type", "") == "RunFinished":  # a pipeline's event (the core does not import that package)
        status = getattr(getattr(event, "status", None), "value", "")
        kind = "pipeline_succeeded" if status in _GOOD_RUNS else "pipeline_failed"
        return {
            "kind": kind,
            "pipeline": getattr(event, "pipeline", ""),
            "run_id": getattr(event, "run_id", ""),
            "status": status,
            "duration_s": getattr(event, "duration_s", None),
            "error": getattr(event, "error", None),
        }
    if getattr(event, "type", "") == "StepRegressed":
        said = ("pipeline", "run_id", "step", "duration_s", "median_s", "ratio", "previous")
        return {"kind": "step_regressed", **{k: getattr(event, k, None) for k in said}}
    return None


class HookDispatcher:
    """Hears the bus, queues deliveries for the hooks that match, and delivers them in the background.

    ``hooks`` returns the current hooks (they change on reload); ``programs`` the current replica sets
    and groups, to resolve ``select``; ``redactor`` the daemon's egress gate. Call :meth:`offer` from the
    bus and run :meth:`run` in a task.
    """

    def __init__(
        self,
        hooks: Callable[[], Sequence[HookConfig]],
        selectables: Callable[[], tuple[list[str], Mapping[str, Sequence[str]], Mapping[str, Sequence[str]]]],
        redactor: Redactor,
        sweep: Callable[[], int] = lambda: 0,
        report: Callable[[HookDelivered], None] = lambda event: None,
    ) -> None:
        self._hooks = hooks
        self._report = report
        self._redactor = redactor
        self._selectables = selectables
        self._sweep = sweep
        self._lanes: dict[str, deque[dict[str, Any]]] = {}  # hook name -> payloads to deliver, oldest first
        self._draining: set[str] = set()  # hooks whose lane a task is delivering now
        self._ready = asyncio.Event()
        self.dropped = 0
        self.delivered = 0
        self.failed = 0
        self.host = socket.gethostname()

    def offer(self, event: object) -> None:
        """The bus callback: quick, never raises, never blocks."""
        try:
            payload = event_payload(event)
            if payload is None:
                return
            payload = {**payload, "at": getattr(event, "at", None), "host": self.host}
            sent: dict[str, Any] | None = None  # what leaves: redacted once, if any hook takes it
            for hook in self._hooks():
                if payload["kind"] in hook.events and self._selected(hook, payload):
                    sent = sent or self._redactor.data(payload)
                    lane = self._lanes.setdefault(hook.name, deque())
                    if len(lane) >= QUEUE_MAX:
                        lane.popleft()
                        self.dropped += 1
                    lane.append(sent)
                    self._ready.set()
        except Exception:  # an observer must not break the publisher
            log.exception("hook_offer_failed")

    def _selected(self, hook: HookConfig, payload: Mapping[str, Any]) -> bool:
        if not hook.select:
            return True
        subject = str(payload.get("subject", ""))  # an alert: selected by the program or pipeline it is about
        if subject.startswith(("program:", "pipeline:")):
            payload = {subject.partition(":")[0]: subject.partition(":")[2]}
        if "pipeline" in payload:
            return payload["pipeline"] in hook.select
        if "program" not in payload:
            return False  # an alert about a table: only hooks without select hear it
        programs, sets, groups = self._selectables()
        chosen: set[str] = set()
        for sel in hook.select:
            try:
                chosen.update(resolve([sel], programs, sets, groups))
            except CommandError:  # a selector that selects nothing now may select something later
                continue
        return payload["program"] in chosen

    async def run(self) -> None:
        """Deliver until cancelled: one task per hook with something queued, so one slow receiver holds back
        only its own hook."""
        async with asyncio.TaskGroup() as group:
            while True:
                self._ready.clear()
                for name, lane in list(self._lanes.items()):
                    if lane and name not in self._draining:
                        self._draining.add(name)
                        group.create_task(self._drain(name), name=f"hook:{name}")
                    elif not lane and name not in self._draining:
                        del self._lanes[name]  # a hook removed by a reload leaves no lane behind
                await self._ready.wait()

    async def _drain(self, name: str) -> None:
        """Deliver ``name``'s lane in order, each with the hook as configured at that moment."""
        try:
            lane = self._lanes.get(name) or deque()
            while lane:
                payload = lane.popleft()
                hook = self._current(name, payload)
                if hook is None:
                    self.dropped += 1  # removed, or no longer hearing this kind, since it was queued
                    continue
                await self.deliver(hook, payload)
        finally:
            self._draining.discard(name)
            self._ready.set()  # what came meanwhile is picked up by a new task

    def _current(self, name: str, payload: Mapping[str, Any]) -> HookConfig | None:
        """Hook ``name`` as the config says now, or None when a reload removed it or it no longer hears the
        payload's kind."""
        hook = next((h for h in self._hooks() if h.name == name), None)
        return hook if hook is not None and payload.get("kind") in hook.events else None

    async def deliver(self, hook: HookConfig, payload: dict[str, Any]) -> bool:
        """One delivery with its retries; True when the receiver took it."""
        delay = RETRY_DELAY_S
        error = ""
        began = time.monotonic()
        for attempt in range(hook.retries + 1):
            if attempt:  # a retry goes where the config says now (a reload may have fixed the address)
                now = self._current(hook.name, payload)
                if now is None:
                    error = f"hook {hook.name} was removed or no longer hears {payload.get('kind')} (reload)"
                    break
                hook = now
            try:
                async with asyncio.timeout(hook.timeout_s):
                    error = await self._send(hook, payload)
            except TimeoutError:
                error = f"no answer within {hook.timeout_s:g}s"
            except (OSError, ValueError) as exc:
                error = str(exc) or type(exc).__name__
            except Exception as exc:  # a sender's bug is this delivery's failure, never the end of every hook
                log.exception("hook_sender_crashed", hook=hook.name)
                error = f"{type(exc).__name__}: {exc}"
            if not error:
                self.delivered += 1
                log.info("hook_delivered", hook=hook.name, kind=payload["kind"], attempt=attempt + 1)
                self._told(hook, payload, attempt + 1, began, "")
                return True
            if attempt < hook.retries:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_DELAY_MAX_S)
        self.failed += 1
        log.warning("hook_failed", hook=hook.name, kind=payload["kind"], attempts=hook.retries + 1, error=error)
        self._told(hook, payload, hook.retries + 1, began, error)
        return False

    def _told(self, hook: HookConfig, payload: Mapping[str, Any], attempts: int, began: float, error: str) -> None:
        """Report how a delivery ended (never raises: the report is an observer's)."""
        event = HookDelivered(
            hook=hook.name,
            kind=str(payload["kind"]),
            ok=not error,
            attempts=attempts,
            duration_s=round(time.monotonic() - began, 3),
            error=error[:500],
        )
        try:
            self._report(event)
        except Exception:
            log.exception("hook_report_failed")

    async def _send(self, hook: HookConfig, payload: dict[str, Any]) -> str:
        """One attempt by the hook's sender: "" when the receiver took it, else what went wrong."""
        if hook.url:
            return await send_json(hook, payload)
        if hook.ntfy:
            return await send_ntfy(hook, payload)
        if hook.email is not None:
            return await send_email(hook, payload, self.host)
        return await self._run(hook, payload)

    async def _run(self, hook: HookConfig, payload: dict[str, Any]) -> str:
        body = json.dumps(payload).encode()
        # not the daemon's NOTIFY_SOCKET, WATCHDOG_* or LISTEN_*: a hook must not speak to systemd as the daemon
        env = {**without_systemd_environ(os.environ), "FOSS_EVENT": payload["kind"], "FOSS_EVENT_JSON": body.decode()}
        child = await spawn(hook.command, env=env, stdin=True)
        try:
            child.write(body)  # a command that does not read its stdin is fine: the pipe drops the rest
            child.close_stdin()
            code = await child.wait()
        finally:
            # done, failed or timed out (cancelled): the command's whole group and what escaped it end here
            await child.stop(sweep=self._sweep)
            await child.release()
        return "" if code == 0 else f"{hook.command[0]} exited {code}"
