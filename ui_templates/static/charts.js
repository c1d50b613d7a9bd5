"use strict";
// Small time-series charts (uPlot, vendored) from JSON blocks of the page (#series, or the id in
// data-source); redrawn after each live refresh. Each chart is an image with a text alternative: its
// last value and range. On the overview, the range switch (#chart-range) draws the #series charts over
// 24 h or 7 d from /api/v1/charts (the daemon's journal) instead of the last hour sampled by the dashboard.
(function charts() {
  const cache = new Map();
  const REFETCH_MS = 60000;  // a chosen range is fetched again after a live refresh at most this often
  const chosen = {range: "1h", data: null, at: 0};

  function draw() {
    if (typeof uPlot === "undefined") return;
    const blocks = {};
    if (chosen.data) blocks.series = chosen.data;
    document.querySelectorAll("[data-chart]").forEach((el) => {
      const id = el.dataset.source || "series";
      const block = document.getElementById(id);
      if (!block && !blocks[id]) return;
      const data = blocks[id] ||= JSON.parse(block.textContent);
      const key = el.dataset.chart;
      const program = el.dataset.program || el.dataset.step;  // a program's series, or a pipeline step's
      const groups = (el.dataset.step ? data.steps : data.programs) || {};
      const ys = program ? (groups[program] || {})[key] || [] : data[key] || [];
      const ts = program ? data.pt.slice(-ys.length) : data.t;
      const values = ys.filter((v) => v !== null);
      el.dataset.points = String(values.length);
      if (values.length) {
        const unit = el.dataset.unit ? ` ${el.dataset.unit}` : "";
        el.setAttribute("aria-label", `${el.getAttribute("aria-label").split(":")[0]}: now ${values.at(-1)}${unit},` +
          ` between ${Math.min(...values)} and ${Math.max(...values)}${unit}`);
      }
      const width = Math.max(60, Math.floor(el.getBoundingClientRect().width) || 120);
      const height = program ? 22 : (el.classList.contains("tall") ? 60 : 36);
      const color = getComputedStyle(el).color;
      const old = cache.get(el);
      if (old) old.destroy();
      el.replaceChildren();
      if (values.length < 2) return;  // one point is no line: the box stays empty until there are two
      const plot = new uPlot({
        width, height, pxAlign: false, legend: {show: false}, cursor: {show: false},
        select: {show: false}, axes: [{show: false}, {show: false}],
        scales: {x: {time: true}, y: {range: (u, lo, hi) => [Math.min(0, lo), Math.max(hi, lo + 1)]}},
        series: [{}, {stroke: color, width: 1.5, points: {show: ts.length < 30}, fill: color.replace("rgb(", "rgba(").replace(")", ", 0.12)"), spanGaps: false}],
      }, [ts, ys], el);
      cache.set(el, plot);
    });
    for (const el of cache.keys()) if (!el.isConnected) cache.delete(el);
  }

  async function choose(range) {
    const group = document.getElementById("chart-range");
    if (!group) return;
    const note = document.getElementById("chart-range-note");
    group.querySelectorAll("[data-range]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.range === range)));
    chosen.range = range;
    if (range === "1h") { chosen.data = null; note.textContent = ""; draw(); group.dataset.shown = range; return; }
    try {
      const resp = await fetch(`/api/v1/charts?range=${encodeURIComponent(range)}`, {credentials: "same-origin", headers: {Accept: "application/json"}});
      if (!resp.ok) throw new Error(`${resp.status}`);
      const data = await resp.json();
      if (chosen.range !== range) return;  // another range was chosen meanwhile
      chosen.data = data;
      chosen.at = Date.now();
      note.textContent = data.complete ? "from the journal" : "from the journal (still reading: more on the next look)";
    } catch (e) {
      note.textContent = `could not read the journal (${e.message})`;
    }
    draw();
    group.dataset.shown = range;  // drawn: what tests and assistive tools may read now
  }

  document.getElementById("chart-range")?.addEventListener("click", (ev) => {
    const button = ev.target.closest("[data-range]");
    if (button) choose(button.dataset.range);
  });
  document.addEventListener("foss:refreshed", () => {
    if (chosen.data && Date.now() - chosen.at > REFETCH_MS) choose(chosen.range); else draw();
  });
  window.addEventListener("resize", draw);
  draw();
})();
