"use strict";
// The config editor: load the file (token needed), check it (a dry run), save it (checked again, then reload).
(function configEditor() {
  const box = document.getElementById("config-text");
  if (!box) return;
  const out = document.getElementById("config-out");
  const show = (reply) => {
    out.classList.toggle("bad", !reply.ok);
    out.textContent = reply.ok ? JSON.stringify(reply.result, null, 2) : reply.error.message;
  };
  foss.command("config_file").then((reply) => {
    if (reply.ok) box.value = reply.result.text; else { box.value = ""; show(reply); }
  });
  document.getElementById("config-check").addEventListener("click", async () => {
    show(await foss.command("config_write", {text: box.value, dry_run: true}));
  });
  document.getElementById("config-save").addEventListener("click", async () => {
    out.textContent = "saving…";
    show(await foss.command("config_write", {text: box.value, dry_run: false}));
  });
})();
