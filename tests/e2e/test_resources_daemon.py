"""The ``resources`` command on a real daemon: a program's memory and CPU sit in its descendants (the program
itself only waits), and the three readers (the dashboard's charts, ``top``, ``/metrics``) show the very
figures of one reply. The meter's own arithmetic: ``tests/process/test_resources.py``.
"""

from __future__ import annotations

import json
from typing import Any

import psutil
import pytest
from helpers import PY, DaemonHandle, wait_for
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from foss_supervisor.cli.top import usage_cells
from foss_supervisor.web.history import History, mib
from foss_supervisor.web.metrics import exposition, trees

# the program waits; its child holds 64 MiB and its grandchild burns a core: only the whole tree shows them
TREE = """
import os, sys, time
if len(sys.argv) == 1:
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, __file__, "child"])
    while True:
        time.sleep(1)
elif sys.argv[1] == "child":
    held = bytearray(64 * 2**20)
    for i in range(0, len(held), 4096):
        held[i] = 1
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, __file__, "burn"])
    while True:
        time.sleep(1)
else:
    while True:
        pass
"""


@pytest.mark.timeout(120)
def test_a_programs_figures_are_its_whole_tree_and_every_reader_shows_them(daemon: DaemonHandle) -> None:
    script = daemon.tmp / "tree.py"
    script.write_text(TREE)
    idle = "import time; time.sleep(300)"
    daemon.write_config(
        f"programs:\n  tree: {{command: [{PY!r}, {str(script)!r}]}}\n  idle: {{command: [{PY!r}, '-c', {idle!r}]}}\n"
    )
    daemon.start()
    wait_for(lambda: all(p["state"] == "RUNNING" for p in daemon.call("status")["programs"]), 20, "running")

    def busy() -> dict[str, Any] | None:
        reply: dict[str, Any] = daemon.call("resources")
        tree = reply["programs"]["tree"]
        return reply if tree["processes"] == 3 and (tree["cpu_percent"] or 0) > 50 else None

    reply = wait_for(busy, 30, "the grandchild's CPU in the program's figures")
    tree, root = reply["programs"]["tree"], psutil.Process(reply["programs"]["tree"]["pid"])
    assert sum(root.cpu_times()[:2]) < 1.0  # the program itself waits: the burning is its grandchild's
    assert tree["rss_bytes"] >= 64 * 2**20 > root.memory_info().rss
    members = [root, *root.children(recursive=True)]
    assert tree["rss_bytes"] == pytest.approx(sum(p.memory_info().rss for p in members), rel=0.05)
    status = daemon.call("status")
    assert reply["daemon"]["pid"] == status["daemon"]["pid"] and reply["daemon"]["processes"] == 1
    assert {n: t["pid"] for n, t in reply["services"].items()} == {s["name"]: s["pid"] for s in status["services"]}
    assert reply["worker"] is None and reply["host"]["disk_path"] == str(daemon.state_dir)
    assert reply["host"]["cpu_count"] == psutil.cpu_count()
    light = daemon.call("resources", programs=False)
    assert light["programs"] == {} and light["daemon"]["pid"] == status["daemon"]["pid"]
    _every_reader_shows_the_figures_of_one_reply(reply, status)


def _every_reader_shows_the_figures_of_one_reply(reply: dict[str, Any], status: dict[str, Any]) -> None:
    """The charts (History), ``top`` (its cells) and ``/metrics`` (its samples), fed one ``resources`` reply."""
    history = History(core=None)  # type: ignore[arg-type]  # fed by hand: no core asked
    history.record(json.loads(json.dumps(reply)), running=2)
    series = history.series()
    text = exposition({"status": status, "pipelines": [], "resources": reply}).decode()
    found: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if isinstance(s, Sample) and s.name.startswith("foss_supervisor_tree_"):
                found[(s.name, s.labels["kind"], s.labels["name"])] = s.value
    for name, tree in reply["programs"].items():
        assert series["programs"][name] == {"cpu": [tree["cpu_percent"]], "rss": [mib(tree["rss_bytes"])]}
        cpu, mem = usage_cells(tree)
        assert mem == f"{mib(tree['rss_bytes']):.1f}M" and cpu == (
            "-" if tree["cpu_percent"] is None else f"{tree['cpu_percent']:.0f}"
        )
        assert found[("foss_supervisor_tree_resident_memory_bytes", "program", name)] == tree["rss_bytes"]
        if tree["cpu_percent"] is not None:
            assert found[("foss_supervisor_tree_cpu_ratio", "program", name)] == tree["cpu_percent"] / 100
    assert series["rss"] == [mib(reply["daemon"]["rss_bytes"])] and series["cpu"] == [reply["host"]["cpu_percent"]]
    assert {(k, n) for k, n, _ in trees(reply)} == {
        (k, n) for (metric, k, n) in found if metric == "foss_supervisor_tree_processes"
    }
