// Live updates over server-sent events, and one helper to run commands. No framework, no build step.
const foss = {
  async command(name, args = {}) {
    const resp = await fetch(`/api/commands/${encodeURIComponent(name)}`, {
      method: "POST",
      headers: {"Content-Type": "application/json", "X-Foss-Request": "1"},
      credentials: "same-origin",
      body: JSON.stringify(args),
    });
    return resp.json();
  },
  icons: JSON.parse(document.getElementById("state-icons")?.textContent || "{}"),
  // the same badge as the state_badge macro: an icon and a word, never colour alone
  badge(state) {
    const span = document.createElement("span");
    span.className = `badge s-${String(state).toLowerCase()}`;
    const icon = document.createElement("span");
    icon.setAttribute("aria-hidden", "true");
    icon.textContent = this.icons[state] || "•";
    span.append(icon, ` ${state}`);
    return span;
  },
  handlers: {},
  on(type, fn) { (this.handlers[type] ||= []).push(fn); },
};

(function liveUpdates() {
  const live = document.getElementById("live");
  const setLive = (text, ok) => {
    if (!live) return;
    live.querySelector("span").textContent = text;
    live.classList.toggle("ok", ok);
  };
  const source = new EventSource("/api/events");
  source.onopen = () => setLive("live", true);
  source.onerror = () => setLive("reconnecting", false);
  const events = document.getElementById("events");
  const show = (type, data) => {
    if (!events) return;
    const li = document.createElement("li");
    const when = new Date(data.at * 1000).toLocaleTimeString();
    const who = data.name || data.pipeline || "daemon";
    const what = data.new || data.state || data.status || type;
    li.textContent = `${when} ${who}: ${what}${data.reason ? " (" + data.reason + ")" : ""}`;
    events.prepend(li);
    while (events.children.length > 50) events.lastChild.remove();
  };
  for (const type of ["StateChanged", "HealthChanged", "ConfigReloaded", "DaemonStateChanged",
                      "RunStarted", "StepStateChanged", "RunFinished"]) {
    source.addEventListener(type, (ev) => {
      const data = JSON.parse(ev.data);
      show(type, data);
      (foss.handlers[type] || []).forEach((fn) => fn(data));
    });
  }
  foss.on("StateChanged", (data) => {
    const row = document.querySelector(`tr[data-program="${CSS.escape(data.name)}"]`);
    if (!row) return;
    row.querySelector(".state").replaceChildren(foss.badge(data.new));
    row.querySelector(".why").textContent = data.reason;
  });
})();
