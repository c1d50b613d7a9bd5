"""Health probes (http, tcp, exec) and the monitor that turns their results into a Health."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from foss_supervisor.child import stop_group
from foss_supervisor.config import HealthConfig
from foss_supervisor.states import Health

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
    try:
        async with asyncio.timeout(cfg.timeout_s):
            if cfg.kind == "tcp":
                _, writer = await asyncio.open_connection(cfg.host, cfg.port)
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                return True, f"tcp {cfg.host}:{cfg.port} accepted"
            if cfg.kind == "http":
                return await _http(cfg, session)
            return await _exec(cfg, env, sweep)
    except TimeoutError:
        return False, f"{cfg.kind} probe timed out after {cfg.timeout_s:g}s"
    except OSError as exc:
        return False, f"{cfg.kind} probe failed: {exc.strerror or exc}"


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
    proc = await asyncio.create_subprocess_exec(
        *cfg.command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
        env=dict(env) if env is not None else dict(os.environ),
    )  # fmt: skip
    try:
        code = await proc.wait()
    finally:
        # passed, failed or timed out (cancelled): the probe's whole group and what escaped it end here
        await stop_group(proc.pid, proc.wait(), sweep=sweep)
    return code == 0, f"exec {cfg.command[0]} exited {code}"


class HealthMonitor:
    """Probes every ``interval_s`` and reports when the health crosses the failure threshold."""

    def __init__(
        self,
        cfg: HealthConfig,
        on_change: Callable[[Health, str], None],
        run_probe: Callable[[HealthConfig], Awaitable[tuple[bool, str]]] = probe,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.cfg = cfg
        self.health = Health.UNKNOWN
        self.failures = 0
        self.last_detail = ""  # the latest probe's outcome, also below the failure threshold
        self._on_change = on_change
        self._probe = run_probe
        self._sleep = sleep

    async def run(self) -> None:
        """Probe until cancelled. The first success is HEALTHY; ``failure_threshold`` in a row is UNHEALTHY."""
        await self._sleep(self.cfg.start_period_s)
        while True:
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
