"""The event bus: synchronous observers at once, deferred ones (the daemon's recorders: log lines, the event feed)
at the end of the publishing loop step, every one of them in publish order, none lost (hypothesis); the
numbered event log catches up before it is read."""

from __future__ import annotations

import asyncio

from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from foss_supervisor.base.processstates import ProcessState
from foss_supervisor.core.events import EventBus, StateChanged

# a script: per loop step, how many events are published in it (then the step ends: the task yields)
_STEPS = st.lists(st.integers(min_value=0, max_value=6), max_size=12)


def _event(n: int) -> StateChanged:
    return StateChanged(name=f"p{n}", old=ProcessState.STOPPED, new=ProcessState.STARTING, reason=str(n))


@settings(max_examples=examples(200), deadline=None)
@given(steps=_STEPS, echo=st.booleans())
def test_deferred_observers_get_every_event_in_order_after_the_step_that_published_it(
    steps: list[int], echo: bool
) -> None:
    """Within a step the deferred observer has seen nothing of it; after the step, all of it, in publish order,
    the same list the synchronous observer saw. ``echo``: a deferred observer that publishes too (a recorder's
    own report) does not reorder or lose anything."""

    async def scenario() -> None:
        bus = EventBus()
        now: list[str] = []
        later: list[str] = []
        bus.on(lambda e: now.append(getattr(e, "name", "")))
        bus.on(lambda e: later.append(getattr(e, "name", "")), deferred=True)
        if echo:
            bus.on(lambda e: bus.publish(_event(-1)) if getattr(e, "reason", "") == "0" else None, deferred=True)
        n = 0
        for count in steps:
            seen_before = len(later)
            for _ in range(count):
                bus.publish(_event(n))
                n += 1
                assert len(later) == seen_before  # not within the publishing step
            for _ in range(50):  # bounded: at the end of the step (an echo's events one step on); call_soon
                if later == now:  # runs them once this task yields, no clock involved
                    break
                await asyncio.sleep(0)
            assert later == now  # everything published so far, in order
        assert later == now

    asyncio.run(scenario())


def test_flush_delivers_at_once_and_without_a_loop_delivery_is_immediate() -> None:
    bus = EventBus()
    later: list[str] = []
    bus.on(lambda e: later.append(getattr(e, "name", "")), deferred=True)
    bus.publish(_event(1))  # no running loop: a command-line tool's bus
    assert later == ["p1"]

    async def in_a_step() -> None:
        bus.publish(_event(2))
        assert later == ["p1"]
        bus.flush()  # a shutdown's last writes: the journal must have it before it closes
        assert later == ["p1", "p2"]
        await asyncio.sleep(0)
        assert later == ["p1", "p2"]  # the scheduled flush finds nothing left: no event twice

    asyncio.run(in_a_step())


def test_off_removes_a_deferred_observer_too() -> None:
    bus = EventBus()
    later: list[str] = []

    def record(e: object) -> None:
        later.append(getattr(e, "name", ""))

    bus.on(record, deferred=True)
    bus.off(record)
    bus.publish(_event(1))
    assert later == []


def test_the_event_log_catches_up_before_it_is_read() -> None:
    """The numbered event log is a deferred observer, yet a reader (a subscriber resuming, ``events``) sees every
    event published so far: each read flushes the bus first (EventLog's ``catch_up``)."""
    from foss_supervisor.core.eventlog import EventLog

    async def scenario() -> None:
        bus = EventBus()  # deferred: nothing would reach the log within this step without catching up
        log = EventLog(catch_up=bus.flush)
        bus.on(log.append, deferred=True)
        for n in range(3):
            bus.publish(_event(n))
        assert log.seq == 3
        bus.publish(_event(3))
        assert [e["seq"] for e in log.since(1)[0]] == [2, 3, 4]
        bus.publish(_event(4))
        assert [e["seq"] for e in log.recent(2)] == [5, 4]

    asyncio.run(scenario())
