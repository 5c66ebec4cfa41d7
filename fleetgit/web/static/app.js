// The fleetgit dashboard: one read of /api/v1/board, then live from the event stream.
// Plain DOM, no build step; every text from the ledger goes in through textContent.
"use strict";

const API = "/api/v1";
const SVG = "http://www.w3.org/2000/svg";
let token = localStorage.getItem("fleetgit-token") || "";
let lastPos = 0;
let source = null;
let refreshTimer = null;
let expiries = [];  // [cell, expires at (local ms), lost]
const seenReservations = new Set();
let firstLoad = true;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key === "title") node.title = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function problem(text) {
  const box = document.getElementById("problem");
  box.hidden = !text;
  box.textContent = text || "";
}

async function api(path) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const res = await fetch(API + path, { headers });
  const body = await res.json();
  if (res.status === 401) {
    document.getElementById("login").hidden = false;
    throw new Error(body.error.message + " (" + body.error.hint + ")");
  }
  if (!res.ok) throw new Error(body.error ? body.error.message : res.statusText);
  return body;
}

function ago(iso) {
  if (!iso) return "-";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return s + "s ago";
  if (s < 3600) return Math.floor(s / 60) + "m ago";
  if (s < 86400) return Math.floor(s / 3600) + "h ago";
  return Math.floor(s / 86400) + "d ago";
}

function left(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s === 0) return "expired";
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h ? `${h}h${String(m).padStart(2, "0")}m` : m ? `${m}m${String(r).padStart(2, "0")}s` : `${r}s`;
}

function renderPilots(pilots) {
  const body = document.getElementById("pilots");
  body.replaceChildren(...pilots.map((p) => {
    const state = p.deregistered ? "gone" : p.active ? "alive" : "";
    const title = p.deregistered ? "deregistered" : p.active ? "active" : "silent";
    return el("tr", { "data-callsign": p.callsign },
      el("td", {}, el("span", { class: "dot " + state, title })),
      el("td", {}, p.callsign),
      el("td", {}, p.status || "-"),
      el("td", { title: p.current_task || p.task || "" }, p.current_task || p.task || ""),
      el("td", { title: p.last_seen || "" }, ago(p.last_seen)));
  }));
}

function renderReservations(rows) {
  const body = document.getElementById("reservations");
  expiries = [];
  if (!rows.length) {
    body.replaceChildren(el("tr", {}, el("td", { class: "muted", colspan: "5" }, "none")));
    return;
  }
  body.replaceChildren(...rows.map((r) => {
    const lost = r.lost_to;
    const cell = el("td", {}, lost ? `lost to ${lost.holder} (${lost.pattern})` : "");
    if (!lost) expiries.push([cell, Date.now() + r.seconds_left * 1000]);
    const fresh = !firstLoad && !seenReservations.has(r.id);
    seenReservations.add(r.id);
    return el("tr", { class: (lost ? "lost " : "") + (fresh ? "fresh" : ""), "data-id": r.id },
      el("td", {}, r.holder), el("td", { title: r.pattern }, r.pattern), el("td", {}, r.mode),
      cell, el("td", { title: r.reason || "" }, r.reason || ""));
  }));
  tick();
}

function tick() {
  for (const [cell, at] of expiries) cell.textContent = left(at - Date.now());
}

function renderBoard(missions, sorties, statuses) {
  const board = document.getElementById("board");
  const groups = new Map(missions.map((m) => [m.mission_id, { mission: m, sorties: [] }]));
  const loose = { mission: null, sorties: [] };
  for (const s of sorties) (groups.get(s.mission_id) || loose).sorties.push(s);
  const all = [...groups.values()];
  if (loose.sorties.length) all.push(loose);
  if (!all.length) {
    board.replaceChildren(el("p", { class: "muted" }, "no missions or sorties yet"));
    return;
  }
  board.replaceChildren(...all.map(({ mission, sorties: list }) => {
    const head = mission
      ? el("h3", {}, mission.title, " ",
          el("span", { class: "muted" }, `${mission.mission_id} · ${mission.status} · ${mission.priority}`),
          el("span", { class: "progress", title: mission.progress + "%" },
            el("span", { style: `width:${mission.progress}%` })),
          el("span", { class: "muted" }, `${mission.progress}% of ${mission.sorties}`))
      : el("h3", {}, "Sorties without a mission");
    const columns = el("div", { class: "columns" }, ...statuses.map((status) =>
      el("div", { class: "column" }, el("h4", {}, status.replace("_", " ")),
        ...list.filter((s) => s.status === status).map((s) =>
          el("div", { class: "card", title: s.sortie_id },
            el("div", {}, s.title),
            el("div", { class: "who" }, (s.assignee || "unassigned") + (s.percent ? ` · ${s.percent}%` : "")))))));
    return el("div", { class: "mission" }, head, columns);
  }));
}

function renderThreads(messages) {
  const threads = new Map();
  for (const m of [...messages].reverse()) {  // oldest first
    const t = threads.get(m.thread_id) || { subject: m.subject, count: 0, unacked: 0, last: m, people: new Set() };
    t.count += 1;
    t.last = m;
    t.people.add(m.sender);
    for (const r of m.recipients) {
      t.people.add(r.callsign);
      if (m.ack_required && !r.acked) t.unacked += 1;
    }
    threads.set(m.thread_id, t);
  }
  const list = [...threads.entries()].sort((a, b) => b[1].last.sent_at.localeCompare(a[1].last.sent_at));
  const node = document.getElementById("threads");
  if (!list.length) {
    node.replaceChildren(el("li", { class: "muted" }, "no messages"));
    return;
  }
  node.replaceChildren(...list.map(([id, t]) =>
    el("li", { "data-thread": id, class: t.unacked ? "unacked" : "", title: id },
      t.unacked ? `⚑ ${t.unacked} unacknowledged · ` : "",
      t.subject, " ",
      el("span", { class: "muted" }, `${t.count} msg · ${[...t.people].join(", ")} · ${ago(t.last.sent_at)}`))));
}

