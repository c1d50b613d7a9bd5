"""The DuckDB worker's memory and time limits: their defaults, the OS limit the kernel enforces, the messages.

Three layers bound the worker's memory (measured on DuckDB 2.0, see docs/pipelines.md, "Worker limits"):

1. DuckDB's ``memory_limit`` (default 2 GiB, or half of the memory of the machine or of the daemon's cgroup
   when that is less). Its buffer manager counts hash tables, sorts, joins and list aggregates, spills what
   it can to ``temp_directory`` (``<state_dir>/duckdb_tmp``, at most ``max_temp_directory_size``) and fails
   the rest with an OutOfMemoryException, which the query engine reports as
   "query needs more than the worker's 2 GiB memory limit; ...".
2. ``RLIMIT_DATA``, set by the worker on itself at start: ``2 x memory_limit + 1 GiB``. The kernel refuses
   (ENOMEM) any private writable mapping past it; DuckDB turns that into the same OutOfMemoryException and
   Python into MemoryError. It bounds what DuckDB does not count (Python objects, allocator slack, thread
   arenas) and turns a runaway into an error instead of the host's OOM killer.
   Why not RLIMIT_AS: it also counts address space that is reserved and never touched (the worker maps
   780 MiB of it before its first query, and 1.5-2.1 GiB more than it has resident under load, growing with
   DuckDB's threads), so a limit tight enough to matter fails good queries on a machine with many cores;
   RLIMIT_DATA counts 1.4-1.8x the resident memory at 2 to 64 threads. Why not a cgroup v2 ``memory.max``:
   it is the better meter (resident pages only), but the daemon can create one only inside a delegated
   cgroup v2 hierarchy with the memory controller (systemd ``Delegate=yes``, then moving itself into a
   leaf), which a plain install does not have; ``MemoryMax=`` on the service unit bounds the whole
   service instead, and the default memory limit follows it (see :func:`available_memory`).
3. The recycle: after a big query the allocator keeps what it freed (1.6 GB of resident memory after one
   query failed at a 2 GiB limit, measured), so a worker whose RSS stays above ``recycle_rss`` for
   ``recycle_after_s`` while idle is restarted (see workerservice.py).

Time: a query's time limit interrupts it at its second (``cursor.interrupt()``); what DuckDB cannot
interrupt (one huge ``range()`` or ``list_sort`` call, or Python building objects from a huge value) gets
``query_grace_s`` more, and then the worker is restarted and the caller told so.
"""

from __future__ import annotations

import dataclasses
import resource
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

if TYPE_CHECKING:
    from foss_supervisor.config import Config

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "MAX_RESULT_BYTES",
    "GiB",
    "MiB",
    "WorkerLimits",
    "apply_os_memory_limit",
    "available_memory",
    "cgroup_memory_limit",
    "format_bytes",
    "memory_limit_message",
    "worker_limits",
]

MiB = 2**20
GiB = 2**30
DEFAULT_MEMORY_LIMIT = 2 * GiB
#: DuckDB's spill space in the state dir: big sorts and joins go to disk up to this, then fail
DEFAULT_MAX_TEMP_SIZE = 10 * GiB
DEFAULT_RECYCLE_AFTER_S = 30.0
DEFAULT_QUERY_GRACE_S = 2.0
#: the largest reply to one query, as JSON (column names and types included); whole results go through export
MAX_RESULT_BYTES = 16 * MiB
#: a cgroup limit at or above this means "no limit" (cgroup v1 writes 2**63 rounded down to a page)
_UNLIMITED = 2**60


def format_bytes(n: int) -> str:
    """``2147483648`` -> ``"2 GiB"``, ``805306368`` -> ``"768 MiB"`` (one decimal when not whole)."""
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} B"


def memory_limit_message(memory_limit: int, what: str = "query") -> str:
    """The one sentence every memory-limit hit of a query or an export answers with."""
    return (
        f"{what} needs more than the worker's {format_bytes(memory_limit)} memory limit; filter or aggregate "
        "in SQL, LIMIT the rows, export the result, or raise warehouse.memory_limit in the config"
    )


