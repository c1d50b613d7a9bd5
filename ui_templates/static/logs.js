"use strict";
// The live log viewer: follows the file through the log_read command; lines are text nodes, never HTML.
(function logViewer() {
  const tools = document.getElementById("log-tools");
  const pre = document.getElementById("log");
  const filter = document.getElementById("log-filter");
  const level = document.getElementById("log-level");
  const RANK = {debug: 0, info: 1, warning: 2, error: 3, critical: 4};
  const follow = document.getElementById("log-follow");
  const pauseButton = document.getElementById("log-pause");
  const meta = document.getElementById("log-meta");
  const source = tools.dataset.source;
  const MAX_LINES = 5000;
  let offset = Number(tools.dataset.offset);
  let paused = false;
  let lines = pre.textContent.split("\n");
  if (lines.at(-1) === "") lines.pop();

  // the daemon's log is JSON lines: shown as "time level event key=value ..."; other lines as they are
  function readable(line) {
    if (!line.startsWith("{")) return {text: line, rank: 1};
    try {
      const r = JSON.parse(line);
      const {timestamp = "", level: lvl = "info", event = "", logger, ...rest} = r;
      const extras = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`);
      return {text: `${timestamp} ${lvl.toUpperCase()} ${event} ${extras.join(" ")}`.trim(), rank: RANK[lvl] ?? 1};
    } catch (e) { return {text: line, rank: 1}; }
  }

  function render() {
    const needle = filter.value.toLowerCase();
    const least = RANK[level.value] ?? 0;
    const shown = lines.map(readable).filter((l) => l.rank >= least && (!needle || l.text.toLowerCase().includes(needle)))
      .map((l) => l.text);
    pre.textContent = shown.length ? shown.join("\n") + "\n" : "";
    meta.textContent = `${shown.length.toLocaleString()} of ${lines.length.toLocaleString()} lines${paused ? " · paused" : ""}`;
    if (follow.checked) pre.scrollTop = pre.scrollHeight;
  }

  async function poll() {
    if (!paused) {
      const reply = await foss.command("log_read", {source, offset, max_bytes: 262144});
      if (reply.ok) {
        const r = reply.result;
        if (r.rotated) lines = [];
        offset = r.next_offset;
        if (r.lines.length) {
          lines = lines.concat(r.lines);
          if (lines.length > MAX_LINES) lines = lines.slice(-MAX_LINES);
          render();
        }
        if (r.next_offset < r.size) { setTimeout(poll, 0); return; }
      } else {
        meta.textContent = reply.error.message;
      }
    }
    setTimeout(poll, 1000);
  }

  filter.addEventListener("input", render);
  level.addEventListener("change", render);
  follow.addEventListener("change", render);
  pauseButton.addEventListener("click", () => {
    paused = !paused;
    pauseButton.textContent = paused ? "Resume" : "Pause";
    pauseButton.setAttribute("aria-pressed", String(paused));
    render();
  });
  render();
  setTimeout(poll, 500);
})();