function describe(e) {
  const d = e.data || {};
  const what = d.pattern || (d.patterns && d.patterns.join(" ")) || d.title || d.subject || d.status || "";
  return `${e.actor || "-"} ${e.type} ${e.stream}` + (what ? ` · ${what}` : "");
}

function timelineItem(e) {
  return el("li", { "data-pos": e.pos, title: e.ts }, el("span", { class: "muted" }, `#${e.pos} ${e.ts.slice(11, 19)} `), describe(e));
}

function renderTimeline(events) {
  document.getElementById("timeline").replaceChildren(...events.map(timelineItem));
}

function bars(id, rows, label, value, opts) {
  const node = document.getElementById(id);
  const max = Math.max(1, ...rows.map(value));
  const width = 480, height = 140, base = 122;
  const children = [];
  if (!rows.length) children.push(svg("text", { x: 8, y: 20 }, "nothing yet"));
  if (opts && opts.vertical) {
    const w = width / Math.max(1, rows.length);
    rows.forEach((row, i) => {
      const h = Math.round((value(row) / max) * (base - 12));
      children.push(svg("rect", { class: "bar", x: i * w + 1, y: base - h, width: Math.max(1, w - 2), height: h },
      ));
      children[children.length - 1].append(svg("title", {}, `${label(row)}: ${value(row)}`));
      if (i % 4 === 0) children.push(svg("text", { x: i * w, y: height - 4 }, label(row)));
    });
    children.push(svg("text", { x: width - 4, y: 10, "text-anchor": "end" }, `max ${max}`));
  } else {
    const shown = rows.slice(0, 7);
    const h = 18;
    shown.forEach((row, i) => {
      const w = Math.round((value(row) / max) * (width - 190));
      children.push(svg("text", { x: 0, y: i * h + 12 }, label(row)));
      children.push(svg("rect", { class: "bar" + (opts && opts.warn ? " warn" : ""), x: 130, y: i * h + 3, width: Math.max(1, w), height: 11 }));
      children.push(svg("text", { x: 136 + w, y: i * h + 12 }, opts && opts.fmt ? opts.fmt(value(row)) : value(row)));
    });
  }
  node.replaceChildren(...children);
}

function renderCharts(charts) {
  bars("chart-hours", charts.events_per_hour, (r) => r.hour.slice(11, 13) + "h", (r) => r.events, { vertical: true });
  bars("chart-completed", charts.completed_per_pilot, (r) => r.pilot, (r) => r.sorties);
  bars("chart-blocked", charts.blocked_seconds, (r) => r.sortie_id, (r) => r.seconds, { warn: true, fmt: (s) => (s < 1 ? "<1s" : left(s * 1000)) });
}

async function refresh() {
  refreshTimer = null;
  try {
    const board = await api(firstLoad ? "/board" : "/board?events=0");  // then the stream
    renderPilots(board.pilots);
    renderReservations(board.reservations);
    renderBoard(board.missions, board.sorties, board.sortie_statuses);
    renderThreads(board.messages);
    renderCharts(board.charts);
    if (firstLoad) {
      renderTimeline(board.events);
      lastPos = board.last_pos;
      firstLoad = false;
      listen();
    }
    document.getElementById("pos").textContent = `position ${lastPos}`;
    document.body.dataset.loaded = "1";
    problem("");
  } catch (err) {
    problem(String(err.message || err));
  }
}

function later() {
  if (refreshTimer === null) refreshTimer = setTimeout(refresh, 150);
}

function listen() {
  if (source) source.close();
  const query = new URLSearchParams({ after: String(lastPos) });
  if (token) query.set("access_token", token);
  source = new EventSource(`${API}/events/stream?${query}`);
  const badge = document.getElementById("live");
  source.onopen = () => { badge.textContent = "live"; badge.className = "badge on"; };
  source.onerror = () => { badge.textContent = "reconnecting"; badge.className = "badge off"; };
  source.onmessage = (msg) => {
    const event = JSON.parse(msg.data);
    lastPos = Math.max(lastPos, event.pos);
    const list = document.getElementById("timeline");
    list.prepend(timelineItem(event));
    while (list.children.length > 200) list.lastChild.remove();
    document.getElementById("pos").textContent = `position ${lastPos}`;
    later();
  };
}

async function start() {
  try {
    const me = await api("/me");
    document.getElementById("who").textContent = me.pilot ? `as ${me.pilot}` : me.scope === "anonymous" ? "loopback viewer" : "viewer";
  } catch (err) {
    problem(String(err.message || err));
    return;
  }
  await refresh();
}

document.getElementById("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = document.getElementById("token").value.trim();
  localStorage.setItem("fleetgit-token", token);
  document.getElementById("login").hidden = true;
  start();
});
setInterval(tick, 1000);
setInterval(() => { if (!firstLoad) later(); }, 30000);  // liveness and ages move without events
start();
