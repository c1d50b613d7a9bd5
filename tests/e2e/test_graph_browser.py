"""``/graph`` in real headless Chromium against a real daemon: every node drawn, no two boxes overlapping and no
label outside its box at 1,280 and 400 px (the frame scrolls, the page does not), no console error or CSP
violation, a state change redrawn without a reload, a box leads to its page; and the same at over 200
nodes. Screenshots go to ``$FOSS_SCREENSHOTS`` when set, else to the test's temp folder; the time to the
drawn graph is printed (measured, not asserted)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers import DaemonHandle, write_graph_host
from helpers.browser import Watched, shots_dir

#: every drawn box and label: (id, box, [label boxes]) in SVG units
BOXES = """() => [...document.querySelectorAll('#graph-canvas g.node')].map(g => {
  const r = g.querySelector('rect').getBBox();
  return [g.dataset.id, [r.x, r.y, r.width, r.height],
          [...g.querySelectorAll('text')].map(t => { const b = t.getBBox(); return [b.x, b.y, b.width, b.height]; })];
})"""
#: from navigation to the end of DOMContentLoaded, which graph.js (a plain script at the end) runs before
DRAWN_MS = "performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd"


def _overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _inside(inner: list[float], outer: list[float]) -> bool:
    return (
        inner[0] >= outer[0]
        and inner[1] >= outer[1] - 1
        and inner[0] + inner[2] <= outer[0] + outer[2]
        and inner[1] + inner[3] <= outer[1] + outer[3] + 1
    )


def _check_drawn(d: DaemonHandle, browser: Any, path: str, out: Path, name: str) -> list[str]:
    """Open ``path`` at both widths; every node drawn once, readable; returns the drawn ids."""
    expected = {n["id"] for n in d.call("graph", pipeline=path.partition("pipeline=")[2])["nodes"]}
    ids: list[str] = []
    for width in (1280, 400):
        w = Watched(browser, width, session=d)
        try:
            w.page.goto(f"http://127.0.0.1:{d.port}{path}")
            w.page.locator("#graph-canvas[data-ready=true]").wait_for(timeout=15_000)
            boxes = w.page.evaluate(BOXES)
            ids = [b[0] for b in boxes]
            assert sorted(ids) == sorted(expected)
            overlapping = [(a[0], b[0]) for i, a in enumerate(boxes) for b in boxes[i + 1 :] if _overlap(a[1], b[1])]
            assert overlapping == []
            outside = [b[0] for b in boxes if not all(_inside(t, b[1]) for t in b[2])]
            assert outside == []
            overflow = w.page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at {width}px"
            print(f"{path} at {width}px: {len(ids)} nodes drawn {w.page.evaluate(DRAWN_MS):.0f} ms after navigation")
            w.page.screenshot(path=str(out / f"{name}-{width}.png"), full_page=True)
            assert w.errors == [], w.errors
        finally:
            w.close()
    return ids


def test_the_graph_page_draws_every_node_readably_and_links_to_its_page(
    daemon: DaemonHandle, browser: Any, tmp_path: Path
) -> None:
    landing = write_graph_host(daemon)
    daemon.start()
    out = shots_dir(tmp_path)
    ids = _check_drawn(daemon, browser, "/graph", out, "graph")
    assert {"program:collector", "table:gold.daily_revenue", "step:trips/daily", f"folder:{landing}"} <= set(ids)
    trips = _check_drawn(daemon, browser, "/graph?pipeline=trips", out, "graph-trips")
    assert "step:trips/clean" in trips and not [i for i in trips if i.startswith("step:orders/")]

    w = Watched(browser, session=daemon)
    try:
        w.page.goto(f"http://127.0.0.1:{daemon.port}/graph")
        api = w.page.locator('#graph-canvas g.node[data-id="program:api"] text.graph-sub')
        assert api.text_content() == "RUNNING"
        stroke = "id => getComputedStyle(document.querySelector(`#graph-canvas g.node[data-id='${id}'] rect`)).stroke"
        running = w.page.evaluate(stroke, "program:api")
        daemon.call("stop", names=["api"])  # the page follows the state without a reload
        w.page.locator('#graph-canvas g.node[data-id="program:api"] text.graph-sub', has_text="STOPPED").wait_for(
            timeout=10_000
        )
        assert w.page.locator('#graph-canvas g.node.health-idle[data-id="program:api"]').count() == 1
        assert w.page.evaluate(stroke, "program:api") != running  # coloured by live state, not only by layer
        assert w.navigations == 1
        w.page.locator('#graph-canvas g.node[data-id="program:collector"]').click()
        w.page.wait_for_url("**/logs/collector", timeout=10_000)
        w.page.goto(f"http://127.0.0.1:{daemon.port}/graph")
        w.page.get_by_role("link", name="Graph").first.wait_for(timeout=5_000)  # in the nav of every page
        assert w.errors == [], w.errors
    finally:
        w.close()


def test_over_two_hundred_nodes_stay_apart_and_readable(daemon: DaemonHandle, browser: Any, tmp_path: Path) -> None:
    programs = "".join(
        f"  c-{i}: {{command: 'sleep 1000', autostart: false, feeds: [raw.feed_{i}], needs: [gold.daily_revenue]}}\n"
        for i in range(100)
    )
    daemon.write_config(
        "programs:\n" + programs + "pipelines:\n  orders: {demo_data: false, on_new_files: false}\n",
        extra=f"data_dir: {daemon.tmp / 'data'}",
    )
    daemon.start()
    ids = _check_drawn(daemon, browser, "/graph", shots_dir(tmp_path), "graph-200")
    assert len(ids) > 200
    w = Watched(browser, 1280, session=daemon)
    try:
        w.page.goto(f"http://127.0.0.1:{daemon.port}/graph")
        w.page.locator("#graph-canvas[data-ready=true]").wait_for(timeout=15_000)
        visible = "id => { const f = document.getElementById('graph-frame').getBoundingClientRect();"
        visible += ' const r = document.querySelector(`#graph-canvas g.node[data-id="${id}"] rect`)'
        visible += ".getBoundingClientRect(); return r.left >= f.left && r.right <= f.right && r.top >= f.top"
        visible += " && r.bottom <= f.bottom; }"
        drawn = w.page.evaluate("[...document.querySelectorAll('#graph-canvas g.node')].map(g => g.dataset.id)")
        assert any(w.page.evaluate(visible, i) for i in drawn)  # the first view shows nodes, not empty space
        w.page.fill("#graph-find", "c-57")
        w.page.click("#graph-find-form button[type=submit]")
        w.page.locator('#graph-canvas g.node.found[data-id="program:c-57"]').wait_for(timeout=5_000)
        assert w.page.evaluate(visible, "program:c-57")  # scrolled into the frame
        w.page.locator("#graph-found", has_text="found program:c-57").wait_for(timeout=5_000)
        w.page.screenshot(path=str(shots_dir(tmp_path) / "graph-200-find-1280.png"))
        w.page.click("button[data-zoom=fit]")
        fits = "() => { const f = document.getElementById('graph-frame'), s = document.getElementById('graph-canvas');"
        fits += " return s.width.baseVal.value <= f.clientWidth && s.height.baseVal.value <= f.clientHeight; }"
        assert w.page.evaluate(fits)  # the whole graph in the frame
        w.page.screenshot(path=str(shots_dir(tmp_path) / "graph-200-fit-1280.png"))
        w.page.click("button[data-zoom='1']")
        assert w.page.evaluate("document.getElementById('graph-canvas').width.baseVal.value") > 1280
        assert w.errors == [], w.errors
    finally:
        w.close()
