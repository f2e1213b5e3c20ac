// orgctl dashboard: a hash-routed page that polls the read-only JSON API every two seconds.
// Every text from the org (names, messages, model output) is written with textContent, never as HTML:
// the Content-Security-Policy forbids inline script as a second line of defence.
"use strict";

const POLL_MS = 2000;
let lastBody = "";
let lastRoute = "";
const openDetails = new Set(); // <details> kept open across re-renders, by key
const filters = { type: "", text: "" };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "href") node.setAttribute("href", safeHref(value));
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function safeHref(value) {
  const text = String(value);
  return text.startsWith("#/") || text.startsWith("/api/") ? text : "#/org";
}

function ago(iso) {
  if (!iso) return "never";
  const seconds = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (Number.isNaN(seconds)) return String(iso);
  if (seconds < 60) return `${Math.max(seconds, 0)}s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)}m ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)}h ago`;
  return `${Math.round(seconds / 86400)}d ago`;
}

function badge(kind, word) {
  return el("span", { class: `badge ${kind}-${word}`, "data-badge": kind }, word || "unknown");
}

function table(headers, rows, rowClass) {
  if (!rows.length) return el("p", { class: "muted" }, "None.");
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.map((r, i) => el("tr", { class: rowClass ? rowClass(i) : null },
      r.map((cell) => el("td", {}, cell))))));
}

function details(key, summary, ...body) {
  const node = el("details", { "data-key": key, open: openDetails.has(key) }, el("summary", {}, summary), ...body);
  node.addEventListener("toggle", () => (node.open ? openDetails.add(key) : openDetails.delete(key)));
  return node;
}

function flags(task) {
  return [task.overdue ? el("span", { class: "flag" }, "overdue") : null,
          task.stale ? el("span", { class: "flag" }, "stale") : null];
}

function number(n) {
  return Number(n || 0).toLocaleString("en-US");
}

function spendLine(spend) {
  const limit = spend.tokens_per_day ? ` / ${number(spend.tokens_per_day)}` : "";
  const cost = spend.cost_today_usd ? ` · $${Number(spend.cost_today_usd).toFixed(4)}` : "";
  return `${number(spend.tokens_today)}${limit} tokens today${cost}` + (spend.level !== "ok" ? ` (${spend.level} limit)` : "");
}

// ---------------------------------------------------------------- Org

function card(a) {
  return el("a", { class: `card h-${a.health}`, href: `#/anima/${encodeURIComponent(a.name)}`, "data-name": a.name,
                   "data-health": a.health, title: a.reason || a.not_ready || "" },
    el("div", { class: "name" }, a.name),
    el("div", { class: "role" }, a.role || ""),
    el("div", { class: "row" }, badge("h", a.health), a.sync ? badge("s", a.sync) : null),
    el("dl", {},
      el("dt", {}, "model"), el("dd", {}, a.model || "-"),
      el("dt", {}, "ready"), el("dd", { "data-field": "ready" }, a.ready ? "Ready" : `not ready${a.not_ready ? ": " + a.not_ready : ""}`),
      el("dt", {}, "state"), el("dd", {}, a.state),
      el("dt", {}, "heartbeat"), el("dd", {}, ago(a.last_heartbeat)),
      el("dt", {}, "queue"), el("dd", { "data-field": "queue" },
        `${a.queue.open} open` + (a.queue.overdue ? `, ${a.queue.overdue} overdue` : "") + (a.queue.stale ? `, ${a.queue.stale} stale` : "")),
      el("dt", {}, "spend"), el("dd", {}, spendLine(a.spend))));
}

function tree(animas) {
  const names = new Set(animas.map((a) => a.name));
  const reports = new Map();
  const roots = [];
  for (const a of animas) {
    if (a.supervisor && names.has(a.supervisor) && a.supervisor !== a.name) {
      if (!reports.has(a.supervisor)) reports.set(a.supervisor, []);
      reports.get(a.supervisor).push(a);
    } else roots.push(a);
  }
  const seen = new Set();
  const branch = (a) => {
    seen.add(a.name);
    const under = (reports.get(a.name) || []).filter((r) => !seen.has(r.name));
    return el("li", {}, card(a), under.length ? el("ul", {}, under.map(branch)) : null);
  };
  return el("ul", { class: "tree", id: "org-tree" }, roots.map(branch));
}

