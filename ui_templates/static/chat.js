"use strict";
document.getElementById("console-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const out = document.getElementById("console-out");
  let args;
  try { args = JSON.parse(document.getElementById("console-args").value || "{}"); }
  catch (e) { out.textContent = "Arguments are not valid JSON: " + e.message; return; }
  const reply = await foss.command(document.getElementById("console-cmd").value, args);
  out.textContent = JSON.stringify(reply, null, 2);
});
