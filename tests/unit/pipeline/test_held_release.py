"""Held files listed and released per path (issue 18, a tester's find): a landing file held in two runs, or
re-landed with other content that failed again, has several held contents in the ledger. It was listed once per
content, ``pipeline release NAME FILE`` released every content and named the path as often in its reply. Now a
listing shows each path once (holding.held_entries) and a release names each path once, releasing exactly the
contents of the entries it names (holding.release_plan). Any held ledger, any request."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from foss_supervisor.pipeline.engine.holding import held_entries, release_plan

PATHS = ["/l/a.csv", "/l/b.csv", "/l/sub/a.csv", "/l/c.jsonl"]  # two paths share a name


@st.composite
def held_rows(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """held_files_sql rows: distinct sha256, by path then oldest held first."""
    rows = draw(
        st.lists(
            st.tuples(
                st.sampled_from(PATHS),
                st.integers(0, 10**6),
                st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"]),
                st.none() | st.integers(0, 1000),
            ),
            max_size=10,
            unique_by=lambda r: r[1],
        )
    )
    out = [(p, f"{sha:064x}", f"run-{at}", at, lines, "held by step v") for p, sha, at, lines in rows]
    return sorted(out, key=lambda r: (r[0], r[3], r[1]))


@st.composite
def requests(draw: st.DrawFn) -> tuple[list[tuple[Any, ...]], list[str], bool]:
    rows = draw(held_rows())
    known = [r[0] for r in rows] + [PurePath(r[0]).name for r in rows] + [r[1] for r in rows] + PATHS
    files = draw(st.lists(st.sampled_from([*known, "nope.csv", "0" * 64]), max_size=5))
    every = not files  # the command takes one or the other
    return rows, files, every


@given(held_rows())
def test_each_held_path_is_listed_once_with_every_content(rows: list[tuple[Any, ...]]) -> None:
    entries = held_entries(rows)
    assert [e["path"] for e in entries] == list(dict.fromkeys(r[0] for r in rows))
    for e in entries:
        mine = [r for r in rows if r[0] == e["path"]]
        assert e["sha256s"] == [r[1] for r in mine] and e["contents"] == len(mine)
        assert (e["sha256"], e["held_run"], e["held_at"]) == mine[-1][1:4]  # the newest held content
        counted = [r[4] for r in mine if r[4] is not None]
        assert e["lines"] == (sum(counted) if counted else None)
        assert e["name"] == PurePath(e["path"]).name


@given(requests())
def test_a_release_names_each_path_once_and_releases_exactly_what_its_entries_stand_for(
    request: tuple[list[tuple[Any, ...]], list[str], bool],
) -> None:
    rows, files, every = request
    entries = held_entries(rows)
    shas, paths, unknown = release_plan(entries, files, every)
    assert len(paths) == len(set(paths)) and len(shas) == len(set(shas))
    assert unknown == [
        f
        for f in dict.fromkeys(files)
        if f not in {x for r in rows for x in (r[0], r[1])} and f not in {PurePath(r[0]).name for r in rows}
    ]
    for e in entries:
        named = every or e["path"] in files or e["name"] in files
        expected = e["sha256s"] if named else [s for s in e["sha256s"] if s in files]
        assert [s for s in shas if s in e["sha256s"]] == expected, (e, files)
        assert (e["path"] in paths) == bool(expected)
    # every held content once with every=True
    assert release_plan(entries, [], True)[0] == [r[1] for r in rows]
