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

  // the daemon's log is JSON lines: shown as "time level event key=value ..."; other lines as they are, their
  // level read the way common formats write it: logfmt "level=warn", an upper-case word near the start
  // ("WARNING:", "2026-... ERROR ...", PostgreSQL's "FATAL:"), or nginx's "[error]". A line without one
  // (a traceback's continuation) takes the level of the line before it.
  const WORDS = {trace: 0, debug: 0, info: 1, notice: 1, log: 1, warn: 2, warning: 2, err: 3, error: 3,
    crit: 4, critical: 4, fatal: 4, panic: 4, alert: 4, emerg: 4, emergency: 4};
  const LOGFMT = /\b(?:level|lvl|severity)=["']?([a-z]+)/i;
  const UPPER = /(?:^|[\s\[(|:])(TRACE|DEBUG|INFO|NOTICE|LOG|WARN|WARNING|ERR|ERROR|CRIT|CRITICAL|FATAL|PANIC|ALERT|EMERG)(?=$|[\s\]):|,])/;
  const BRACKETED = /\[(debug|info|notice|warn|warning|error|crit|alert|emerg)\]/;
  function plainRank(line) {
    const head = line.slice(0, 120);
    const m = LOGFMT.exec(head) || UPPER.exec(head) || BRACKETED.exec(head);
    return m ? WORDS[m[1].toLowerCase()] : undefined;
  }
  function readable(line, previous) {
    if (!line.startsWith("{")) return {text: line, rank: plainRank(line) ?? previous};
    try {
      const r = JSON.parse(line);
      const {timestamp = "", level: lvl = r.severity || "info", event = "", logger, ...rest} = r;
      const extras = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`);
      const word = String(lvl).toLowerCase();
      return {text: `${timestamp} ${word.toUpperCase()} ${event} ${extras.join(" ")}`.trim(), rank: WORDS[word] ?? RANK[word] ?? 1};
    } catch (e) { return {text: line, rank: plainRank(line) ?? previous}; }
  }
  function readAll() {
    let previous = 1;
    return lines.map((line) => { const r = readable(line, previous); previous = r.rank; return r; });
  }

  function render() {
    const needle = filter.value.toLowerCase();
    const least = RANK[level.value] ?? 0;
    const shown = readAll().filter((l) => l.rank >= least && (!needle || l.text.toLowerCase().includes(needle)))
      .map((l) => l.text);
    // one text node per line, in its own block, so a line can be found and scrolled to
    pre.replaceChildren(...shown.map((text) => {
      const span = document.createElement("span");
      span.className = "line";
      span.textContent = text + "\n";
      return span;
    }));
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

  // jump to the first line stamped at or after a time of day (UTC), as program and daemon logs stamp them
  const STAMP = /\d{4}-\d\d-\d\dT(\d\d:\d\d:\d\d)/;
  document.getElementById("log-jump").addEventListener("change", (ev) => {
    const wanted = ev.target.value.trim().padStart(5, "0").padEnd(8, ":00");
    const hit = [...pre.children].find((el) => {
      const m = STAMP.exec(el.textContent);
      return m && m[1] >= wanted;
    });
    pre.querySelectorAll(".hit").forEach((el) => el.classList.remove("hit"));
    if (!hit) { meta.textContent = `no line at or after ${wanted}`; return; }
    follow.checked = false;
    hit.classList.add("hit");
    hit.scrollIntoView({block: "center"});
  });
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
