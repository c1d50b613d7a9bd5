"""structlog set-up: snake_case events with key/values, JSON to the daemon's log file, and to stderr
as readable lines on a terminal or JSON otherwise; under systemd, straight to journald as fields.

Every line, whatever its destination, passes the daemon's :class:`~foss_supervisor.base.redact.Redactor` last
(exceptions are formatted before it, so a traceback quoting a URL is redacted too).

The caller's thread (the supervision loop) only builds and redacts each line; rendering and writing happen
in one writer thread (the standard library's ``QueueHandler``/``QueueListener``), so a slow or stalled log
disk never holds supervision. Its queue is bounded (:data:`QUEUE_LINES`): past it a line is dropped and
counted as a failed write of the daemon's log (``status``). The writer drains the queue at interpreter
exit (for :data:`WRITER_STOP_S` at most: a writer stuck on a stalled disk does not hold the exit); a
daemon killed with SIGKILL may lose the lines still queued (a few milliseconds' worth)."""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import structlog

from foss_supervisor.base.jsonable import jsonable
from foss_supervisor.base.pipelinestates import RUN_FAILED, StepState
from foss_supervisor.base.redact import Redactor
from foss_supervisor.base.writefailures import CheckedFileHandler, WriteFailures
from foss_supervisor.systemd.journal import JournalHandler, journald_wanted

__all__ = ["QUEUE_LINES", "configure_logging", "log_pipeline_event"]

QUEUE_LINES = 10_000  # lines waiting for the writer thread at most; past it a line is dropped and counted
WRITER_STOP_S = 5.0  # at exit, how long the writer may take to write what is queued

_steps = structlog.get_logger("foss_supervisor.pipeline.steps")  # `logs pipeline` shows these lines too
_LEVELS = ("debug", "info", "warning", "error")
_BAD_STEP_STATES = frozenset(
    {StepState.FAILED, StepState.CRASHED, StepState.RETRYING, StepState.UPSTREAM_FAILED}
)  # logged as warnings


def log_pipeline_event(event: object) -> None:
    """The bus observer that writes pipeline steps' state changes and log lines to the daemon's log.

    Matched by the event's ``type``: the core does not import the pipeline package.
    """
    kind = getattr(event, "type", "")
    common = {"pipeline": getattr(event, "pipeline", ""), "run_id": getattr(event, "run_id", "")}
    if kind == "StepLog":
        level = str(getattr(event, "level", "info")).lower()
        method = getattr(_steps, level if level in _LEVELS else "info")
        method("pipeline_step_log", step=getattr(event, "step", ""), message=getattr(event, "message", ""), **common)
    elif kind == "StepStateChanged":
        state = str(getattr(getattr(event, "new", None), "value", getattr(event, "new", "")))
        method = _steps.warning if state in _BAD_STEP_STATES else _steps.info
        method(
            "pipeline_step_state",
            step=getattr(event, "step", ""),
            state=getattr(event, "new", None),
            rows_in=getattr(event, "rows_in", None),
            rows_out=getattr(event, "rows_out", None),
            duration_s=getattr(event, "duration_s", None),
            error=getattr(event, "error", None),
            **common,
        )
    elif kind == "RunFinished":
        status = str(getattr(getattr(event, "status", None), "value", getattr(event, "status", "")))
        method = _steps.error if status in RUN_FAILED else _steps.info
        method(
            "pipeline_run_finished",
            status=getattr(event, "status", None),
            duration_s=getattr(event, "duration_s", None),
            error=getattr(event, "error", None),
            **common,
        )


def _plain_values(_logger: object, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Values as JSON-able data (:func:`~foss_supervisor.base.jsonable.jsonable`: paths and enums as their text,
    never their repr, no ``PosixPath('...')`` in a log line); what later processors read is left alone:
    ``exc_info``/``stack_info`` (formatted next) and structlog's own ``_record``/``_from_structlog``."""
    for key, value in event.items():
        if key not in _LEFT_ALONE and not key.startswith("_"):
            event[key] = jsonable(value)
    return event


_LEFT_ALONE = frozenset({"exc_info", "stack_info"})


class _Handoff(logging.handlers.QueueHandler):
    """Hands each record, as structlog left it (redacted, not yet rendered), to the writer thread.

    ``prepare`` keeps the record as it is (the standard one formats it here, on the loop, which is the cost
    this avoids); a full queue drops the record and counts it in ``failures`` under ``path``.
    """

    def __init__(self, lines: queue.Queue[logging.LogRecord], failures: WriteFailures, path: Path) -> None:
        super().__init__(lines)
        self._failures = failures
        self._path = path

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            behind = BlockingIOError(f"the log writer is behind ({QUEUE_LINES} lines queued)")
            self._failures.failed(self._path, "daemon_log", behind)


class _Writer(logging.handlers.QueueListener):
    """The writer thread; its stop is bounded: a writer stuck on a stalled disk does not hold the exit."""

    def stop(self) -> None:
        thread = self._thread
        if thread is not None:
            self.enqueue_sentinel()
            thread.join(WRITER_STOP_S)  # a daemon thread: one still stuck after this ends with the process
            if thread.is_alive():  # stuck in a write holding its handler's lock, which logging's own
                atexit.unregister(logging.shutdown)  # flush at exit would wait for, for ever
            self._thread = None


_writer: _Writer | None = None


def _stop_writer() -> None:
    """Write what is queued and end the writer thread (at exit, and before logging is configured again)."""
    global _writer
    if _writer is not None:
        _writer.stop()
        _writer = None


def configure_logging(
    log_file: Path | None,
    *,
    debug: bool,
    stderr: bool,
    max_bytes: int,
    backups: int,
    write_failures: WriteFailures | None = None,
    redactor: Redactor | None = None,
) -> None:
    """Route structlog through stdlib logging so one call decides every destination.

    ``redactor`` (the daemon's, which learns the config's secrets) redacts every line; without one,
    a fresh one applies the rules alone.

    A record the log file cannot take (full disk) is dropped and counted in ``write_failures``
    (shown in ``status``), never printed to stderr as a traceback; without ``stderr`` logging, each
    rate-limited report is also echoed there as one line.
    """
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _plain_values,
        structlog.processors.format_exc_info,  # a traceback as text, so the redaction sees it
        (redactor or Redactor()).log_processor,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    global _writer
    root = logging.getLogger()
    _stop_writer()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    failures = write_failures or WriteFailures()
    handlers: list[logging.Handler] = []
    json_formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = CheckedFileHandler(
            log_file,
            kind="daemon_log",
            failures=failures,
            max_bytes=max_bytes,
            backups=backups,
            echo_stderr=not stderr,
        )
        file_handler.setFormatter(json_formatter)
        handlers.append(file_handler)
    if stderr and journald_wanted():
        handlers.append(JournalHandler())  # fields journalctl -o json shows; stderr would log each line twice
    elif stderr:
        err = logging.StreamHandler(sys.stderr)
        if sys.stderr.isatty():
            err.setFormatter(
                structlog.stdlib.ProcessorFormatter(
                    foreign_pre_chain=shared,
                    processors=[
                        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.dev.ConsoleRenderer(colors=False),
                    ],
                )
            )
        else:
            err.setFormatter(json_formatter)
        handlers.append(err)
    lines: queue.Queue[logging.LogRecord] = queue.Queue(QUEUE_LINES)
    root.addHandler(_Handoff(lines, failures, log_file or Path("<stderr>")))
    _writer = _Writer(lines, *handlers, respect_handler_level=True)
    _writer.start()
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


atexit.register(_stop_writer)
