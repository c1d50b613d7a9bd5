"""Every command's arguments pass one gate (:func:`registry.check_args`), whatever a transport hands over:
arbitrary JSON for every registered command gets a success or a clean error (a SupervisorError that says
which argument and what it must be), never a crash. The command context is a real, unstarted Daemon."""

from __future__ import annotations

import asyncio
import contextlib
import math
from pathlib import Path
from typing import Any

import pytest
from helpers import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.base.processstates import ProcessState
from foss_supervisor.commands import COMMANDS, answer
from foss_supervisor.commands.registry import DEFAULT_LIMITS, check_args
from foss_supervisor.config import parse_config
from foss_supervisor.core.events import Event, StateChanged
from foss_supervisor.daemon import Daemon
from foss_supervisor.errors import ProtocolError, SupervisorError

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
    st.text(max_size=1, min_size=1).map(lambda c: c * 5000),  # over a default string's limit
    # a lone surrogate: JSON's "\udc80", or a byte of argv that did not decode (hypothesis's text never has one)
    st.tuples(st.text(max_size=8), st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)).map("".join),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


@st.composite
def calls(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(sorted(COMMANDS)))
    params = sorted(COMMANDS[name].params)
    keys = draw(st.lists(st.sampled_from(params), unique=True) if params else st.just([]))
    args = {k: draw(JSON) for k in keys}
    if draw(st.booleans()):
        args.update(draw(st.dictionaries(st.text(max_size=10), JSON, max_size=2)))
    return name, args


def make_ctx(tmp: Path) -> Daemon:
    state = tmp / "state"
    state.mkdir(exist_ok=True)
    config = tmp / "config.yaml"
    config.write_text(f"state_dir: {state}\nprograms: {{}}\n")
    return Daemon(parse_config(config.read_text(), config), None)


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=calls())
def test_arbitrary_arguments_get_a_clean_error_or_a_success(
    call: tuple[str, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """And whatever the command and its end, its reply never runs ahead of the recorders (the event feed the
    dashboard and followers read): every event published before the answer, the command's audit record too,
    has reached them, though on its own the bus gives them events only once the publishing loop step ends."""
    name, args = call
    ctx = make_ctx(tmp_path_factory.mktemp("args"))
    published: list[Event] = []
    recorded: list[Event] = []
    ctx.bus.on(published.append)
    ctx.bus.on(recorded.append, deferred=True)

    async def run() -> None:
        ctx.bus.publish(StateChanged(name="p", old=ProcessState.RUNNING, new=ProcessState.BACKOFF))
        assert recorded == []  # not yet: a respawn's fork does not wait for the recorders
        async with asyncio.timeout(30):
            with contextlib.suppress(SupervisorError):  # a clean refusal: anything else escapes and fails
                await answer(ctx, name, args)
        assert recorded == published  # and in publish order

    asyncio.run(run())


@settings(max_examples=examples(400), deadline=None)
@given(call=calls())
def test_what_the_gate_passes_is_of_its_type_and_within_its_limit(call: tuple[str, dict[str, Any]]) -> None:
    name, args = call
    cmd = COMMANDS[name]
    try:
        checked = check_args(cmd, args)
    except ProtocolError as exc:
        assert str(exc).startswith(f"{name}: ") and len(str(exc)) < 400
        return
    for pname, value in checked.items():
        ptype, default = cmd.params[pname]
        if pname not in args:
            assert value == default
            continue
        assert isinstance(value, ptype) and cmd.limits[pname].refusal(value) == ""
        if isinstance(value, float):
            assert math.isfinite(value)


def test_every_parameter_has_a_limit() -> None:
    for cmd in COMMANDS.values():
        assert set(cmd.limits) == set(cmd.params), cmd.name
        for pname, (ptype, _default) in cmd.params.items():
            assert ptype in DEFAULT_LIMITS, (cmd.name, pname)
