// The web view's page: one EventSource on /api/stream (reopened when a filter changes) draws the
// pushed summary; the server bounds how much is drawn, so a redraw stays cheap at any cluster size.
"use strict";

const $ = (id) => document.getElementById(id);
const EVENTS_KEPT = 100;
let source = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(n >= 10 || i === 0 ? 0 : 1)} ${units[i]}`;
}

function age(created) {
  if (!created) return "";
  const s = Math.max(0, Math.floor(Date.now() / 1000 - created));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

function bar(label, reserved, total, fmt) {
  const pct = total > 0 ? Math.min(100, (100 * reserved) / total) : 0;
  const fill = el("div");
  fill.style.width = `${pct}%`;
  return el("div", {}, el("div", { class: "meta" }, `${label} ${fmt(reserved)} / ${fmt(total)}`),
            el("div", { class: "bar" }, fill));
}

function card(c) {
  const node = el("div", { class: `card ${c.state}`, "data-id": c.id, "data-name": c.name, "data-state": c.state },
                  el("b", {}, c.name), el("small", {}, c.image),
                  el("small", {}, `${c.state} · ${age(c.created)}`),
                  c.ports.length ? el("small", {}, c.ports.join(", ")) : null);
  node.addEventListener("click", () => showDetail(c.id));
  return node;
}

function column(n) {
  const labels = el("div", { class: "labels" });
  for (const [k, v] of Object.entries(n.labels)) labels.append(el("span", {}, v === "" ? k : `${k}=${v}`));
  const col = el("div", { class: `node ${n.status}`, "data-name": n.name, "data-status": n.status },
    el("h2", {}, n.name),
    el("div", { class: "meta" }, n.addr),
    el("div", {}, el("span", { class: "status" }, n.status), el("span", { class: `avail ${n.availability}` }, n.availability)),
    labels,
    bar("CPUs", n.cpus.reserved, n.cpus.total, (x) => `${+x.toFixed(2)}`),
    bar("Memory", n.memory.reserved, n.memory.total, bytes),
    el("div", { class: "meta count" }, n.matching === n.containers
      ? `${n.containers} container${n.containers === 1 ? "" : "s"}` : `${n.matching} of ${n.containers} containers`));
  for (const c of n.cards) col.append(card(c));
  if (n.more) col.append(el("div", { class: "more" }, `+${n.more} more`));
  return col;
}

function draw(s) {
  const t = s.totals;
  $("totals").textContent = `${t.healthy}/${t.nodes} nodes healthy · ${t.running}/${t.containers} containers running`;
  $("policy").textContent = `strategy ${s.strategy} · filters ${s.filters.join(", ")}`;
  const board = $("board");
  const cols = s.nodes.map(column);
  if (s.more_nodes) cols.push(el("div", { class: "more" }, `+${s.more_nodes} more nodes: narrow the filter`));
  if (!cols.length) cols.push(el("div", { class: "more" }, "no node matches the filter"));
  board.replaceChildren(...cols);
}

function addEvent(e) {
  const when = new Date((e.time || Date.now() / 1000) * 1000).toLocaleTimeString();
  const list = $("events");
  list.prepend(el("li", {}, `${when} ${e.node} ${e.type} ${e.action} ${e.name}`));
  while (list.children.length > EVENTS_KEPT) list.lastChild.remove();
}

function connect() {
  if (source) source.close();
  const params = new URLSearchParams();
  for (const f of ["node", "label", "name"]) {
    const v = $(`f-${f}`).value.trim();
    if (v) params.set(f, v);
  }
  source = new EventSource(`/api/stream?${params}`);
  source.addEventListener("summary", (m) => draw(JSON.parse(m.data)));
  source.addEventListener("event", (m) => addEvent(JSON.parse(m.data)));
  source.onopen = () => { $("live").textContent = "live"; $("live").className = "live on"; };
  source.onerror = () => { $("live").textContent = "reconnecting"; $("live").className = "live off"; };
}

async function showDetail(id) {
  const resp = await fetch(`/api/containers/${encodeURIComponent(id)}`);
  const doc = await resp.json();
  const dialog = $("detail");
  if (!resp.ok) {
    $("detail-title").textContent = doc.message || `error ${resp.status}`;
    $("detail-facts").replaceChildren();
    $("detail-logs").textContent = "";
  } else {
    const i = doc.inspect;
    $("detail-title").textContent = `${i.node}/${i.name}`;
    const facts = [["ID", i.id.slice(0, 12)], ["Image", i.image], ["Command", i.command], ["State", i.state],
                   ["Exit code", i.exit_code], ["Created", i.created], ["Started", i.started],
                   ["Restart policy", i.restart_policy || "no"], ["Networks", i.networks.join(", ")],
                   ["Labels", Object.entries(i.labels).map(([k, v]) => `${k}=${v}`).join(", ")]];
    $("detail-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
    $("detail-logs").textContent = doc.logs_error || doc.logs.join("\n") || "(no output)";
  }
  if (!dialog.open) dialog.showModal();
}

$("detail-close").addEventListener("click", () => $("detail").close());
let typing = null;
$("filters").addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(connect, 250); });
$("filters").addEventListener("submit", (e) => e.preventDefault());
connect();
