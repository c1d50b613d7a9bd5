"""Each hook delivery's end is told back as a ``HookDelivered`` event (what the journal keeps, issue 19): taken by
a real command that reads its payload, and given up when the command fails, with the attempts made."""

from __future__ import annotations

import asyncio
from pathlib import Path

from helpers import PY

from foss_supervisor.alerting.hooks import HookDispatcher
from foss_supervisor.base.processstates import ProcessState as S
from foss_supervisor.base.redact import Redactor
from foss_supervisor.config import HookConfig, parse_config
from foss_supervisor.core.events import HookDelivered, StateChanged


def test_a_taken_and_a_failed_delivery_are_each_reported_once(tmp_path: Path) -> None:
    cfg = parse_config(
        "hooks:\n"
        "  keep: {on: [program_fatal], command: [sh, -c, 'cat > /dev/null']}\n"
        "  broken: {on: [program_fatal], command: [sh, -c, 'echo refused >&2; exit 4'], retries: 0}\n",
        tmp_path / "c.yaml",
        {},
    )

    async def scenario() -> list[HookDelivered]:
        told: list[HookDelivered] = []
        hooks = HookDispatcher(lambda: cfg.hooks, lambda: ([], {}, {}), Redactor(), report=told.append)
        runner = asyncio.create_task(hooks.run())
        hooks.offer(StateChanged(name="api", old=S.BACKOFF, new=S.FATAL, exit_code=1, reason="gave up"))
        async with asyncio.timeout(30):
            while len(told) < 2:
                await asyncio.sleep(0.05)
        runner.cancel()
        return sorted(told, key=lambda e: e.hook)

    broken, keep = asyncio.run(scenario())
    assert (keep.hook, keep.kind, keep.ok, keep.attempts, keep.error) == ("keep", "program_fatal", True, 1, "")
    assert (broken.hook, broken.ok, broken.attempts) == ("broken", False, 1)
    assert "4" in broken.error and broken.duration_s >= 0


def test_a_hook_whose_sender_fails_unexpectedly_fails_only_its_own_delivery(tmp_path: Path) -> None:
    """A hook with no sender at all (the loader refuses one; the dispatcher must outlive it anyway): its
    delivery fails and is reported, and the dispatcher goes on delivering the next one."""
    cfg = parse_config("hooks:\n  keep: {on: all, command: [sh, -c, 'cat > /dev/null']}\n", tmp_path / "c.yaml", {})
    told: list[HookDelivered] = []
    hooks = HookDispatcher(lambda: cfg.hooks, lambda: ([], {}, {}), Redactor(), report=told.append)
    broken = HookConfig(name="broken", events=frozenset({"program_fatal"}), retries=0)
    payload = {"kind": "program_fatal", "program": "api"}

    async def both() -> list[bool]:
        return [await hooks.deliver(broken, payload), await hooks.deliver(cfg.hooks[0], payload)]

    assert asyncio.run(both()) == [False, True]
    assert [(t.hook, t.ok) for t in told] == [("broken", False), ("keep", True)]


def test_a_hanging_receiver_holds_back_only_its_own_hook_and_a_reload_reaches_what_it_queued(tmp_path: Path) -> None:
    """Each hook delivers from its own lane: while ``slow`` hangs in its first delivery, ``fast`` takes all three
    events; a reload that points ``slow`` at a working command reaches the two events still queued for it."""
    fast, fixed = tmp_path / "fast.jsonl", tmp_path / "fixed.jsonl"
    record = "import sys; open(sys.argv[1], 'a').write(sys.stdin.read() + chr(10))"
    before = parse_config(
        "hooks:\n"
        f"  fast: {{on: [program_fatal], command: ['{PY}', '-c', \"{record}\", '{fast}']}}\n"
        "  slow: {on: [program_fatal], command: [sleep, '60'], timeout: 3s, retries: 0}\n",
        tmp_path / "c.yaml",
        {},
    )
    after = parse_config(
        "hooks:\n"
        f"  fast: {{on: [program_fatal], command: ['{PY}', '-c', \"{record}\", '{fast}']}}\n"
        f"  slow: {{on: [program_fatal], command: ['{PY}', '-c', \"{record}\", '{fixed}']}}\n",
        tmp_path / "c.yaml",
        {},
    )
    config = [before]

    def lines(path: Path) -> int:
        return len(path.read_text().splitlines()) if path.exists() else 0

    async def scenario() -> list[HookDelivered]:
        told: list[HookDelivered] = []
        hooks = HookDispatcher(lambda: config[0].hooks, lambda: ([], {}, {}), Redactor(), report=told.append)
        runner = asyncio.create_task(hooks.run())
        for name in ("a", "b", "c"):
            hooks.offer(StateChanged(name=name, old=S.BACKOFF, new=S.FATAL, exit_code=1, reason="gave up"))
        async with asyncio.timeout(30):
            while lines(fast) < 3:
                await asyncio.sleep(0.05)
            assert not any(t.hook == "slow" for t in told)  # still in its first delivery
            config[0] = after  # the reload, while two events wait for slow
            # a delivery is told once its process ended, after it wrote its line
            while lines(fixed) < 2 or len([t for t in told if t.hook == "slow"]) < 3:
                await asyncio.sleep(0.05)
        runner.cancel()
        return told

    told = asyncio.run(scenario())
    slow = [t for t in told if t.hook == "slow"]
    assert [t.ok for t in slow] == [False, True, True] and "3s" in slow[0].error
