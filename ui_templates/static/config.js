"use strict";
// The config editor: load the file (token needed), check it (a dry run), save it (checked again, then reload).
// A save that would empty the file or stop every running program, and every restore, asks first (in the page,
// never a browser dialog); earlier versions are listed with their diff against the current file.
(function configEditor() {
  const box = document.getElementById("config-text");
  if (!box) return;
  const $ = (id) => document.getElementById(id);
  const out = $("config-out");
  const warn = $("config-warn");
  const generations = $("config-generations");
  const diffBox = $("config-diff");

  const show = (reply) => {
    out.classList.toggle("bad", !reply.ok);
    out.textContent = reply.ok ? JSON.stringify(reply.result, null, 2) : reply.error.message;
    const lines = [];
    const waiting = (reply.ok && reply.result.plan && reply.result.plan.needs_daemon_restart) || [];
    if (waiting.length) {
      lines.push(`Changed ${waiting.join(", ")}: the daemon keeps the running values until it restarts ` +
                 "(foss-supervisor restart).");
    }
    if (reply.ok && reply.result.dry_run && reply.result.needs_confirmation) {
      lines.push(`Saving needs a confirmation: ${reply.result.needs_confirmation}.`);
    }
    warn.textContent = lines.join(" ");
    warn.hidden = lines.length === 0;
    showImpact(reply.ok && reply.result.plan ? reply.result.plan.impact : null);
  };

  // the Check list's pipelines part: per pipeline, the steps whose SQL changed and what they would rebuild
  const impactList = $("config-impact");
  const showImpact = (impact) => {
    const items = [];
    for (const [name, found] of Object.entries((impact && impact.pipelines) || {})) {
      const steps = [...found.changed_steps, ...(found.setup_changed ? ["setup"] : [])];
      let text = `Pipeline ${name}: SQL changed in ${steps.length ? steps.join(", ") : "no step"}`;
      if (found.removed_steps.length) text += `; steps removed: ${found.removed_steps.join(", ")}`;
      text += found.downstream_tables.length ? `; it would rebuild ${found.downstream_tables.join(", ")}.` : ".";
      items.push(text);
    }
    for (const gap of (impact && impact.contracts) || []) {
      items.push(`Contract tables.${gap.table}.contract.${gap.column} (${gap.declared}): ${gap.problem}.`);
    }
    if (impact && impact.error) items.push(`${impact.error}.`);
    impactList.replaceChildren(...items.map((text) => {
      const li = document.createElement("li");
      li.textContent = text;
      return li;
    }));
    impactList.hidden = items.length === 0;
  };

  // one pending confirmation at a time: its question, and what "yes" runs
  let pending = null;
  const ask = (question, action) => {
    $("config-confirm-text").textContent = question;
    $("config-confirm").hidden = false;
    pending = action;
    $("config-confirm-yes").focus();
  };
  const settle = () => { $("config-confirm").hidden = true; pending = null; };
  $("config-confirm-yes").addEventListener("click", async () => {
    const action = pending;
    settle();
    if (action) await action();
  });
  $("config-confirm-no").addEventListener("click", () => {
    settle();
    out.classList.remove("bad");
    out.textContent = "cancelled: nothing changed";
  });

  const loadFile = async () => {
    const reply = await foss.command("config_file");
    if (reply.ok) box.value = reply.result.text; else { box.value = ""; show(reply); }
  };

  const cell = (text, cls) => {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  };
  const loadHistory = async () => {
    const reply = await foss.command("config_history");
    generations.replaceChildren();
    if (!reply.ok) { generations.append(row([cell(reply.error.message)])); return; }
    if (!reply.result.generations.length) generations.append(row([cell("none kept yet: each save keeps one")]));
    for (const g of reply.result.generations) {
      const actions = document.createElement("td");
      for (const [label, kind] of [["Diff", "diff"], ["Restore", "restore"]]) {
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = label;
        button.dataset.generation = g.generation;
        button.dataset.kind = kind;
        button.setAttribute("aria-label", `${label} generation ${g.generation}`);
        actions.append(button, " ");
      }
      generations.append(row([cell(String(g.generation)), cell(new Date(g.saved_at * 1000).toLocaleString()),
                              cell(String(g.bytes), "num"), cell(`+${g.lines_added} −${g.lines_removed} lines`),
                              actions]));
    }
  };
  function row(cells) {
    const tr = document.createElement("tr");
    tr.append(...cells);
    return tr;
  }
  const reloadAll = () => Promise.all([loadFile(), loadHistory()]);

  // a save or a restore: dry run first; when it needs a confirmation (or always, for a restore) ask, then do it
  const saveLike = async (name, args, question) => {
    settle();
    out.textContent = "checking…";
    const preview = await foss.command(name, {...args, dry_run: true});
    show(preview);
    if (!preview.ok) return;
    const needs = preview.result.needs_confirmation;
    const run = async () => {
      out.textContent = "saving…";
      const reply = await foss.command(name, {...args, dry_run: false, allow_empty: Boolean(needs)});
      show(reply);
      if (reply.ok) await reloadAll();
    };
    if (needs || question) {
      const plan = preview.result.plan;
      const effect = `It would add ${plan.added.length}, restart ${plan.changed.length} and remove ` +
                     `${plan.removed.length} program(s).`;
      ask([question, needs ? `Careful: ${needs}.` : "", effect, "Do it?"].filter(Boolean).join(" "), run);
    } else {
      await run();
    }
  };

  $("config-check").addEventListener("click", async () => {
    settle();
    show(await foss.command("config_write", {text: box.value, dry_run: true}));
  });
  $("config-save").addEventListener("click", () => saveLike("config_write", {text: box.value}, ""));
  generations.addEventListener("click", async (ev) => {
    const button = ev.target.closest("button[data-generation]");
    if (!button) return;
    const generation = Number(button.dataset.generation);
    if (button.dataset.kind === "diff") {
      const reply = await foss.command("config_diff", {generation});
      diffBox.hidden = false;
      diffBox.classList.toggle("bad", !reply.ok);
      diffBox.textContent = reply.ok ? (reply.result.diff || "(the same as the current file)") : reply.error.message;
      return;
    }
    await saveLike("config_restore", {generation},
                   `Restore generation ${generation}? It replaces the file (kept as a new generation) and reloads.`);
  });

  reloadAll();
})();