function renderOrg(data) {
  const o = data.org;
  const facts = [
    `revision ${o.revision ? o.revision.slice(0, 7) : "none applied"}`,
    o.mode === "tick" ? "tick mode (work from orgctl/state)" : (o.supervisor_running ? "runtime up" : "runtime down"),
    o.controller ? "controller running" : "no controller (sync from the plan at HEAD)",
    o.model_server ? `model ${o.model_server.model}` : null,
    o.suspended ? `suspended: ${o.suspended}` : null,
  ].filter(Boolean);
  return [
    el("p", { class: "muted" }, facts.join(" · ")),
    o.state_branch_error ? el("p", { class: "error" }, o.state_branch_error) : null,
    data.animas.length ? tree(data.animas) : el("p", { class: "muted" }, "Nothing applied yet: run `orgctl apply`."),
  ];
}

// ---------------------------------------------------------------- Anima

function conditionsTable(card) {
  return table(["Type", "Status", "Reason", "Message", "Last transition"], (card.conditions || []).map((c) => [
    c.type, c.status, c.reason, c.message || "",
    c.lastTransitionTime || (card.transitions_recorded ? "" : "not recorded (no controller)")]));
}

function taskRows(tasks, withAssignee) {
  return tasks.map((t) => [
    el("code", {}, t.id), ...(withAssignee ? [t.assignee] : []), t.status, t.priority, t.requester,
    el("span", {}, t.title, ...flags(t)), (t.reason || t.result || "").slice(0, 300)]);
}

function note(n, name) {
  return details(`${name}:${n.path}`, `${n.title}  (${n.path}${n.updated ? ", " + n.updated : ""}${n.protected ? ", protected" : ""})`,
    el("pre", {}, n.body));
}

function renderAnima(data, name) {
  const c = data.card || { name, conditions: [], queue: {}, spend: {} };
  return [
    el("h2", {}, name, " ", c.health ? badge("h", c.health) : null, " ", c.sync ? badge("s", c.sync) : null),
    el("p", { class: "muted" }, [c.role, c.model, c.supervisor ? `reports to ${c.supervisor}` : "top of the org",
                                 `last heartbeat ${ago(c.last_heartbeat)}`, `${c.restarts || 0} restarts`].filter(Boolean).join(" · ")),
    el("h3", {}, "Conditions"), conditionsTable(c),
    el("h3", {}, "Tasks"), table(["Id", "Status", "Priority", "From", "Title", "Result"], taskRows(data.tasks, false)),
    el("h3", {}, "Inbox"), table(["At", "From", "Intent", "Trust", "Text"], data.inbox.map((m) => [
      m.at.slice(0, 19).replace("T", " "), m.sender, m.intent, m.trust, el("div", { class: "text message" }, m.text)])),
    el("h3", {}, "Recent activity"), table(["At", "Trigger", "Did"], data.activity.map((r) => [
      String(r.at || "").slice(0, 19).replace("T", " "), String(r.trigger || r.kind || ""),
      el("div", { class: "text" }, (Array.isArray(r.did) ? r.did : [r.did || r.summary || ""]).join("\n"))])),
    el("div", { class: "grid2" },
      el("div", {}, el("h3", {}, `Knowledge (${data.knowledge.length})`),
         data.knowledge.length ? data.knowledge.map((n) => note(n, name)) : el("p", { class: "muted" }, "None yet.")),
      el("div", {}, el("h3", {}, `Procedures (${data.procedures.length})`),
         data.procedures.length ? data.procedures.map((n) => note(n, name)) : el("p", { class: "muted" }, "None yet."))),
    el("h3", {}, "Memory commits"),
    table(["Commit", "When", "Pass", "Changes"], data.memory_log.map((e) => [
      el("a", { href: `#/anima/${encodeURIComponent(name)}/memory/${e.sha}`, "data-sha": e.sha }, e.sha.slice(0, 7)),
      e.date.slice(0, 16).replace("T", " "), e.pass,
      ["Added", "Changed", "Archived", "Forgotten"].filter((k) => (e.trailers[k] || "0") !== "0")
        .map((k) => `${k.toLowerCase()} ${e.trailers[k]}`).join(", ") || e.subject])),
  ];
}

