"""Program selectors: the one place that turns what an operator types into program names.

Wherever a program name is accepted (``ctl start|stop|restart|signal``, ``status``, ``logs``), a
selector may be, in this order of lookup:

- ``all``: every program;
- a program name (a replica's full name, ``web-0``, included);
- a group from the config's ``groups:`` section (supervisord's ``[group:x]``): all its members;
- a replica set, the name a program had before its replicas were expanded (``web``: ``web-0``, ``web-1``...);
- a shell glob (``web-*``, ``api?``, ``[ab]*``): every program whose name matches.

Stdlib only: the CLI resolves selectors against the config when the daemon is down.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence

from foss_supervisor.errors import CommandError

__all__ = ["ALL", "resolve"]

ALL = "all"
_GLOB = frozenset("*?[")


def resolve(
    selectors: Iterable[str],
    programs: Sequence[str],
    replica_sets: Mapping[str, Sequence[str]],
    groups: Mapping[str, Sequence[str]],
    extra: Sequence[str] = (),
) -> list[str]:
    """Program names (config order, each once) that ``selectors`` select.

    ``programs``: every program name; ``replica_sets``: replica-set name -> its programs; ``groups``:
    group name -> members (program or replica-set names); ``extra``: more names the caller accepts
    as they are (``logs`` accepts ``daemon``). A replica set's name selects the whole set, also when it
    is the name of its first replica (a program scaled up keeps NAME and adds NAME-1, ...). A selector that
    selects nothing raises CommandError listing what is known.
    """
    known = set(programs)
    chosen: set[str] = set()
    for sel in selectors:
        found = _one(sel, programs, known, replica_sets, groups, extra)
        if not found:
            raise CommandError(_unknown(sel, programs, replica_sets, groups, extra))
        chosen.update(found)
    order = [*programs, *extra]
    return [name for name in order if name in chosen]


def _one(
    sel: str,
    programs: Sequence[str],
    known: set[str],
    replica_sets: Mapping[str, Sequence[str]],
    groups: Mapping[str, Sequence[str]],
    extra: Sequence[str],
) -> list[str]:
    if sel == ALL:
        return list(programs)
    if sel in replica_sets:  # first: a program scaled up (NAME, NAME-1, ...) is all of them, as in PM2
        return list(replica_sets[sel])
    if sel in known or sel in extra:
        return [sel]
    if sel in groups:
        out: list[str] = []
        for member in groups[sel]:
            out.extend(replica_sets.get(member) or ([member] if member in known else []))
        return out
    if _GLOB & set(sel):
        return [name for name in programs if fnmatch.fnmatchcase(name, sel)]
    return []


def _unknown(
    sel: str,
    programs: Sequence[str],
    replica_sets: Mapping[str, Sequence[str]],
    groups: Mapping[str, Sequence[str]],
    extra: Sequence[str],
) -> str:
    what = f"no program matches {sel!r}" if _GLOB & set(sel) else f"no such program, group or replica set: {sel!r}"
    names = sorted({*programs, *(k for k, v in replica_sets.items() if len(v) > 1 or k not in programs)})
    parts = [f"programs: {', '.join(names) or '(none)'}"]
    if groups:
        parts.append(f"groups: {', '.join(sorted(groups))}")
    if extra:
        parts.append(f"also: {', '.join(extra)}")
    return f"{what}; known {'; '.join(parts)}; or 'all', or a glob like 'web-*'"
