"""A reload checks the SQL of the pipelines it adds or redefines as ``pipeline validate`` does, and refuses
one with an error: the running pipelines stay (issue 18: a reload had accepted a ``kind: quality`` block
naming a column its source lacks, which ``pipeline validate`` refused, and the pipeline then failed at its
next run). ``reload``, ``reload --dry-run``, SIGHUP and the config editor's save and Check all take this path.

The check runs in a short-lived child of its own (``python -m foss_supervisor.pipeline.worker.validatechild``,
spawned by the one child primitive in a new session, under the worker's RLIMIT_DATA), never in the daemon
(which does not load DuckDB) nor in the long-lived worker: each check imports the pipelines' Python afresh
(a function just added to a step file is found), and a module that exits or crashes at import ends only
that child. A check that does not finish (:data:`VALIDATE_TIMEOUT_S`: a reference file that never ends,
such as a FIFO; a module that blocks at import), ends without its reply, or answers what cannot be read
refuses the reload, saying so: the child's whole group is killed at the timeout.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterable
from typing import Any, cast

import structlog

from foss_supervisor.base.loopgate import LoopGate
from foss_supervisor.config import Config
from foss_supervisor.core.child import spawn
from foss_supervisor.pipeline.engine.workeredge import worker_environ

__all__ = [
    "CHECK_MODULE",
    "MAX_CHECKS",
    "MAX_REPLY_BYTES",
    "VALIDATE_TIMEOUT_S",
    "Output",
    "final_problems",
    "read_output",
    "run_check",
    "sql_problems",
    "verdicts",
]

log = structlog.get_logger("foss_supervisor.pipelines")

#: how long a reload waits for the check of the changed pipelines (seconds); then the check is killed
VALIDATE_TIMEOUT_S = 30.0
#: the largest reply read from the check (bytes); past it the reply is unreadable and the reload refused
MAX_REPLY_BYTES = 16 * 2**20
#: the check's module, run as ``python -m``
CHECK_MODULE = "foss_supervisor.pipeline.worker.validatechild"
#: the most checks running at once (reload dry runs are not serialised): more wait for one to end
MAX_CHECKS = 2
_STDERR_TAIL = 600
_gate = LoopGate(MAX_CHECKS)  # this loop's bound on checks at once (each a process with DuckDB in it)
_REPORT_KEYS = ("step", "status", "where", "message")


class Output:
    """The check's output sink (core.child.OutputSink): its stdout (at most MAX_REPLY_BYTES, then marked
    ``over``) and the last bytes of its stderr (what a crash printed)."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.over = False
        self.err = b""

    def __call__(self, fd: int, chunk: bytes) -> None:
        if fd == 2:
            self.err = (self.err + chunk)[-_STDERR_TAIL:]
        elif len(self.out) + len(chunk) > MAX_REPLY_BYTES:
            self.over = True
        else:
            self.out += chunk


def _request(config: Config, names: Iterable[str]) -> list[dict[str, Any]]:
    return [
        {
            "file": str(pc.file),
            "name": pc.name,
            "landing": str(pc.landing),
            "reference": None if pc.reference is None else str(pc.reference),
            "data_dir": str(config.data_path),
        }
        for pc in (config.pipelines[n] for n in sorted(set(names)))
    ]


def read_output(output: Output) -> tuple[str, dict[str, Any] | None, str]:
    """What the check printed: (the pipeline it was checking last, its final reply or None, why its output
    cannot be read or ""); never raises."""
    checking, final = "", None
    if output.over:
        return checking, None, f"its reply is larger than {MAX_REPLY_BYTES} bytes"
    for line in bytes(output.out).splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return checking, None, f"its reply is not JSON ({exc})"
        if isinstance(obj, dict) and isinstance(obj.get("checking"), str):
            checking = obj["checking"]
        elif isinstance(obj, dict) and "ok" in obj:
            final = obj
    return checking, final, ""


def verdicts(final: dict[str, Any]) -> dict[str, Any]:
    """The verdicts of a final reply, ``{NAME: {"reports": [...], "error": str}}``, their shape checked;
    raises ValueError when it refused its request or cannot be read."""
    if not final.get("ok"):
        raise ValueError(f"it refused its request: {final.get('error')}")
    found = final.get("result")
    found = found.get("pipelines") if isinstance(found, dict) else None
    good = isinstance(found, dict) and all(
        isinstance(v, dict)
        and isinstance(v.get("error"), str)
        and isinstance(v.get("reports"), list)
        and all(isinstance(r, dict) and all(isinstance(r.get(k), str) for k in _REPORT_KEYS) for r in v["reports"])
        for v in found.values()
    )
    if not good:
        raise ValueError("its reply cannot be read")
    return cast(dict[str, Any], found)


