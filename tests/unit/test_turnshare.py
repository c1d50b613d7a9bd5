"""The clients' share of each turn of the event loop (:class:`~foss_supervisor.base.turnshare.TurnShare`).

Requests arrive in chosen turns with chosen costs on a clock of the test's (a request "costs" by moving it);
a callback that reschedules itself counts the loop's turns. The property: every request begins, in the order
they asked, and what begins between two ticks of that callback (one turn of the loop) costs at most twice the
budget plus two requests: the gate's count restarts once per turn, so a turn meets at most two of its
windows, each of which lets requests begin for less than the budget after its first."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from foss_supervisor.base.turnshare import TurnShare

BUDGET_S = 0.002


class Turns:
    """Counts the event loop's turns: a callback that schedules itself again each turn."""

    def __init__(self) -> None:
        self.now = 0
        self._running = True

    def start(self) -> None:
        asyncio.get_running_loop().call_soon(self._tick)

    def stop(self) -> None:
        self._running = False

    def _tick(self) -> None:
        if self._running:
            self.now += 1
            asyncio.get_running_loop().call_soon(self._tick)


async def simulate(requests: list[tuple[int, float]], budget_s: float = BUDGET_S) -> list[tuple[int, int, float]]:
    """Run ``requests`` ((turns to wait before asking, cost in s)) through one gate; returns, in the order they
    began, (request index, turn, clock when it began)."""
    clock = [0.0]
    share = TurnShare(budget_s, clock=lambda: clock[0])
    turns = Turns()
    began: list[tuple[int, int, float]] = []
    asked: list[int] = []

    async def request(i: int, delay: int, cost: float) -> None:
        for _ in range(delay):
            await asyncio.sleep(0)
        asked.append(i)
        await share.take()
        began.append((i, turns.now, clock[0]))
        clock[0] += cost  # the request's synchronous work

    turns.start()
    async with asyncio.timeout(10):
        await asyncio.gather(*(request(i, d, c) for i, (d, c) in enumerate(requests)))
    turns.stop()
    assert [i for i, _, _ in began] == asked, "requests began in the order they asked"
    assert share.waiting == 0
    return began


def per_turn(began: list[tuple[int, int, float]]) -> dict[int, list[float]]:
    out: dict[int, list[float]] = defaultdict(list)
    for _i, turn, at in began:
        out[turn].append(at)
    return out


@settings(max_examples=examples(200), deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=6),
            st.one_of(st.just(0.0), st.floats(min_value=1e-5, max_value=0.01, allow_nan=False)),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_a_turn_holds_at_most_two_budgets_and_two_requests(requests: list[tuple[int, float]]) -> None:
    began = asyncio.run(simulate(requests))
    assert len(began) == len(requests)
    longest = max(cost for _, cost in requests)
    cost_of = {i: cost for i, (_, cost) in enumerate(requests)}
    work: dict[int, float] = defaultdict(float)
    for i, turn, _at in began:
        work[turn] += cost_of[i]
    for turn, seconds in work.items():
        assert seconds <= 2 * (BUDGET_S + longest) + 1e-9, f"turn {turn} ran {seconds * 1e3:.2f} ms of requests"


def test_a_flood_is_spread_over_turns_and_served_in_full() -> None:
    """300 requests of 1 ms at once (a flood of ``status``): two per turn (the first, then one more within
    2 ms), all served, none starved."""
    began = asyncio.run(simulate([(0, 0.001)] * 300))
    counts = [len(v) for v in per_turn(began).values()]
    assert sum(counts) == 300
    assert max(counts) == 2
    assert len(counts) >= 150


def test_cheap_requests_fill_a_turn_up_to_the_budget() -> None:
    """Requests that cost nothing never run past the budget, so a turn takes all of them: no turn is lost."""
    began = asyncio.run(simulate([(0, 0.0)] * 50))
    assert len(per_turn(began)) == 1


def test_supervision_waits_at_most_one_turn_behind_a_flood() -> None:
    """A callback scheduled while 200 requests of 1 ms are ready runs after at most the budget plus one
    request of theirs: the delay a flood adds to a child's exit being handled."""

    async def scenario() -> float:
        clock = [0.0]
        share = TurnShare(BUDGET_S, clock=lambda: clock[0])
        seen: list[float] = []

        async def request() -> None:
            await share.take()
            clock[0] += 0.001

        tasks = [asyncio.ensure_future(request()) for _ in range(200)]
        await asyncio.sleep(0)  # the flood is under way
        mark = clock[0]
        asyncio.get_running_loop().call_soon(lambda: seen.append(clock[0] - mark))
        await asyncio.gather(*tasks)
        return seen[0]

    assert asyncio.run(scenario()) <= BUDGET_S + 0.001 + 1e-9


def test_a_cancelled_waiter_leaves_without_holding_the_line() -> None:
    async def scenario() -> list[int]:
        clock = [0.0]
        share = TurnShare(BUDGET_S, clock=lambda: clock[0])
        order: list[int] = []

        async def request(i: int) -> None:
            await share.take()
            order.append(i)
            clock[0] += 0.003  # over the budget alone: one per turn

        tasks = [asyncio.ensure_future(request(i)) for i in range(5)]
        await asyncio.sleep(0)
        tasks[2].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert share.waiting == 0
        return order

    assert asyncio.run(scenario()) == [0, 1, 3, 4]


@pytest.mark.parametrize("budget", [0.0, -1.0, float("nan")])
def test_a_budget_must_be_positive(budget: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        TurnShare(budget)
