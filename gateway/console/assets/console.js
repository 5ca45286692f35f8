// Skiff console: plain JavaScript over the node's HTTP API. Every value
// from the server reaches the page through textContent, never as markup.
"use strict";

// API paths resolve against the node the console came from (it lives at
// /console/), without any credentials typed into the address bar: fetch
// refuses URLs that carry them, and the browser's auth cache has them.
const apiBase = (() => { const u = new URL("../", location.href); u.username = ""; u.password = ""; u.hash = ""; u.search = ""; return u.href; })();
const api = (path) => apiBase + path;
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const refreshMs = Math.max(100, parseInt(params.get("refresh") || "1000", 10) || 1000);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function showError(id, msg) {
  const e = $(id);
  e.textContent = msg || "";
  e.hidden = !msg;
}

async function getJSON(path) {
  const r = await fetch(api(path), { cache: "no-store" });
  const text = await r.text();
  if (!r.ok) throw new Error(r.status + " " + r.statusText + (text ? ": " + text : ""));
  return JSON.parse(text);
}

async function postJSON(path, body, contentType) {
  const r = await fetch(api(path), { method: "POST", headers: { "Content-Type": contentType || "application/json" }, body: body });
  const text = await r.text();
  let doc = null;
  try { doc = JSON.parse(text); } catch (e) { doc = null; }
  return { status: r.status, text: text, doc: doc };
}

// ---- tabs ----
let current = "";
function show(tab) {
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === tab);
  for (const s of document.querySelectorAll("main .page")) s.hidden = s.id !== tab;
  current = tab;
  if (tab === "schema") loadSchema();
  if (location.hash !== "#" + tab) history.replaceState(null, "", "#" + tab);
}
for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => show(b.dataset.tab));

// ---- query ----
function cell(v) {
  if (v === null || v === undefined) return el("td", "NULL", "null");
  return el("td", typeof v === "object" ? JSON.stringify(v) : v);
}

function renderResult(res, associative) {
  const box = el("div", null, "result");
  let cols = res.columns;
  let rows = res.values;
  if (associative && res.rows) {
    cols = res.types ? Object.keys(res.types) : (res.rows[0] ? Object.keys(res.rows[0]) : []);
    rows = res.rows.map((r) => cols.map((c) => r[c]));
  }
  if (cols) {
    const t = el("table", null, "grid");
    const hr = t.createTHead().insertRow();
    for (const c of cols) hr.appendChild(el("th", c));
    const tb = t.createTBody();
    for (const row of rows || []) {
      const tr = tb.insertRow();
      for (const v of row) tr.appendChild(cell(v));
    }
    box.appendChild(t);
    box.appendChild(el("p", (rows || []).length + " row(s)", "info"));
    return box;
  }
  const parts = ["executed"];
  if (res.rows_affected !== undefined) parts.push(res.rows_affected + " row(s) affected");
  if (res.last_insert_id !== undefined) parts.push("last insert id " + res.last_insert_id);
  if (res.time !== undefined) parts.push((res.time * 1000).toFixed(2) + " ms");
  box.appendChild(el("p", parts.join(", "), "write-info"));
  return box;
}

async function runQuery() {
  const sql = $("sql").value.trim();
  showError("query-error", "");
  $("results").replaceChildren();
  $("query-info").textContent = "";
  if (!sql) return;
  const q = new URLSearchParams();
  q.set("timings", "");
  const assoc = $("associative").checked;
  if (assoc) q.set("associative", "");
  if ($("level").value) q.set("level", $("level").value);
  const began = performance.now();
  try {
    const r = await postJSON("db/request?" + q.toString().replace(/=(&|$)/g, "$1"), JSON.stringify([sql]));
    const took = performance.now() - began;
    if (!r.doc) { showError("query-error", r.status + ": " + r.text); return; }
    if (r.doc.error) { showError("query-error", r.doc.error); return; }
    const errors = [];
    for (const res of r.doc.results || []) {
      if (res.error) errors.push(res.error);
      else $("results").appendChild(renderResult(res, assoc));
    }
    showError("query-error", errors.join("\n"));
    $("query-info").textContent = "HTTP " + r.status + " in " + took.toFixed(1) + " ms";
  } catch (e) {
    showError("query-error", String(e));
  }
}
$("run").addEventListener("click", runQuery);
$("sql").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) runQuery(); });

