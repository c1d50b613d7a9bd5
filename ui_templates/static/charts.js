"use strict";
// Small time-series charts (uPlot, vendored) from JSON blocks of the page (#series, or the id in
// data-source); redrawn after each live refresh. Each chart is an image with a text alternative: its
// last value and range.
(function charts() {
  const cache = new Map();

  function draw() {
    if (typeof uPlot === "undefined") return;
    const blocks = {};
    document.querySelectorAll("[data-chart]").forEach((el) => {
      const id = el.dataset.source || "series";
      const block = document.getElementById(id);
      if (!block) return;
      const data = blocks[id] ||= JSON.parse(block.textContent);
      const key = el.dataset.chart;
      const program = el.dataset.program;
      const ys = program ? (data.programs[program] || {})[key] || [] : data[key] || [];
      const ts = program ? data.pt.slice(-ys.length) : data.t;
      const values = ys.filter((v) => v !== null);
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
      if (!ts.length) return;
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

  document.addEventListener("foss:refreshed", draw);
  window.addEventListener("resize", draw);
  draw();
})();
