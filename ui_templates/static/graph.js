// /graph: the graph of programs, pipelines, steps, folders and tables, laid out left to right by dagre
// (vendored: static/vendor/dagre, @dagrejs/dagre 3.1.3, MIT) and drawn as SVG. The data is the page's JSON
// (#graph-data, the `graph` command's nodes and edges); each node is a link to its page. #graph-data is a
// live region (app.js swaps in a fresh one when the state changes): the graph is drawn again from it. No
// inline script (the CSP allows none): this file and dagre are all the page runs.
// Large graphs: the frame scrolls; "Fit" shows the whole graph, "100%" its natural size, "Auto" (the default)
// shrinks it to the frame's width while text stays readable; "Find" scrolls to a node and marks it. The first
// drawing scrolls to the first node that is not as wanted (late, violated, FATAL...), else to the top left.
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const PAD = 10;

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  // a step by its own name (its pipeline is the box around it); a long folder path by its last two parts
  // (the whole id is the box's tooltip and in the table below)
  function shortName(n) {
    if (n.kind === "step") return n.name.slice(n.name.lastIndexOf("/") + 1);
    if (n.kind === "folder" && n.name.length > 40) return "\u2026/" + n.name.split("/").slice(-2).join("/");
    return n.name;
  }

  // a partitioned pipeline's partitions by their last run, e.g. "partitions 27 succeeded, 3 failed"
  function partitionCounts(n) {
    const p = n.detail && n.detail.partitions;
    if (!p || !p.counts) return "";
    const parts = Object.keys(p.counts).sort().map(function (s) { return p.counts[s] + " " + s.replaceAll("_", " "); });
    return parts.length ? "partitions " + parts.join(", ") : "";
  }

  let zoom = "auto";  // "auto", "fit" or "1"
  let first = true;  // the first drawing chooses where the frame starts
  let layout = null;  // the last drawing's dagre graph, for find and zoom
  // each state's look (bad, busy, good) from the page, made from the state enums (web/icons.py STATE_LOOKS)
  const LOOKS = JSON.parse(document.getElementById("state-looks")?.textContent || "{}");

  // the scale the zoom choice gives in this frame (auto: to the frame's width, not below 3/4)
  function scaleFor(size, frame) {
    const w = frame ? frame.clientWidth - 2 : size.width;
    const h = frame ? frame.clientHeight - 2 : size.height;
    if (zoom === "1") return 1;
    if (zoom === "fit") return Math.min(1, w / size.width, h > 40 ? h / size.height : 1);
    return Math.min(1, Math.max(0.75, w / size.width));
  }

  function sizeTo(svg, size, frame) {
    const scale = scaleFor(size, frame);
    svg.setAttribute("width", Math.ceil(size.width * scale));
    svg.setAttribute("height", Math.ceil(size.height * scale));
    return scale;
  }

  // scroll the frame so that node ``id`` is in the middle of it
  function reveal(id) {
    const frame = document.getElementById("graph-frame");
    const svg = document.getElementById("graph-canvas");
    if (!frame || !layout || !layout.hasNode(id)) return;
    const box = layout.node(id);
    const scale = svg.width.baseVal.value / layout.graph().width;
    frame.scrollLeft = Math.max(0, box.x * scale - frame.clientWidth / 2);
    frame.scrollTop = Math.max(0, box.y * scale - frame.clientHeight / 2);
  }

  // a node's live state as one of four looks: bad (red frame), busy (amber), good (green), idle (dashed, a
  // program stopped, a step not run); "none" for what has no state (tables, folders), unless an objective
  // says otherwise
  function health(n) {
    const objective = n.detail && n.detail.objective;
    if (objective && objective.state !== "ok") return "bad";
    if (n.state && LOOKS[n.state]) return LOOKS[n.state];
    return n.state ? "idle" : "none";  // a table or a folder has no live state of its own: its layer's frame
  }

  function problem(n) {
    const objective = n.detail && n.detail.objective;
    return (objective && objective.state !== "ok") || LOOKS[n.state] === "bad";
  }

  // the whole graph, from #graph-data as it is now
  function draw() {
    const source = document.getElementById("graph-data");
    const svg = document.getElementById("graph-canvas");
    if (!source || !svg || typeof dagre === "undefined") return;
    const data = JSON.parse(source.textContent);
    svg.removeAttribute("data-ready");
    svg.replaceChildren();

    // labels are measured as the browser draws them, so no box is narrower than its text
    const ruler = el("text", { class: "graph-title" }, svg);
    const rulerSub = el("text", { class: "graph-sub" }, svg);
    function measure(t, r) {
      r.textContent = t;
      return r.getComputedTextLength();
    }

    const g = new dagre.graphlib.Graph({ compound: true, multigraph: true });
    g.setGraph({ rankdir: "LR", nodesep: 16, ranksep: 56, edgesep: 10, marginx: 12, marginy: 12 });
    g.setDefaultEdgeLabel(function () { return {}; });
    for (const n of data.nodes) {
      const title = n.kind + " " + shortName(n);
      const sub = [n.state || n.layer || "", partitionCounts(n)].filter(Boolean).join(" · ");
      const width = Math.ceil(Math.max(measure(title, ruler), sub ? measure(sub, rulerSub) : 0)) + 2 * PAD;
      g.setNode(n.id, { width: width, height: sub ? 42 : 28, node: n, title: title, sub: sub });
      const owner = n.kind === "step" ? n.pipeline : n.kind === "pipeline" ? n.name : null;
      if (owner) {
        const cluster = "cluster:" + owner;
        if (!g.hasNode(cluster)) g.setNode(cluster, { label: "pipeline " + owner, cluster: true });
        g.setParent(n.id, cluster);
      }
    }
    for (const e of data.edges) {
      g.setEdge(e.source, e.target, { kind: e.kind }, e.source + "|" + e.target + "|" + e.kind);
    }
    dagre.layout(g);
    ruler.remove();
    rulerSub.remove();

    // sized by the zoom choice; the frame scrolls (the page never does)
    const size = g.graph();
    const frame = document.getElementById("graph-frame");
    svg.setAttribute("viewBox", "0 0 " + Math.ceil(size.width) + " " + Math.ceil(size.height));
    sizeTo(svg, size, frame);
    layout = g;
    const defs = el("defs", {}, svg);
    const marker = el("marker", { id: "graph-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7,
      markerHeight: 7, orient: "auto-start-reverse" }, defs);
    el("path", { d: "M0,0 L10,5 L0,10 z", class: "graph-arrow" }, marker);

    const clusters = el("g", { class: "graph-clusters" }, svg);
    for (const id of g.nodes()) {
      const c = g.node(id);
      if (!c.cluster) continue;
      el("rect", { x: c.x - c.width / 2, y: c.y - c.height / 2, width: c.width, height: c.height, rx: 6,
        class: "graph-cluster" }, clusters);
    }
    const edges = el("g", { class: "graph-edges" }, svg);
    for (const ref of g.edges()) {
      const e = g.edge(ref);
      const d = e.points.map(function (p, i) { return (i ? "L" : "M") + p.x.toFixed(1) + "," + p.y.toFixed(1); });
      const plain = e.kind === "reads" || e.kind === "writes";
      el("path", { d: d.join(" "), class: "graph-edge " + (plain ? "data" : "link") + " kind-" + e.kind,
        "marker-end": "url(#graph-arrow)" }, edges);
    }
    const nodes = el("g", { class: "graph-nodes" }, svg);
    for (const id of g.nodes()) {
      const box = g.node(id);
      if (box.cluster) continue;
      const n = box.node;
      const holder = n.url ? el("a", { href: n.url }, nodes) : nodes;
      const objective = (n.detail && n.detail.objective) || null;  // freshness or uptime: ok, late, violated
      const group = el("g", { class: "node kind-" + n.kind + (n.layer ? " layer-" + n.layer : "") +
        (objective ? " objective-" + objective.state : "") + " health-" + health(n), "data-id": n.id }, holder);
      el("title", {}, group).textContent = n.id + (n.state ? " (" + n.state + ")" : "") +
        (objective ? "; " + objective.kind + " " + objective.state + ": " + objective.detail : "");
      el("rect", { x: box.x - box.width / 2, y: box.y - box.height / 2, width: box.width, height: box.height,
        rx: n.kind === "table" ? 10 : 3 }, group);
      const top = box.y - box.height / 2 + 18;
      const title = el("text", { x: box.x - box.width / 2 + PAD, y: top, class: "graph-title" }, group);
      title.textContent = box.title;
      if (box.sub) {
        const sub = el("text", { x: box.x - box.width / 2 + PAD, y: top + 16, class: "graph-sub" }, group);
        sub.textContent = box.sub;
      }
    }
    // cluster labels last, above the edges that pass by
    for (const id of g.nodes()) {
      const c = g.node(id);
      if (!c.cluster) continue;
      const at = { x: c.x - c.width / 2 + 8, y: c.y - c.height / 2 + 13, class: "graph-cluster-label" };
      const label = el("text", at, clusters);
      label.textContent = c.label;
    }
    svg.setAttribute("data-ready", "true");
    names(data.nodes);
    if (first) {
      first = false;
      const bad = data.nodes.find(problem);
      const real = g.nodes().filter(function (id) { return !g.node(id).cluster; });
      const topLeft = real.sort(function (a, b) { return g.node(a).x - g.node(b).x || g.node(a).y - g.node(b).y; })[0];
      if (bad || topLeft) reveal(bad ? bad.id : topLeft);
    }
  }

  // the find box's choices: every node's id
  function names(nodes) {
    const list = document.getElementById("graph-names");
    if (!list || list.childElementCount === nodes.length) return;
    list.replaceChildren();
    for (const n of nodes) {
      const option = document.createElement("option");
      option.value = n.id;
      list.appendChild(option);
    }
  }

  function find(text) {
    const svg = document.getElementById("graph-canvas");
    const wanted = text.trim().toLowerCase();
    if (!svg || !layout || !wanted) return;
    const ids = layout.nodes().filter(function (id) { return !layout.node(id).cluster; });
    const id = ids.find(function (i) { return i.toLowerCase() === wanted; }) ||
      ids.find(function (i) { return i.toLowerCase().includes(wanted); });
    const said = document.getElementById("graph-found");
    svg.querySelectorAll("g.node.found").forEach(function (n) { n.classList.remove("found"); });
    if (!id) { if (said) said.textContent = "no node matches " + text; return; }
    const node = svg.querySelector('g.node[data-id="' + CSS.escape(id) + '"]');
    if (node) node.classList.add("found");
    reveal(id);
    if (node) node.scrollIntoView({ block: "center", inline: "center" });  // the frame and the page, to the node
    if (said) said.textContent = "found " + id;
  }

  document.addEventListener("click", function (ev) {
    const button = ev.target.closest("button[data-zoom]");
    if (!button || !layout) return;
    zoom = button.dataset.zoom;
    document.querySelectorAll("button[data-zoom]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b === button));
    });
    sizeTo(document.getElementById("graph-canvas"), layout.graph(), document.getElementById("graph-frame"));
  });
  const form = document.getElementById("graph-find-form");
  if (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      find(document.getElementById("graph-find").value);
    });
  }

  draw();
  document.addEventListener("foss:refreshed", draw);
})();