// ---- schema ----
const schemaSQL = "SELECT m.name, m.type, p.name, p.type, p.pk, p.\"notnull\" FROM sqlite_master AS m " +
  "JOIN pragma_table_info(m.name) AS p WHERE m.type IN ('table','view') AND m.name NOT LIKE 'sqlite_%' " +
  "ORDER BY m.name, p.cid";

function quoteIdent(s) { return "\"" + String(s).replace(/"/g, "\"\"") + "\""; }

async function loadSchema() {
  showError("schema-error", "");
  const list = $("schema-list");
  try {
    const r = await postJSON("db/request", JSON.stringify([schemaSQL]));
    const res = r.doc && r.doc.results && r.doc.results[0];
    if (!res || res.error || r.doc.error) throw new Error((res && res.error) || (r.doc && r.doc.error) || r.text);
    const tables = new Map();
    for (const [tname, ttype, col, ctype, pk, notnull] of res.values || []) {
      if (!tables.has(tname)) tables.set(tname, { type: ttype, cols: [] });
      tables.get(tname).cols.push([col, ctype, pk ? "primary key" : "", notnull ? "not null" : ""]);
    }
    list.replaceChildren();
    if (tables.size === 0) list.appendChild(el("p", "No tables.", "info"));
    for (const [name, t] of tables) {
      const div = el("div", null, "schema-table");
      div.dataset.table = name;
      const h = el("h3", name + (t.type === "view" ? " (view)" : ""));
      h.title = "Query this table";
      h.addEventListener("click", () => {
        $("sql").value = "SELECT * FROM " + quoteIdent(name) + " LIMIT 100";
        show("query");
        $("sql").focus();
      });
      div.appendChild(h);
      const tbl = el("table");
      const hr = tbl.createTHead().insertRow();
      for (const c of ["column", "type", "key", "null"]) hr.appendChild(el("th", c));
      const tb = tbl.createTBody();
      for (const c of t.cols) {
        const tr = tb.insertRow();
        for (const v of c) tr.appendChild(el("td", v));
      }
      div.appendChild(tbl);
      list.appendChild(div);
    }
  } catch (e) {
    showError("schema-error", String(e.message || e));
  }
}
$("schema-refresh").addEventListener("click", loadSchema);

// ---- restore ----
// A SQLite database starts with this 16-byte header; anything else is
// sent as SQL text (API.md 1.10).
const sqliteMagic = "SQLite format 3\u0000";

async function restore() {
  showError("restore-error", "");
  $("restore-result").textContent = "";
  const f = $("restore-file").files[0];
  if (!f) { showError("restore-error", "Choose a file first."); return; }
  const head = new Uint8Array(await f.slice(0, 16).arrayBuffer());
  const isSQLite = String.fromCharCode(...head) === sqliteMagic;
  $("restore-result").textContent = "Loading " + f.name + " (" + f.size + " bytes, " + (isSQLite ? "SQLite file" : "SQL text") + ")...";
  try {
    const r = await postJSON("db/load", f, isSQLite ? "application/octet-stream" : "text/plain");
    if (r.status !== 200 || (r.doc && r.doc.error)) {
      showError("restore-error", "HTTP " + r.status + ": " + ((r.doc && r.doc.error) || r.text));
    }
    $("restore-result").textContent = "HTTP " + r.status + (r.text ? "\n" + r.text : "");
  } catch (e) {
    showError("restore-error", String(e));
  }
}
$("restore-run").addEventListener("click", restore);

// ---- cluster and CDC ----
function bytes(n) {
  if (!n) return "0 B";
  const u = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + " " + u[i];
}

// progressOf says what a node is doing and how far it is, from its
// /status (the lifecycle section): [label, value, max] (value null:
// unknown).
function progressOf(st) {
  const lc = st.lifecycle;
  const sq = (st.store && st.store.sqlite3) || {};
  const p = lc.progress || {};
  const eta = p.eta_s ? ", about " + p.eta_s + " s left" : "";
  switch (p.step) {
  case "replaying_log":
    // The target (the leader's commit index) is unknown until a leader
    // is heard from; until then the bar cannot say how far.
    if (!p.target_index) return ["replaying log: entry " + p.applied_index, null, 1];
    return ["replaying log: entry " + p.applied_index + " of " + p.target_index + eta, p.applied_index, p.target_index];
  case "receiving_snapshot":
    if (p.leader_sent_total_bytes) return ["receiving snapshot: " + bytes(p.leader_sent_bytes) + " of " + bytes(p.leader_sent_total_bytes) + eta, p.leader_sent_bytes, p.leader_sent_total_bytes];
    return ["receiving snapshot: " + bytes(p.received_bytes), null, 1];
  case "installing_snapshot":
    return ["installing snapshot: " + bytes(p.snapshot_bytes) + " of " + bytes(p.snapshot_total_bytes) + eta, p.snapshot_bytes, p.snapshot_total_bytes];
  case "awaiting_promotion":
    return ["caught up, awaiting promotion to voter", 1, 1];
  }
  switch (lc.state) {
  case "ready": return ["applied index " + p.applied_index + (sq.db_size ? ", database " + bytes(sq.db_size) : ""), 1, 1];
  case "opening": return ["opening database (" + bytes(p.db_bytes) + ")", null, 1];
  case "recovering":
    if (!p.target_index) return ["recovering: applied index " + p.applied_index, null, 1];
    return ["recovering: applied index " + p.applied_index + " of " + p.target_index, p.applied_index, p.target_index];
  }
  return [lc.state + (lc.last_error ? ": " + lc.last_error : ""), null, 1];
}

