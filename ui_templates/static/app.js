// Live pages over one server-sent event stream, and one helper to run commands. No framework, no build step.
//
// Regions marked data-live (with an id) are fetched afresh from the same URL and swapped in when the state
// changes, so every figure is rendered by the one template that renders the page. The stream resumes with
// Last-Event-ID by itself (EventSource does that); after a daemon restart the server sends "resync".
"use strict";

const foss = {
  csrf: document.querySelector('meta[name="csrf-token"]')?.content || "",
  icons: JSON.parse(document.getElementById("state-icons")?.textContent || "{}"),
  handlers: {},
  on(type, fn) { (this.handlers[type] ||= []).push(fn); },

  async command(name, args = {}) {
    const headers = {"Content-Type": "application/json"};
    if (this.csrf) headers["X-CSRF-Token"] = this.csrf;
    const resp = await fetch(`/api/commands/${encodeURIComponent(name)}`, {
      method: "POST", headers, credentials: "same-origin", body: JSON.stringify(args),
    });
    try { return await resp.json(); } catch (e) { return {ok: false, error: {message: `HTTP ${resp.status}`}}; }
  },

  // the same badge as the state_badge macro: an icon and a word, never colour alone
  badge(state) {
    const span = document.createElement("span");
    span.className = `badge s-${String(state).toLowerCase()}`;
    const icon = document.createElement("span");
    icon.setAttribute("aria-hidden", "true");
    icon.textContent = this.icons[state] || "•";
    span.append(icon, ` ${String(state).replaceAll("_", " ")}`);
    return span;
  },

  say(text, bad = false) {
    const box = document.getElementById("action-message");
    if (!box) return;
    box.textContent = text;
    box.classList.toggle("bad", bad);
  },

  // local decorations, run on load and after every refresh
  decorate(root = document) {
    root.querySelectorAll("[data-ts]").forEach((el) => {
      const ts = Number(el.dataset.ts);
      if (ts) el.textContent = new Date(ts * 1000).toLocaleString();
    });
    root.querySelectorAll("[data-time]").forEach((el) => {
      el.textContent = new Date(Number(el.dataset.time) * 1000).toLocaleTimeString();
    });
    root.querySelectorAll(".bar[data-left]").forEach((bar) => {
      bar.style.marginLeft = `${bar.dataset.left}%`;
      bar.style.width = `${bar.dataset.width}%`;
    });
  },

  refreshing: null,
  pending: false,
  async refresh() {
    if (!document.querySelector("[data-live]")) return;
    if (this.refreshing) { this.pending = true; return; }
    this.refreshing = (async () => {
      try {
        const resp = await fetch(location.href, {headers: {Accept: "text/html"}, credentials: "same-origin"});
        if (!resp.ok && resp.status !== 503) return;
        const fresh = new DOMParser().parseFromString(await resp.text(), "text/html");
        document.querySelectorAll("[data-live][id]").forEach((old) => {
          const next = fresh.getElementById(old.id);
          if (next) { const node = document.importNode(next, true); old.replaceWith(node); this.decorate(node); }
        });
        document.dispatchEvent(new CustomEvent("foss:refreshed"));
      } catch (e) { /* the stream's error handler shows the connection state */ }
    })();
    await this.refreshing;
    this.refreshing = null;
    if (this.pending) { this.pending = false; this.refresh(); }
  },
  timer: null,
  soon(delay = 150) { clearTimeout(this.timer); this.timer = setTimeout(() => this.refresh(), delay); },
};

// program and pipeline controls anywhere on a page: <button data-command="restart" data-names="web">
document.addEventListener("click", async (ev) => {
  const button = ev.target.closest("button[data-command]");
  if (!button) return;
  const name = button.dataset.command;
  const args = button.dataset.args ? JSON.parse(button.dataset.args) : {names: [button.dataset.names]};
  if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
  button.disabled = true;
  foss.say(`${button.textContent.trim()}…`);
  const reply = await foss.command(name, args);
  button.disabled = false;
  if (reply.ok && button.hasAttribute("data-follow-run") && reply.result?.run_id) {
    // a new run started (a retry): follow it live on its own page
    foss.say(`started run ${reply.result.run_id}`);
    location.assign(`/runs/${encodeURIComponent(reply.result.run_id)}`);
    return;
  }
  if (reply.ok) {  // a reply may say in words what happened ("no run was in progress"), else: done
    const detail = typeof reply.result?.detail === "string" ? reply.result.detail : "done";
    foss.say(`${button.getAttribute("aria-label") || button.textContent.trim()}: ${detail}`);
  } else {
    const login = reply.error.message.includes("token") ? " Log in first (top right)." : "";
    foss.say(`${button.getAttribute("aria-label") || button.textContent.trim()}: ${reply.error.message}.${login}`, true);
  }
  foss.soon(0);
});

