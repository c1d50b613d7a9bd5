"""Pure logic with no OS: state table, backoff, reload plan, stop order, protocol decoding (redaction:
test_redact.py)."""

from __future__ import annotations

import itertools

import pytest

from foss_supervisor.base.processstates import ProcessState
from foss_supervisor.config import ProgramConfig
from foss_supervisor.control.protocol import decode_request
from foss_supervisor.core.backoff import Backoff, BackoffPolicy
from foss_supervisor.core.states import TRANSITIONS
from foss_supervisor.core.supervisor import plan_reload, stop_levels
from foss_supervisor.errors import IllegalTransitionError, ProtocolError

S = ProcessState


def test_every_state_has_a_way_out_and_illegal_moves_raise() -> None:
    assert set(TRANSITIONS) == set(S)
    TRANSITIONS.check(S.STARTING, S.RUNNING)
    for old, new in itertools.product(S, S):
        if new not in TRANSITIONS[old]:
            with pytest.raises(IllegalTransitionError):
                TRANSITIONS.check(old, new)
    with pytest.raises(IllegalTransitionError, match="illegal process transition STOPPED -> RUNNING"):
        TRANSITIONS.check(S.STOPPED, S.RUNNING)


def test_backoff_grows_caps_and_resets() -> None:
    b = Backoff(BackoffPolicy(initial_s=0.0, max_s=1.0, multiplier=2.0, jitter=0.0, reset_after_s=5.0))
    delays = [b.next_delay_s() for _ in range(7)]
    assert delays == [0.0, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    b.observe_run(4.9)
    assert b.next_delay_s() == 1.0
    b.observe_run(5.0)
    assert b.next_delay_s() == 0.0


def test_backoff_jitter_stays_within_spread() -> None:
    lo = Backoff(BackoffPolicy(jitter=0.5, max_s=100), rand=lambda: 0.0)
    hi = Backoff(BackoffPolicy(jitter=0.5, max_s=100), rand=lambda: 1.0)
    for _ in range(3):
        lo.next_delay_s(), hi.next_delay_s()
    assert lo.next_delay_s() == pytest.approx(0.4 * 0.5)
    assert hi.next_delay_s() == pytest.approx(0.4 * 1.5)


def prog(name: str, *deps: str, cmd: str = "x") -> ProgramConfig:
    return ProgramConfig(name=name, command=(cmd,), depends_on=deps, group=name)


def test_reload_plan() -> None:
    old = {"a": prog("a"), "b": prog("b"), "c": prog("c")}
    new = {"a": prog("a"), "b": prog("b", cmd="y"), "d": prog("d")}
    plan = plan_reload(old, new)
    assert (plan.added, plan.changed, plan.removed, plan.unchanged) == (("d",), ("b",), ("c",), ("a",))


def test_stop_levels_put_dependents_first() -> None:
    levels = stop_levels({"db": prog("db"), "api": prog("api", "db"), "web": prog("web", "api"), "x": prog("x")})
    assert levels == [["web"], ["api"], ["db", "x"]]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[1,2]", "JSON object"),
        (b'{"cmd": "status"}', "protocol version"),
        (b'{"v": 1}', "string 'cmd'"),
        (b'{"v": 1, "cmd": "status", "args": []}', "'args'"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_protocol_refuses_malformed_requests(line: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_request(line)