let selfID = "";

// nodeStatus fetches another node's /status through this node (a browser
// may not read another origin's answer).
function nodeStatus(n) {
  return getJSON("console/peer/status?id=" + encodeURIComponent(n.id) + "&addr=" + encodeURIComponent(n.addr || ""));
}

function yesNo(b) { return b ? "yes" : "no"; }

function nodeRow(n, st, err) {
  const tr = el("tr");
  tr.dataset.node = n.id;
  tr.appendChild(el("td", n.id, "id"));
  tr.appendChild(el("td", n.api_addr || "", "api"));
  tr.appendChild(el("td", n.leader ? "leader" : (n.voter ? "follower" : "read-only"), "role"));
  tr.appendChild(el("td", yesNo(n.voter), "voter"));
  tr.appendChild(el("td", yesNo(n.reachable), "reachable"));
  const lc = st && st.lifecycle;
  const phase = lc ? lc.state : (n.reachable && n.state ? n.state : "unreachable");
  const ph = el("td", phase, "phase phase-" + phase.replace(/[^a-z]/g, ""));
  tr.dataset.phase = phase;
  tr.appendChild(ph);
  const td = el("td", null, "progress");
  if (lc) {
    const [label, value, max] = progressOf(st);
    const bar = el("progress");
    bar.max = max;
    if (value !== null) bar.value = Math.min(value, max);
    if (lc.progress && lc.progress.step) tr.dataset.step = lc.progress.step;
    td.appendChild(bar);
    td.appendChild(el("span", label, "progress-text"));
  } else {
    td.appendChild(el("span", err || n.error || "", "progress-text"));
  }
  tr.appendChild(td);
  return tr;
}

function renderCDC(section) {
  const tab = document.querySelector('#tabs button[data-tab="cdc"]');
  tab.hidden = !section;
  if (!section) return;
  const tb = $("cdc-status").tBodies[0];
  tb.replaceChildren();
  for (const k of Object.keys(section).sort()) {
    const tr = tb.insertRow();
    tr.dataset.key = k;
    tr.appendChild(el("th", k));
    const v = section[k];
    tr.appendChild(el("td", v !== null && typeof v === "object" ? JSON.stringify(v) : v));
  }
}

let busy = false;
async function refresh() {
  if (busy) return; // a slow round must not pile up requests
  busy = true;
  try {
    const self = await getJSON("status");
    selfID = (self.store && self.store.node_id) || "";
    $("self").textContent = "node " + selfID + " · " + (self.lifecycle ? self.lifecycle.state : "");
    renderCDC(self.cdc);
    if (current !== "cluster") return;
    const doc = await getJSON("nodes?nonvoters&ver=2");
    const nodes = doc.nodes || [];
    const rows = await Promise.all(nodes.map(async (n) => {
      if (n.id === selfID) return nodeRow(n, self, "");
      try { return nodeRow(n, await nodeStatus(n), ""); } catch (e) { return nodeRow(n, null, String(e.message || e)); }
    }));
    $("nodes").tBodies[0].replaceChildren(...rows);
    $("cluster-time").textContent = "Last update " + new Date().toLocaleTimeString() + ".";
    showError("cluster-error", "");
  } catch (e) {
    if (current === "cluster") showError("cluster-error", String(e.message || e));
  } finally {
    busy = false;
  }
}

$("refresh-ms").textContent = refreshMs;
show(["query", "schema", "backup", "restore", "cluster", "cdc"].includes(location.hash.slice(1)) ? location.hash.slice(1) : "query");
refresh();
setInterval(refresh, refreshMs);
