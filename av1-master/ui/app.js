// The dashboard: statistics, workers and the file queue, kept live by the master's
// event stream (/api/v1/events, read with fetch so the token travels in a header).
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { token: localStorage.getItem("av1-token") || "", page: 1, perPage: 50, total: 0 };

function headers() {
  return state.token ? { Authorization: "Bearer " + state.token } : {};
}

async function api(path, options = {}) {
  const r = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  if (r.status === 401) {
    showLogin();
    throw new Error("the master asks for its token");
  }
  const text = await r.text();
  const body = text ? JSON.parse(text) : null;
  if (!r.ok) throw new Error((body && body.error) || r.statusText);
  return body;
}

function message(text, bad = false) {
  const m = document.createElement("div");
  m.className = "msg" + (bad ? " bad" : "");
  m.textContent = text;
  $("#messages").prepend(m);
  setTimeout(() => m.remove(), 8000);
}

const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
function bytes(n) {
  if (n == null) return "–";
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}
// A number a worker reported, or null: whatever else it sent must not break the page.
function num(x) {
  const n = typeof x === "number" ? x : Number.NaN;
  return Number.isFinite(n) ? n : null;
}
function duration(s) {
  if (s == null) return "–";
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${m} min` : m ? `${m} min` : `${Math.round(s)} s`;
}
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    // Styles through the CSSOM: the page's Content-Security-Policy refuses style attributes.
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v;
    else if (k === "style") e.style.cssText = v; else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

function renderStats(s) {
  const cards = [
    ["Files", s.total], ["Pending", s.pending], ["Running", s.running], ["Done", s.done],
    ["Skipped", s.skipped], ["Failed", s.failed],
    ["Saved", `${bytes(s.bytes_saved)} (${s.percent_saved.toFixed(1)}%)`],
    ["Library now", bytes(s.library_bytes)], ["Projected size", bytes(s.projected_library_bytes)],
    ["ETA", s.eta_seconds == null ? "–" : duration(s.eta_seconds)],
  ];
  $("#stats").replaceChildren(...cards.map(([label, value]) =>
    el("div", { class: "card", "data-stat": label.toLowerCase() }, el("div", { class: "label", text: label }), el("div", { class: "value", text: String(value) }))));
}

function renderWorkers(list) {
  if (!list.length) return;
  $("#workers").replaceChildren(...list.map((w) => {
    const p = w.progress || {};
    const pct = Math.min(100, Math.max(0, num(p.percent) || 0));
    const cpu = num(p.cpu_percent);
    const busy = w.status !== "idle" && w.status !== "offline";
    const fade = el("button", { type: "button", text: w.fade_out ? "Resume" : "Fade out" });
    fade.onclick = () => act(`/api/v1/workers/${w.id}/fade-out`, { fade_out: !w.fade_out }, `${w.name}: ${w.fade_out ? "taking jobs again" : "finishes its job, then takes no new one"}`);
    return el("div", { class: "card worker", "data-worker": w.name },
      el("h3", {}, el("span", { text: w.name }), el("span", { class: "badge " + w.status, text: w.status })),
      el("div", { class: "meta", text: `${w.host} · ${num(w.cores) || "?"} cores · ${w.encoder || ""}` }),
      busy ? el("div", { class: "file", text: w.file_name || `file ${w.file_id}` }) : null,
      busy ? el("div", { class: "bar" }, el("div", { style: `width:${pct.toFixed(1)}%` })) : null,
      busy ? el("div", { class: "meta", text: `${pct.toFixed(1)}% · ${(num(p.fps) || 0).toFixed(1)} fps · ETA ${duration(num(p.eta_seconds))} · CPU ${cpu == null ? "–" : cpu.toFixed(0) + "%"} · ${bytes(num(p.memory_bytes))}` }) : null,
      el("div", { class: "meta", text: `${w.jobs_done} done · ${w.jobs_failed} failed` }),
      fade);
  }));
}

const actions = {
  pending: ["top", "skip", "cancel", "delete"],
  running: ["cancel"],
  done: ["reencode", "delete"],
  skipped: ["retry", "reencode", "delete"],
  failed: ["retry", "skip", "delete"],
  cancelled: ["retry", "delete"],
};
const destructive = { delete: "Forget this file? The next scan finds it again as new.", reencode: "Encode this file again?", skip: "Skip this file?", cancel: "Stop this file's encode?" };
const labels = { top: "Next", skip: "Skip", cancel: "Cancel", delete: "Delete", reencode: "Re-encode", retry: "Retry" };

function renderFiles(page) {
  state.total = page.total;
  $("#files tbody").replaceChildren(...page.files.map((f) => {
    const name = f.path.split("/").pop();
    const s = f.summary || {};
    const saved = f.status === "done" && f.original_size ? f.original_size - f.output_size : null;
    const buttons = (actions[f.status] || []).map((a) => {
      const b = el("button", { type: "button", text: labels[a], "data-action": a });
      b.onclick = () => control(f, a);
      return b;
    });
    return el("tr", { "data-file": name, "data-status": f.status },
      el("td", { class: "name", title: f.path }, name, f.detail && f.status !== "done" ? el("div", { class: "err", text: f.detail }) : null),
      el("td", { text: s.width ? `${s.width}×${s.height} ${s.video_codec || ""}` : s.video_codec || "–" }),
      el("td", { text: s.hdr || "–" }),
      el("td", { text: s.audio || "–" }),
      el("td", { class: "num", text: bytes(f.original_size || f.size) }),
      el("td", { class: "num", text: f.output_size ? bytes(f.output_size) : "–" }),
      el("td", { class: "num", text: saved == null ? "–" : `${(100 * saved / f.original_size).toFixed(1)}%` }),
      el("td", {}, el("span", { class: "badge " + f.status, text: f.status + (f.reason ? ` (${f.reason.replace(/_/g, " ")})` : "") })),
      el("td", { text: f.worker || "–" }),
      el("td", { class: "num", text: String(f.attempts) }),
      el("td", {}, el("div", { class: "actions" }, ...buttons)));
  }));
  const pages = Math.max(1, Math.ceil(page.total / state.perPage));
  $("#page-info").textContent = `page ${state.page} of ${pages} · ${page.total} files`;
  $("#prev").disabled = state.page <= 1;
  $("#next").disabled = state.page >= pages;
}

async function loadFiles() {
  const q = new URLSearchParams({
    status: $("#f-status").value, q: $("#f-q").value, sort: $("#f-sort").value,
    order: $("#f-desc").checked ? "desc" : "asc", page: state.page, per_page: state.perPage,
  });
  renderFiles(await api("/api/v1/files?" + q));
}

function confirmFirst(text) {
  const d = $("#confirm");
  $("#confirm-text").textContent = text;
  d.showModal();
  return new Promise((resolve) => { d.onclose = () => resolve(d.returnValue === "yes"); });
}

async function act(path, body, done) {
  try {
    await api(path, { method: "POST", body: JSON.stringify(body || {}), headers: { "Content-Type": "application/json" } });
    message(done);
  } catch (e) {
    message(e.message, true);
  }
  refresh();
}

async function control(f, a) {
  const name = f.path.split("/").pop();
  if (destructive[a] && !(await confirmFirst(`${destructive[a]}\n${name}`))) return;
  const path = a === "cancel" ? `/api/v1/files/${f.id}/cancel` : `/api/v1/files/${f.id}/${a}`;
  await act(path, {}, `${name}: ${labels[a].toLowerCase()} done`);
}

let refreshing = false;
async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    const [stats, workers] = await Promise.all([api("/api/v1/stats"), api("/api/v1/workers")]);
    renderStats(stats);
    renderWorkers(workers.workers);
    await loadFiles();
  } catch (e) {
    /* shown by the connection badge or the login form */
  } finally {
    refreshing = false;
  }
}

// Live updates: the event stream sends a small "changed" event whenever the queue or a
// worker changes (and every few seconds); the page then reloads what it shows.
async function live() {
  for (;;) {
    try {
      const r = await fetch("/api/v1/events", { headers: headers() });
      if (r.status === 401) { showLogin(); return; }
      if (!r.ok || !r.body) throw new Error(r.statusText);
      setConn(true);
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let i;
        while ((i = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, i);
          buffer = buffer.slice(i + 2);
          const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5)).join("\n");
          if (data) {
            const update = JSON.parse(data);
            renderStats(update.stats);
            renderWorkers(update.workers);
            if (update.files_changed) loadFiles().catch(() => {});
          }
        }
      }
    } catch (e) {
      /* reconnect below */
    }
    setConn(false);
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function setConn(on) {
  const c = $("#conn");
  c.className = "conn " + (on ? "on" : "off");
  c.textContent = on ? "live" : "disconnected — reconnecting";
}

function showLogin() {
  $("#app").hidden = true;
  $("#login").hidden = false;
}

$("#login-form").onsubmit = (e) => {
  e.preventDefault();
  state.token = $("#token").value;
  localStorage.setItem("av1-token", state.token);
  start();
};
$("#scan").onclick = () => act("/api/v1/scan", {}, "scan started");
$("#filters").oninput = () => { state.page = 1; loadFiles().catch((e) => message(e.message, true)); };
$("#prev").onclick = () => { state.page--; loadFiles(); };
$("#next").onclick = () => { state.page++; loadFiles(); };

async function start() {
  try {
    await api("/api/v1/stats");
  } catch (e) {
    return;
  }
  $("#login").hidden = true;
  $("#app").hidden = false;
  refresh();
  live();
}
start();
