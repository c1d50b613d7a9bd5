"""The state files as hostile input: whatever ``children.json`` holds, reading it never fails, and a
record never names a process that is not the one it recorded (so nothing a stranger runs is signalled).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from foss_supervisor.base.procinfo import ProcessIdentity, boot_id, identity_of, read_stat
from foss_supervisor.core.statestore import StateStore
from foss_supervisor.daemon.instance import leftover_processes

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
ME = identity_of(os.getpid())
RECORD = st.fixed_dictionaries(
    {},
    optional={
        "pid": st.sampled_from([os.getpid(), os.getppid(), 1, 0, -1, 2**40]) | st.integers() | st.text(max_size=5),
        "start_ticks": st.none() | st.integers() | st.sampled_from([ME.start_ticks if ME else 0]) | st.text(max_size=5),
        "boot_id": st.sampled_from([boot_id(), "", "another"]) | st.integers(),
        "create_time": st.floats(allow_nan=True) | st.integers() | st.text(max_size=5),
        "tag": st.text(max_size=30) | st.sampled_from(["a/b/1", "x/y/", "//"]) | st.integers(),
    },
)


@settings(max_examples=examples(300), deadline=None)
@given(st.one_of(JSON, st.dictionaries(st.text(max_size=8), RECORD, max_size=5)))
def test_any_children_record_reads_without_error_and_never_names_this_process(data: object) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = StateStore(Path(tmp))
        store.children_file.write_text(json.dumps(data))
        leftovers = store.leftovers()
        assert all(isinstance(rec.identity, ProcessIdentity) for rec in leftovers.values())
        found = leftover_processes(leftovers)
        assert set(found) == set(leftovers)
        # the test process and its ancestors are never a leftover, whatever the record says
        assert all(m.pid not in (os.getpid(), os.getppid()) for members in found.values() for m in members)


def test_a_record_with_this_process_start_time_is_alive_and_another_boot_is_not() -> None:
    assert ME is not None and ME.start_ticks is not None
    same = {"pid": ME.pid, "start_ticks": ME.start_ticks, "boot_id": boot_id(), "create_time": 0.0}
    assert ProcessIdentity.from_dict(same) == ProcessIdentity(ME.pid, ME.start_ticks, 0.0)
    assert ProcessIdentity(ME.pid, ME.start_ticks).alive()  # the wall-clock create_time plays no part
    assert ProcessIdentity.from_dict({**same, "boot_id": "another"}) is None
    assert not ProcessIdentity(ME.pid, ME.start_ticks + 1).alive()
    init = read_stat(1)
    assert init is not None  # a record naming init (whose session holds much of the host) is refused
    assert ProcessIdentity.from_dict({"pid": 1, "start_ticks": init.start_ticks, "boot_id": boot_id()}) is None
    assert (
        ProcessIdentity.from_dict({**same, "pid": True}) is None
        and ProcessIdentity.from_dict({**same, "pid": -1}) is None
    )
    legacy = ProcessIdentity.from_dict({"pid": ME.pid, "create_time": ME.create_time})
    assert legacy is not None and legacy.start_ticks is None and legacy.alive()  # old records still read


CHILD_OPS = st.lists(
    st.tuples(
        st.booleans(),  # started (True) or gone
        st.text(max_size=12),  # any program name, quotes, backslashes and control characters included
        st.integers(min_value=2, max_value=2**22),
        st.integers(min_value=0, max_value=2**40),
        st.text(max_size=20),  # the spawn tag
    ),
    max_size=30,
)


@settings(max_examples=examples(200), deadline=None)
@given(CHILD_OPS)
def test_children_json_is_the_record_of_every_started_child_not_gone_whatever_the_names(
    ops: list[tuple[bool, str, int, int, str]],
) -> None:
    with tempfile.TemporaryDirectory() as d:
        store = StateStore(Path(d))
        expected: dict[str, dict[str, object]] = {}
        for started, name, pid, ticks, tag in ops:
            if started:
                ident = ProcessIdentity(pid, ticks, 12.5)
                store.child_started(name, ident, tag)  # no loop running: written at once
                expected[name] = {**ident.as_dict(), "tag": tag}
            else:
                store.child_gone(name)
                expected.pop(name, None)
        if not store.children_file.exists():
            assert not expected
            return
        assert json.loads(store.children_file.read_text()) == expected
        assert sorted(store.leftovers()) == sorted(n for n, r in expected.items() if ProcessIdentity.from_dict(r))