// command forms: <form data-command="pipeline_backfill" data-args='{"name": "sales"}'> sends data-args plus
// each named field (a checkbox as true/false, a number input as a number, other inputs as text)
document.addEventListener("submit", async (ev) => {
  const form = ev.target.closest("form[data-command]");
  if (!form) return;
  ev.preventDefault();
  const args = form.dataset.args ? JSON.parse(form.dataset.args) : {};
  for (const el of form.querySelectorAll("input[name]")) {
    args[el.name] = el.type === "checkbox" ? el.checked : el.type === "number" ? Number(el.value) : el.value;
  }
  const label = form.getAttribute("aria-label") || form.dataset.command;
  const button = form.querySelector("button[type=submit]");
  if (button) button.disabled = true;
  foss.say(`${label}…`);
  const reply = await foss.command(form.dataset.command, args);
  if (button) button.disabled = false;
  if (reply.ok) {
    const chosen = reply.result?.partitions;
    const what = Array.isArray(chosen) ? `${chosen.length} partition(s)${chosen.length ? ": " + chosen.join(", ") : ""}` : "done";
    foss.say(`${label}: ${reply.result?.dry_run ? "would run " : "started, "}${what}`);
  } else {
    const login = reply.error.message.includes("token") ? " Log in first (top right)." : "";
    foss.say(`${label}: ${reply.error.message}.${login}`, true);
  }
  foss.soon(0);
});

(function liveUpdates() {
  const live = document.getElementById("live");
  const setLive = (text, ok) => {
    if (!live) return;
    live.querySelector(".word").textContent = text;
    live.classList.toggle("ok", ok);
  };
  let broken = false;
  // the first connection names the newest event the page was rendered with: the server sends what came
  // after it, so nothing between render and connect is missed; reconnects send Last-Event-ID themselves
  const since = document.querySelector('meta[name="events-since"]')?.content;
  if (!since) { setLive("not live", false); return; }  // the visitor may not read the stream (not logged in)
  const source = new EventSource("/api/events" + (since ? `?since=${encodeURIComponent(since)}` : ""));
  source.onopen = () => {
    setLive("live", true);
    if (broken) foss.soon(0);  // reconnected: fetch what changed meanwhile
    broken = false;
  };
  source.onerror = () => { setLive("reconnecting", false); broken = true; };
  const events = document.getElementById("events");
  const show = (type, data) => {
    if (!events) return;
    const li = document.createElement("li");
    const when = new Date(data.at * 1000).toLocaleTimeString();
    li.textContent = `${when} ${data.line || type}`;  // the words the server wrote (web/icons.py event_line)
    events.prepend(li);
    while (events.children.length > 50) events.lastChild.remove();
  };
  // the events to list and refresh on, as the server's registry says (never typed here)
  for (const type of JSON.parse(document.getElementById("event-types")?.textContent || "[]")) {
    source.addEventListener(type, (ev) => {
      const data = JSON.parse(ev.data);
      show(type, data);
      (foss.handlers[type] || []).forEach((fn) => fn(data));
      foss.soon();
    });
  }
  source.addEventListener("resync", () => foss.soon(0));
  source.addEventListener("tick", () => { if (document.body.dataset.tick) foss.soon(0); });
})();

// the Programs table's state filter: kept across live refreshes (the table is re-rendered, the choice stays)
(function stateFilter() {
  let chosen = "";
  const apply = () => {
    const select = document.getElementById("state-filter");
    if (!select) return;
    select.value = chosen;
    document.querySelectorAll("#programs tr[data-program]").forEach((tr) => {
      const show = !chosen || (chosen === "unwanted" ? tr.dataset.asWanted === "no" : tr.dataset.state === chosen);
      tr.hidden = !show;
    });
  };
  document.addEventListener("change", (ev) => {
    if (ev.target.id !== "state-filter") return;
    chosen = ev.target.value;
    apply();
  });
  document.addEventListener("foss:refreshed", apply);
})();

foss.decorate();
