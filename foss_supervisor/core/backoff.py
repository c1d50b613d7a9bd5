"""Restart delays: exponential with full jitter and a cap, reset after a stable run.

Pure logic with an injectable random source, so tests are deterministic.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from foss_supervisor.config.model import BackoffPolicy

__all__ = ["Backoff", "BackoffPolicy"]


class Backoff:
    """Tracks consecutive failures of one program and hands out the next delay."""

    def __init__(self, policy: BackoffPolicy, rand: Callable[[], float] = random.random) -> None:
        self.policy = policy
        self._rand = rand
        self.failures = 0

    def next_delay_s(self) -> float:
        """Count one more failure and return how long to wait before the next spawn.

        The first failure restarts after ``initial_s`` (0 by default: a crash is answered at once),
        then ``base * multiplier**n`` grows from at least 0.1 s up to ``max_s``, with +/- ``jitter``
        spread so a fleet of crashing programs does not respawn in lockstep.
        """
        p = self.policy
        n = self.failures
        self.failures += 1
        if n == 0:
            return p.initial_s
        base = max(p.initial_s, 0.1) * p.multiplier ** (n - 1)
        delay = min(p.max_s, base)
        spread = delay * p.jitter * (2 * self._rand() - 1)
        return max(0.0, min(p.max_s, delay + spread))

    def reset(self) -> None:
        """Forget past failures (an operator's start or restart)."""
        self.failures = 0

    def observe_run(self, ran_for_s: float) -> None:
        """Forget past failures after a stable run."""
        if ran_for_s >= self.policy.reset_after_s:
            self.failures = 0
