"""Room on the state filesystem, the pure rule (:func:`diskroom.room_refusal`): an export is refused exactly
when free space is under the floor or the exports folder holds its budget, saying the figures (on a real
small filesystem: tests/process/test_diskroom_fs.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from foss_supervisor.base.diskroom import budget_bytes, floor_bytes, room_refusal

SIZES = st.integers(min_value=0, max_value=2**44)


@given(total=SIZES, free_share=st.floats(0, 1), exports=SIZES)
def test_an_export_is_refused_exactly_under_the_floor_or_over_the_budget(
    total: int, free_share: float, exports: int
) -> None:
    free = int(total * free_share)
    why = room_refusal(free, total, exports)
    if free < floor_bytes(total):
        assert why.startswith("the state filesystem has ") and "under its floor" in why
    elif exports >= budget_bytes(total):
        assert why.startswith("the exports folder holds ") and "its budget is" in why
    else:
        assert why == ""


@given(total=SIZES)
def test_the_floor_and_budget_are_bounded_shares(total: int) -> None:
    assert 0 <= floor_bytes(total) <= min(total, 512 * 1024 * 1024)
    assert floor_bytes(total) <= budget_bytes(total) <= min(total, 2 * 1024**3)
