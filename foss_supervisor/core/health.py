"""Health probes (http, tcp, exec) and the monitor that turns their results into a Health.

What each probe proves, and when a probe fails:

- every kind, first: the supervised process must be able to answer. One that is stopped (state T:
  SIGSTOP, a debugger) or a zombie is unhealthy at once, at the next probe, without waiting for
  ``failure_threshold`` (the kernel would go on accepting its TCP connections until the listen backlog
  fills, minutes on a production backlog);
- ``http``: a GET answered within ``timeout`` with a status below 400;
- ``tcp``: a connection accepted within ``timeout``; with ``send`` and/or ``expect``, also an answer:
  ``send`` is written, and the reply must hold ``expect`` (any reply, with ``send`` alone) within the
  same ``timeout``; a peer that accepts but never answers, or closes first, fails;
- ``exec``: the command exits 0 within ``timeout`` (its whole process group is ended either way).

What happens on unhealthy follows the program's ``autorestart`` (README, "Health and restarts").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from foss_supervisor.base.processstates import Health
from foss_supervisor.config import HealthConfig
from foss_supervisor.core.child import spawn

if TYPE_CHECKING:
    import aiohttp

__all__ = ["HealthMonitor", "probe"]


async def probe(
    cfg: HealthConfig,
    session: aiohttp.ClientSession | None = None,
    *,
    env: Mapping[str, str] | None = None,
    sweep: Callable[[], int] = lambda: 0,
) -> tuple[bool, str]:
    """Run one probe within ``cfg.timeout_s``; return (ok, detail).

    An ``exec`` probe runs in its own session with ``env`` (default: the daemon's); whether it passes,
    fails or times out, its whole process group is killed and ``sweep`` ends what escaped the group,
    so a probe never leaves a process behind.
    """
    stage = [f"{cfg.kind} probe timed out after"]  # what was waited for when the timeout struck
    try:
        async with asyncio.timeout(cfg.timeout_s):
            if cfg.kind == "tcp":
                return await _tcp(cfg, stage)
            if cfg.kind == "http":
                return await _http(cfg, session)
            return await _exec(cfg, env, sweep)
    except TimeoutError:
        return False, f"{stage[0]} {cfg.timeout_s:g}s"
    except OSError as exc:
        return False, f"{cfg.kind} probe failed: {exc.strerror or exc}"


MAX_ANSWER_BYTES = 64 * 1024  # read of a tcp probe's answer, at most


async def _tcp(cfg: HealthConfig, stage: list[str]) -> tuple[bool, str]:
    where = f"tcp {cfg.host}:{cfg.port}"
    reader, writer = await asyncio.open_connection(cfg.host, cfg.port)
    try:
        if not cfg.send and not cfg.expect:
            return True, f"{where} accepted"
        stage[0] = f"{where} accepted but gave no answer within"
        if cfg.send:
            writer.write(cfg.send.encode())
            await writer.drain()
        wanted = cfg.expect.encode()
        got = b""
        while len(got) < MAX_ANSWER_BYTES and not (wanted in got if wanted else got):
            chunk = await reader.read(MAX_ANSWER_BYTES - len(got))
            if not chunk:
                break
            got += chunk
        if wanted in got if wanted else got:
            return True, f"{where} answered"
        if not got:
            return False, f"{where} closed without an answer"
        return False, f"{where} answered {got[:80].decode('utf-8', 'backslashreplace')!r}, not {cfg.expect!r}"
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _http(cfg: HealthConfig, session: aiohttp.ClientSession | None) -> tuple[bool, str]:
    import aiohttp  # lazily: only daemons with http probes pay for the client

    own = session is None
    client = session or aiohttp.ClientSession()
    try:
        async with client.get(cfg.url, allow_redirects=False) as resp:
            return resp.status < 400, f"GET {cfg.url} -> {resp.status}"
    except aiohttp.ClientError as exc:
        return False, f"GET {cfg.url} failed: {exc}"
    finally:
        if own:
            await client.close()


async def _exec(cfg: HealthConfig, env: Mapping[str, str] | None, sweep: Callable[[], int]) -> tuple[bool, str]:
    child = await spawn(cfg.command, env=env)
    try:
        code = await child.wait()
    finally:
        # passed, failed or timed out (cancelled): the probe's whole group and what escaped it end here
        await child.stop(sweep=sweep)
        await child.release()
    return code == 0, f"exec {cfg.command[0]} exited {code}"


class HealthMonitor:
    """Probes every ``interval_s`` and reports when the health crosses the failure threshold.

    ``halted`` says why the supervised process cannot answer at all ("" when it can): then the probe is
    not run and the health is UNHEALTHY at once, whatever the threshold.
    """

    def __init__(
        self,
        cfg: HealthConfig,
        on_change: Callable[[Health, str], None],
        run_probe: Callable[[HealthConfig], Awaitable[tuple[bool, str]]] = probe,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        halted: Callable[[], str] = lambda: "",
    ) -> None:
        self.cfg = cfg
        self.health = Health.UNKNOWN
        self.failures = 0
        self.last_detail = ""  # the latest probe's outcome, also below the failure threshold
        self._on_change = on_change
        self._probe = run_probe
        self._sleep = sleep
        self._halted = halted

    async def run(self) -> None:
        """Probe until cancelled. The first success is HEALTHY; ``failure_threshold`` in a row is UNHEALTHY,
        and so is a halted process at once."""
        await self._sleep(self.cfg.start_period_s)
        while True:
            if why := self._halted():
                self.failures = max(self.failures + 1, self.cfg.failure_threshold)
                self.last_detail = f"{why} ({self.failures} failures in a row)"
                self._set(Health.UNHEALTHY, self.last_detail)
                await self._sleep(self.cfg.interval_s)
                continue
            ok, detail = await self._probe(self.cfg)
            if ok:
                self.failures = 0
                self.last_detail = detail
                self._set(Health.HEALTHY, detail)
            else:
                self.failures += 1
                self.last_detail = f"{detail} ({self.failures} failures in a row)"
                if self.failures >= self.cfg.failure_threshold:
                    self._set(Health.UNHEALTHY, self.last_detail)
            await self._sleep(self.cfg.interval_s)

    def _set(self, health: Health, detail: str) -> None:
        if health is not self.health:
            self.health = health
            self._on_change(health, detail)