def cgroup_memory_limit(
    proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")
) -> int | None:
    """The lowest memory limit (bytes) on this process's cgroup and its ancestors, v2 or v1; None if unlimited.

    cgroup v2: ``memory.max`` of every directory from the process's cgroup up to the mount (at ``root``, or
    ``root/unified`` on a hybrid host). cgroup v1: ``memory.limit_in_bytes`` under ``root/memory``.
    """
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    found: list[int] = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and not controllers:
            mount, name = (root if (root / "cgroup.controllers").exists() else root / "unified"), "memory.max"
        elif "memory" in controllers.split(","):
            mount, name = root / "memory", "memory.limit_in_bytes"
        else:
            continue
        here = mount / path.strip("/")
        while True:
            try:
                text = (here / name).read_text().strip()
            except OSError:
                text = ""
            if text.isdigit() and int(text) < _UNLIMITED:
                found.append(int(text))
            if here == mount or mount not in here.parents:
                break
            here = here.parent
    return min(found) if found else None


def available_memory() -> int:
    """Memory the worker could use at most: the machine's, or its cgroup's limit when that is lower (bytes)."""
    total = int(psutil.virtual_memory().total)
    limit = cgroup_memory_limit()
    return min(total, limit) if limit is not None else total


def apply_os_memory_limit(limit: int) -> None:
    """Set this process's RLIMIT_DATA (soft and hard) to ``limit`` bytes; never raises a lower existing one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    bound = [v for v in (soft, hard, limit) if v != resource.RLIM_INFINITY]
    value = min(bound) if bound else limit
    resource.setrlimit(resource.RLIMIT_DATA, (value, value))


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerLimits:
    """The worker's bounds (bytes and seconds); :meth:`resolve` fills in the defaults.

    ``memory_limit``: DuckDB's. ``os_memory_limit``: the RLIMIT_DATA the worker sets on itself.
    ``max_temp_directory_size``: DuckDB's spill space. ``recycle_rss``/``recycle_after_s``: an idle worker
    above that resident memory for that long is restarted. ``query_grace_s``: how long past its time limit
    a query may take to stop before the worker is restarted.
    """

    memory_limit: int
    max_temp_directory_size: int = DEFAULT_MAX_TEMP_SIZE
    recycle_rss: int = 0
    recycle_after_s: float = DEFAULT_RECYCLE_AFTER_S
    query_grace_s: float = DEFAULT_QUERY_GRACE_S

    @property
    def os_memory_limit(self) -> int:
        """The kernel-enforced bound: twice DuckDB's limit plus 1 GiB (room for Python and allocator slack)."""
        return 2 * self.memory_limit + GiB

    @classmethod
    def resolve(
        cls,
        memory_limit: int | None = None,
        *,
        max_temp_directory_size: int | None = None,
        recycle_rss: int | None = None,
        recycle_after_s: float | None = None,
        query_grace_s: float | None = None,
    ) -> WorkerLimits:
        """Limits with defaults for what is None: memory 2 GiB (or half of :func:`available_memory` when that
        is less, at least 128 MiB), spill 10 GiB, recycle above half the memory limit after 30 s, grace 2 s."""
        memory = memory_limit or max(128 * MiB, min(DEFAULT_MEMORY_LIMIT, available_memory() // 2))
        temp = DEFAULT_MAX_TEMP_SIZE if max_temp_directory_size is None else max_temp_directory_size
        return cls(
            memory_limit=memory,
            max_temp_directory_size=temp,
            recycle_rss=memory // 2 if recycle_rss is None else recycle_rss,
            recycle_after_s=DEFAULT_RECYCLE_AFTER_S if recycle_after_s is None else recycle_after_s,
            query_grace_s=DEFAULT_QUERY_GRACE_S if query_grace_s is None else query_grace_s,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain form for ``status``: every bound in bytes or seconds, the OS limit included."""
        return {
            "memory_limit_bytes": self.memory_limit,
            "os_memory_limit_bytes": self.os_memory_limit,
            "max_temp_directory_size_bytes": self.max_temp_directory_size,
            "recycle_rss_bytes": self.recycle_rss,
            "recycle_after_s": self.recycle_after_s,
            "query_grace_s": self.query_grace_s,
        }


def worker_limits(config: Config) -> WorkerLimits:
    """The worker's bounds from the ``warehouse:`` keys, defaults for what is not given."""
    return WorkerLimits.resolve(
        config.worker_memory_limit,
        max_temp_directory_size=config.worker_max_temp_size,
        recycle_rss=config.worker_recycle_rss,
        recycle_after_s=config.worker_recycle_after_s,
    )