function renderMemory(data) {
  return [
    el("h2", {}, `Memory commit ${data.rev.slice(0, 12)} of `, el("a", { href: `#/anima/${encodeURIComponent(data.anima)}` }, data.anima)),
    el("h3", {}, "Trailers"), table(["Trailer", "Value"], Object.entries(data.trailers).map(([k, v]) => [k, v])),
    el("h3", {}, `Notes (${data.notes.length})`),
    data.notes.length ? data.notes.map((n) => el("div", { class: "panel note-diff", "data-path": n.path, "data-action": n.action },
      el("div", {}, el("strong", {}, n.action), " ", n.path.split("/").slice(3).join("/"), n.target ? ` -> ${n.target.split("/").slice(3).join("/")}` : "",
         "  ", el("span", { class: "muted" }, `"${n.title}"`)),
      Object.entries(n.meta || {}).map(([k, v]) => el("div", { class: "muted text" }, `${k}: ${v[0]} -> ${v[1]}`)),
      n.added.map((line) => el("div", { class: "text added" }, `+ ${line}`)),
      n.removed.map((line) => el("div", { class: "text removed" }, `- ${line}`))))
      : el("p", { class: "muted" }, "No memory changes."),
  ];
}

// ---------------------------------------------------------------- Work

function eventRows(events) {
  const text = filters.text.toLowerCase();
  return events.filter((e) => !text || [e.reason, e.object, e.message, e.anima || ""].join(" ").toLowerCase().includes(text));
}

function renderWork(data) {
  const shown = eventRows(data.events);
  return [
    el("h2", {}, `Tasks (${data.tasks.length} open)`),
    table(["Id", "Assignee", "Status", "Priority", "From", "Title", "Result"], taskRows(data.tasks, true)),
    el("h2", {}, "Waiting for a person"),
    data.approvals.length ? el("p", { class: "muted" }, "Decide with `orgctl approve ID` or `orgctl deny ID`.") : null,
    table(["Id", "Anima", "Kind", "Detail", "Rule", "Task"], data.approvals.map((a) => [
      el("code", {}, a.id), a.anima, a.kind, el("div", { class: "text" }, a.detail), a.rule, a.task_id || ""])),
    el("h2", {}, "Board"),
    data.board.length ? data.board.map((c) => el("div", { class: "panel" }, el("h3", {}, `#${c.channel}`),
      table(["At", "From", "Text"], c.posts.map((p) => [p.at.slice(0, 19).replace("T", " "), p.sender,
                                                       el("div", { class: "text message" }, p.text)]))))
      : el("p", { class: "muted" }, "The Board is empty."),
    el("h2", {}, `Events (${shown.length} of ${data.events.length}, Warning first)`),
    table(["Last seen", "Type", "Reason", "Object", "Count", "Message"], shown.map((e) => [
      String(e.last_seen || "").slice(0, 19).replace("T", " "), e.type, e.reason, e.object, String(e.count),
      el("div", { class: "text" }, e.message)]), (i) => (shown[i].type === "Warning" ? "warning" : null)),
  ];
}

function workFilters() {
  const type = el("select", { id: "event-type", onchange: (ev) => { filters.type = ev.target.value; refresh(true); } },
    ["", "Warning", "Normal"].map((t) => el("option", { value: t, selected: filters.type === t }, t || "All types")));
  const text = el("input", { id: "event-filter", type: "search", placeholder: "filter events (reason, object, Anima, text)",
                             value: filters.text, oninput: (ev) => { filters.text = ev.target.value; refresh(true); } });
  return el("div", { class: "filters" }, type, text);
}

// ---------------------------------------------------------------- Plan

