"""When a program cannot answer, judged on its whole process tree (:func:`program_child.halted_tree`): halted
only when its main process is stopped, a zombie or dead and no other process of it runs (on real processes:
tests/process/test_health_truth.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from foss_supervisor.base.procinfo import ProcStat
from foss_supervisor.core.program_child import halted_tree

HALTED = ("T", "t", "Z", "X")
STATES = st.sampled_from(["R", "S", "D", "I", "W", "P", *HALTED])


def stat(pid: int, state: str) -> ProcStat:
    return ProcStat(pid, 1, pid, pid, state, pid * 10)


@given(main=STATES, others=st.lists(STATES, max_size=12), include_main=st.booleans())
def test_halted_only_when_the_main_is_and_nothing_else_runs(main: str, others: list[str], include_main: bool) -> None:
    head = stat(100, main)
    members = [stat(200 + i, s) for i, s in enumerate(others)] + ([head] if include_main else [])
    why = halted_tree(head, members)
    runs = [s for s in others if s not in HALTED]
    if main in HALTED and not runs:
        assert why.startswith("process 100 is ") and why.endswith(f"(state {main}): it cannot answer")
    else:
        assert why == ""
