"use strict";
// The SQL box: results as text in a table that scrolls in its own box; numbers formatted and right-aligned.
const form = document.getElementById("query-form");
const sqlBox = document.getElementById("sql");
const NUMERIC = /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|FLOAT|DOUBLE|DECIMAL)/;
const fmt = new Intl.NumberFormat(undefined, {maximumFractionDigits: 6});
// a DECIMAL, or an integer beyond 2**53, arrives as its exact text: group its digits without parsing it
const group = new Intl.NumberFormat(undefined, {useGrouping: true});
function exactNumber(text) {
  const m = /^(-?)(\d+)(\.\d+)?$/.exec(text);
  if (!m) return text;
  const point = fmt.formatToParts(0.5).find((p) => p.type === "decimal")?.value ?? ".";
  return m[1] + group.format(BigInt(m[2])) + (m[3] ? point + m[3].slice(1) : "");
}

// the last 20 queries that ran, kept in this browser only
const HISTORY_KEY = "foss-sql-history";
const historyBox = document.getElementById("sql-history");
function loadHistory() {
  try { return JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]"); } catch (e) { return []; }
}
function showHistory() {
  historyBox.replaceChildren(historyBox.options[0]);
  for (const q of loadHistory()) {
    const option = document.createElement("option");
    option.value = q; option.textContent = q.length > 90 ? q.slice(0, 90) + "…" : q;
    historyBox.append(option);
  }
}
function remember(sql) {
  const kept = [sql, ...loadHistory().filter((q) => q !== sql)].slice(0, 20);
  localStorage.setItem(HISTORY_KEY, JSON.stringify(kept));
  showHistory();
}
historyBox.addEventListener("change", () => {
  if (historyBox.value) { sqlBox.value = historyBox.value; exportLinks(); runQuery(); }
});
showHistory();

async function runQuery() {
  if (!sqlBox.value.trim()) return;
  const meta = document.getElementById("query-meta"), error = document.getElementById("query-error");
  const table = document.getElementById("results");
  meta.textContent = "running…"; error.textContent = "";
  const reply = await foss.command("query", {sql: sqlBox.value, max_rows: 1000, timeout_s: 10});
  table.replaceChildren();
  if (!reply.ok) { meta.textContent = ""; error.textContent = reply.error.message; return; }
  const r = reply.result;
  remember(sqlBox.value.trim());
  const numeric = r.types.map((t) => NUMERIC.test(String(t).toUpperCase()));
  const head = table.createTHead().insertRow();
  r.columns.forEach((c, i) => {
    const th = document.createElement("th");
    th.scope = "col"; th.textContent = c; th.title = r.types[i];
    if (numeric[i]) th.className = "num";
    head.append(th);
  });
  const body = table.createTBody();
  r.rows.forEach((row) => {
    const tr = body.insertRow();
    row.forEach((v, i) => {
      const td = tr.insertCell();
      if (v === null) { td.textContent = "NULL"; td.className = "null"; return; }
      if (numeric[i]) { td.className = "num"; td.textContent = typeof v === "number" ? fmt.format(v) : exactNumber(String(v)); return; }
      td.textContent = typeof v === "object" ? JSON.stringify(v) : String(v);
    });
  });
  const cut = r.truncated ? ` (the first ${r.row_count.toLocaleString()}: ${r.truncated_reason || "more rows exist"}; the export links below write the whole result)` : "";
  meta.textContent = `${r.row_count.toLocaleString()} rows${cut} in ${(r.elapsed_s * 1000).toFixed(0)} ms`;
}
// an export is a link with the query in it: the server takes request lines up to 64 KiB
const MAX_LINK = 60000;
function exportLinks() {
  for (const fmt of ["csv", "jsonl", "parquet"]) {
    const link = document.getElementById(`export-${fmt}`);
    const href = `/data-browser/export?format=${fmt}&sql=${encodeURIComponent(sqlBox.value)}`;
    const tooLong = href.length > MAX_LINK;
    if (tooLong) link.removeAttribute("href"); else link.href = href;
    link.title = tooLong ? "this query is too long to export from a link: shorten it, or export a whole table" : "";
    link.setAttribute("aria-disabled", String(tooLong));
  }
}
sqlBox.addEventListener("input", exportLinks);
exportLinks();
form.addEventListener("submit", (ev) => { ev.preventDefault(); runQuery(); });
sqlBox.addEventListener("keydown", (ev) => { if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); runQuery(); } });
document.querySelectorAll("[data-table]").forEach((a) => a.addEventListener("click", (ev) => {
  ev.preventDefault();
  sqlBox.value = `SELECT * FROM ${a.dataset.table} LIMIT 100`;
  exportLinks();
  history.replaceState(null, "", `?table=${encodeURIComponent(a.dataset.table)}`);
  runQuery();
}));
runQuery();