function renderPlan(data) {
  const p = data.plan;
  const history = table(["At", "Revision", "Plan", "Result", "Took"], data.history.map((r) => [
    String(r.at || ""), String(r.revision || "-").slice(0, 7),
    `+${(r.plan || {}).hire || 0} ~${(r.plan || {}).change || 0} -${(r.plan || {}).retire || 0}`, String(r.result || ""),
    `${Number(r.duration_s || 0).toFixed(1)}s`]));
  if (!p) {
    return [el("p", { class: "error" }, `The spec at HEAD does not load: ${data.error}`),
            el("pre", {}, data.diagnostics.join("\n")), el("h2", {}, "Last applies"), history];
  }
  const s = p.summary;
  const stamp = encodeURIComponent(p.revision || "") + "-" + p.changes.map((c) => c.symbol + c.name).join(".");
  return [
    el("h2", {}, `Plan at ${String(p.revision || "").slice(0, 7)}: ${s.hire} to hire, ${s.change} to change, ${s.retire} to retire`),
    p.changes.length || p.workflows.length ? table(["", "Anima", "Action", "Why"], [
      ...p.changes.map((c) => [c.symbol, c.name, c.action, el("div", { class: "text" }, (c.reasons || []).join("\n"))]),
      ...p.workflows.map((w) => [w.symbol, `workflow ${w.name}`, w.action, ""])])
      : el("p", {}, "No changes: what runs is what HEAD declares."),
    el("div", { class: "charts" },
      el("div", {}, el("h3", {}, "Before (running now)"), el("img", { src: `/api/plan/before.svg?v=${stamp}`, alt: "org chart before the plan" })),
      el("div", {}, el("h3", {}, "After apply"), el("img", { src: `/api/plan/after.svg?v=${stamp}`, alt: "org chart after the plan" }))),
    el("h2", {}, "Last applies"), history,
  ];
}

// ---------------------------------------------------------------- routing and polling

function route() {
  const parts = (location.hash || "#/org").slice(2).split("/").map(decodeURIComponent);
  if (parts[0] === "anima" && parts[1] && parts[2] === "memory" && parts[3])
    return { view: "memory", api: `/api/anima/${encodeURIComponent(parts[1])}/memory/${encodeURIComponent(parts[3])}`, name: parts[1] };
  if (parts[0] === "anima" && parts[1]) return { view: "anima", api: `/api/anima/${encodeURIComponent(parts[1])}`, name: parts[1] };
  if (parts[0] === "work") return { view: "work", api: `/api/work${filters.type ? "?type=" + filters.type : ""}` };
  if (parts[0] === "plan") return { view: "plan", api: "/api/plan" };
  return { view: "org", api: "/api/org" };
}

function renderHeader(org) {
  document.getElementById("org-name").textContent = org.name;
  const health = document.getElementById("org-health");
  health.textContent = org.health;
  health.className = `badge h-${org.health}`;
  const sync = document.getElementById("org-sync");
  sync.textContent = org.sync || "";
  sync.className = `badge s-${org.sync}`;
  document.title = `${org.name}: ${org.health} · orgctl`;
}

async function load(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  const body = await response.text();
  if (!response.ok) {
    let message = body;
    try { message = JSON.parse(body).error || body; } catch (e) { /* plain text */ }
    throw new Error(`${response.status}: ${message}`);
  }
  return body;
}

async function refresh(force) {
  const r = route();
  for (const a of document.querySelectorAll("header nav a"))
    a.classList.toggle("active", a.dataset.view === r.view || (a.dataset.view === "org" && ["anima", "memory"].includes(r.view)));
  try {
    const [body, orgBody] = await Promise.all([load(r.api), r.view === "org" ? null : load("/api/org")]);
    const org = JSON.parse(orgBody || body).org;
    renderHeader(org);
    const key = r.view + "|" + r.api + "|" + filters.text;
    if (!force && key === lastRoute && body === lastBody) return;
    lastRoute = key;
    lastBody = body;
    const data = JSON.parse(body);
    const view = document.getElementById("view");
    const content = { org: () => renderOrg(data), anima: () => renderAnima(data, r.name), memory: () => renderMemory(data),
                      work: () => renderWork(data), plan: () => renderPlan(data) }[r.view]();
    const focused = document.activeElement && document.activeElement.id;
    const caret = focused === "event-filter" ? document.activeElement.selectionStart : null;
    view.replaceChildren(...(r.view === "work" ? [workFilters()] : []), ...[content].flat(Infinity).filter(Boolean));
    view.dataset.view = r.view;
    if (focused === "event-filter") {
      const input = document.getElementById("event-filter");
      input.focus();
      input.setSelectionRange(caret, caret);
    }
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    document.getElementById("view").replaceChildren(el("p", { class: "error" }, String(err.message || err)));
    lastBody = "";
  }
}

function start() {
  window.addEventListener("hashchange", () => { lastBody = ""; refresh(true); });
  refresh(true);
  setInterval(() => refresh(false), POLL_MS);
}

document.addEventListener("DOMContentLoaded", start);