def final_problems(final: dict[str, Any]) -> list[str]:
    """The errors of a final reply, as ``"NAME: step STEP: WHERE: WHY"``; raises ValueError (see verdicts)."""
    problems: list[str] = []
    for name, verdict in sorted(verdicts(final).items()):
        if verdict["error"]:
            problems.append(f"{name}: {verdict['error']}")
        problems += [
            f"{name}: step {r['step']}: {r['where'] or '(no file)'}: {r['message']}"
            for r in verdict["reports"]
            if r["status"] == "error"
        ]
    return problems


async def run_check(
    items: list[dict[str, Any]], *, os_memory_limit: int = 0, timeout_s: float = VALIDATE_TIMEOUT_S
) -> tuple[dict[str, Any] | None, str]:
    """Run the check's child on ``items`` (its request's pipelines, worker/validatechild.py): ``(verdicts, "")``
    (see :func:`verdicts`), or ``(None, why)`` when it could not finish (not started, past ``timeout_s``
    seconds, ended without its reply, an unreadable reply). ``os_memory_limit``: its RLIMIT_DATA in bytes
    (0: none). Its whole process group is ended before this returns, even when the caller is cancelled. At
    most :data:`MAX_CHECKS` run at once; the rest wait (their timeout counts from their own start)."""
    async with _gate():
        return await _run_check(items, os_memory_limit, timeout_s)


async def _run_check(
    items: list[dict[str, Any]], os_memory_limit: int, timeout_s: float
) -> tuple[dict[str, Any] | None, str]:
    listed = ", ".join(str(i.get("name")) for i in items)
    argv = [sys.executable, "-m", CHECK_MODULE, "--os-memory-limit", str(max(0, os_memory_limit))]
    output = Output()
    try:
        child = await spawn(argv, env=worker_environ({}), output=output, stdin=True)
    except (OSError, ValueError) as exc:
        return None, f"the SQL check of pipelines {listed} could not start: {exc}"
    code: int | None = None
    try:
        child.write(json.dumps({"pipelines": items}).encode())
        child.close_stdin()
        try:
            async with asyncio.timeout(timeout_s):
                code = await child.wait()
        except TimeoutError:
            code = None
    finally:
        await child.stop()  # its whole group: what it started, and itself past the timeout (SIGKILL at once)
        await child.release()
    checking, final, unreadable = read_output(output)
    which = f"pipeline {checking}" if checking else f"pipelines {listed}"
    if code is None:
        why = (
            f"the SQL check of {which} did not finish within {timeout_s:g} s and was stopped: a reference file "
            "that cannot be read to its end (a FIFO?), or a Python step's module that blocks at import?"
        )
    elif unreadable or final is None:
        tail = output.err.decode("utf-8", "replace").strip().splitlines()[-1:]
        why = (
            f"the SQL check of {which} ended ({_exit_text(code)}) without a reply"
            f"{': ' + unreadable if unreadable else ''}: a Python step's module that exits or crashes at import?"
            + (f" (its last output: {tail[0][:300]})" if tail else "")
        )
    else:
        try:
            return verdicts(final), ""
        except ValueError as exc:
            why = f"the SQL check of pipelines {listed} failed: {exc}"
    return None, why


async def sql_problems(
    config: Config,
    names: Iterable[str],
    *,
    os_memory_limit: int = 0,
    timeout_s: float = VALIDATE_TIMEOUT_S,
) -> list[str]:
    """Each problem ``pipeline validate`` finds in ``config``'s pipelines ``names``, as ``"NAME: step STEP:
    WHERE: WHY"`` (WHERE: the SQL file and line, or the YAML file, line and block of a generated step, or the
    YAML file and the step's line for a Python step); ``[]`` when there are none. A check that could not
    finish is one problem saying why (:func:`run_check`, whose arguments the others are)."""
    items = _request(config, names)
    if not items:
        return []
    found, why = await run_check(items, os_memory_limit=os_memory_limit, timeout_s=timeout_s)
    if found is None:
        log.warning("pipelines_reload_check_unfinished", pipelines=[i["name"] for i in items], error=why)
        return [why]
    return final_problems({"ok": True, "result": {"pipelines": found}})


def _exit_text(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"
