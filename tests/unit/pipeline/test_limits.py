"""The worker's limits as data: defaults, the cgroup they follow, the config keys (the OS limit in a real
worker: tests/process/pipeline/test_worker_os_limit.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from foss_supervisor.config import parse_config
from foss_supervisor.errors import ConfigError
from foss_supervisor.pipeline.engine.limits import (
    GiB,
    MiB,
    WorkerLimits,
    available_memory,
    cgroup_memory_limit,
    format_bytes,
    memory_limit_message,
)


def cgroup_tree(tmp_path: Path, proc: str, files: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (tmp_path / "proc_cgroup").write_text(proc)
    return tmp_path / "proc_cgroup", root


def test_the_lowest_cgroup_limit_up_the_tree_is_found_v2_v1_and_hybrid(tmp_path: Path) -> None:
    v2 = cgroup_tree(
        tmp_path / "v2",
        "0::/system.slice/foss.service\n",
        {
            "cgroup.controllers": "memory",
            "system.slice/memory.max": "3221225472\n",
            "system.slice/foss.service/memory.max": "max\n",
        },
    )
    assert cgroup_memory_limit(*v2) == 3 * GiB
    v1 = cgroup_tree(
        tmp_path / "v1",
        "4:memory:/box\n2:cpu:/box\n",
        {"memory/memory.limit_in_bytes": "9223372036854771712", "memory/box/memory.limit_in_bytes": "1073741824"},
    )
    assert cgroup_memory_limit(*v1) == GiB
    hybrid = cgroup_tree(tmp_path / "hybrid", "0::/a\n", {"unified/a/memory.max": "536870912"})
    assert cgroup_memory_limit(*hybrid) == 512 * MiB
    unlimited = cgroup_tree(tmp_path / "none", "0::/\n", {"cgroup.controllers": "", "memory.max": "max"})
    assert cgroup_memory_limit(*unlimited) is None
    assert cgroup_memory_limit(tmp_path / "missing", tmp_path) is None


def test_defaults_follow_the_memory_there_is() -> None:
    limits = WorkerLimits.resolve()
    assert limits.memory_limit == max(128 * MiB, min(2 * GiB, available_memory() // 2))
    assert limits.os_memory_limit == 2 * limits.memory_limit + GiB
    assert limits.recycle_rss == limits.memory_limit // 2 and limits.recycle_after_s == 30.0
    assert limits.max_temp_directory_size == 10 * GiB and limits.query_grace_s == 2.0
    assert WorkerLimits.resolve(512 * MiB, recycle_rss=0).to_dict() == {
        "memory_limit_bytes": 512 * MiB,
        "os_memory_limit_bytes": 2 * GiB,
        "max_temp_directory_size_bytes": 10 * GiB,
        "recycle_rss_bytes": 0,
        "recycle_after_s": 30.0,
        "query_grace_s": 2.0,
    }


def test_sizes_and_the_limit_message_read_well() -> None:
    assert [format_bytes(n) for n in (0, 1023, 2 * GiB, 768 * MiB, 1536 * MiB, 1500)] == [
        "0 B",
        "1023 B",
        "2 GiB",
        "768 MiB",
        "1.5 GiB",
        "1.5 KiB",
    ]
    assert memory_limit_message(2 * GiB).startswith("query needs more than the worker's 2 GiB memory limit; ")
    assert memory_limit_message(GiB, "export").startswith("export needs more than the worker's 1 GiB")


def test_the_warehouse_keys_are_read_and_gated(tmp_path: Path) -> None:
    text = (
        "warehouse:\n  memory_limit: 512MiB\n  max_temp_directory_size: 1GB\n"
        "  recycle_rss: 300MiB\n  recycle_after: 2m\n"
    )
    config = parse_config(text, tmp_path / "c.yaml", environ={})
    assert config.worker_memory_limit == 512 * MiB and config.worker_max_temp_size == 10**9
    assert config.worker_recycle_rss == 300 * MiB and config.worker_recycle_after_s == 120.0
    assert parse_config("warehouse: {memory_limit: 2GB}\n", tmp_path / "c.yaml", environ={}).worker_memory_limit == (
        2 * 10**9
    )
    assert parse_config("{}\n", tmp_path / "c.yaml", environ={}).worker_memory_limit is None  # the default
    for bad, key in (
        ("memory_limit: 1MB", "warehouse.memory_limit"),
        ("memory_limit: lots", "warehouse.memory_limit"),
        ("memory_limit: 99999999GiB", "warehouse.memory_limit"),
        ("recycle_rss: -5", "warehouse.recycle_rss"),
        ("recycle_after: forever", "warehouse.recycle_after"),
        ("memory_cap: 1GB", "warehouse.memory_cap"),
    ):
        with pytest.raises(ConfigError) as info:
            parse_config(f"warehouse:\n  {bad}\n", tmp_path / "c.yaml", environ={})
        assert key in str(info.value), (bad, str(info.value))
