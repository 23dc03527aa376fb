// The winsignal dashboard: a client of the documented API (docs/api.md), nothing more. It keeps the
// token in the tab's session storage, reads with `Authorization: Bearer`, and follows `GET /v1/stream`
// (read with fetch, which can send the token; EventSource cannot) to update what is on screen as scores
// change. Every value from the API is put in the page as text (`textContent`), never as markup.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

let token = sessionStorage.getItem("winsignal-token");
let me = null;

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path) {
  const r = await fetch(path, { headers: { Authorization: `Bearer ${token}` } });
  const json = (r.headers.get("content-type") || "").includes("json");
  const body = json ? await r.json() : await r.text();
  if (!r.ok) {
    const e = json && body.error ? body.error : { code: "", message: String(body) };
    throw new ApiError(r.status, e.code, e.message);
  }
  return body;
}

async function apiPost(path, body) {
  const r = await fetch(path, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await r.json();
  if (!r.ok) throw new ApiError(r.status, answer.error.code, answer.error.message);
  return answer;
}

const pct = (p) => (p === null || p === undefined ? "–" : `${Math.round(p * 100)}%`);
const pts = (x) => `${x >= 0 ? "+" : "−"}${Math.abs(x).toFixed(1)} pts`;
const money = (x) => (x === null || x === undefined ? "–" : Math.round(x).toLocaleString("en-US"));
const when = (ms) => new Date(ms).toISOString().slice(0, 10);

// ---- sign in ----

async function signIn(candidate) {
  token = candidate;
  me = await api("/v1/me");
  sessionStorage.setItem("winsignal-token", token);
  $("#signin").hidden = true;
  $("#nav").hidden = false;
  $("#signout").hidden = false;
  $("#nav-quality").hidden = !me.sees_operations;
  $("#nav-monitor").hidden = !me.sees_operations;
  $("#who").textContent = `${me.user} · ${me.role}${me.rep_id ? ` · rep ${me.rep_id}` : ""}`;
  follow();
  route();
}

function showSignIn(message) {
  token = null;
  sessionStorage.removeItem("winsignal-token");
  $("#signin").hidden = false;
  $("#token").value = "";
  $("#nav").hidden = true;
  $("#signout").hidden = true;
  $("#live").hidden = true;
  $("#who").textContent = "";
  $("#view").replaceChildren();
  $("#signin-error").textContent = message || "";
}

$("#signin").addEventListener("submit", (ev) => {
  ev.preventDefault();
  signIn($("#token").value.trim()).catch((e) =>
    showSignIn(e.status === 401 ? "That token is not known or was revoked." : e.message));
});
$("#signout").addEventListener("click", () => { stopFollowing(); showSignIn(); });

// ---- live updates ----

let stream = null;
let lastChanges = new Map(); // opportunity id → its latest change seen on the stream

function stopFollowing() {
  if (stream) stream.abort();
  stream = null;
}

/** Reads the event stream for as long as signed in, reconnecting after a pause when it ends. */
async function follow() {
  stopFollowing();
  const controller = new AbortController();
  stream = controller;
  const live = $("#live");
  live.hidden = false;
  while (stream === controller) {
    try {
      const r = await fetch("/v1/stream", {
        headers: { Authorization: `Bearer ${token}` }, signal: controller.signal });
      if (!r.ok) throw new Error(`stream: ${r.status}`);
      live.className = "live";
      live.textContent = "live";
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const kind = (block.match(/^event: ?(.*)$/m) || [])[1];
          const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
          if (kind === "score_change" && data) onChange(JSON.parse(data));
          if (kind === "lagged") route();
        }
      }
    } catch (e) {
      if (controller.signal.aborted) return;
    }
    live.className = "live off";
    live.textContent = "reconnecting…";
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function onChange(change) {
  lastChanges.set(change.opportunity_id, change);
  $("#live").textContent = `live · last change ${new Date().toLocaleTimeString()}`;
  const row = document.querySelector(`tr[data-deal="${CSS.escape(change.opportunity_id)}"]`);
  if (row) {
    const cell = $(".p-win", row);
    cell.textContent = change.after === null ? "closed" : pct(change.after);
    row.classList.remove("flash");
    void row.offsetWidth;
    row.classList.add("flash");
  }
  const open = currentDeal();
  if (open === change.opportunity_id) renderDeal(open, change);
}

// ---- routing ----

function currentDeal() {
  const m = location.hash.match(/^#\/deals\/(.+)$/);
  return m ? decodeURIComponent(m[1]) : null;
}

async function route() {
  if (!token) return;
  const hash = location.hash || "#/deals";
  const view = $("#view");
  try {
    let m;
    if ((m = hash.match(/^#\/deals\/(.+)$/))) await renderDeal(decodeURIComponent(m[1]));
    else if ((m = hash.match(/^#\/reps\/(.+)$/))) await renderRep(decodeURIComponent(m[1]));
    else if (hash === "#/reps") await renderReps();
    else if (hash === "#/findings") await renderFindings();
    else if (hash === "#/quality") await renderQuality();
    else if (hash === "#/models") await renderModels();
    else if (hash === "#/review") await renderReview();
    else if (hash === "#/monitor") await renderMonitor();
    else await renderPipeline();
  } catch (e) {
    if (e.status === 401) return showSignIn("Your token is no longer valid; sign in again.");
    view.replaceChildren(el("p", { class: "error", role: "alert", text: e.message }));
  }
}
window.addEventListener("hashchange", route);

// ---- pipeline ----

/** P(win) now minus at the start of the last 7 days, from the deal's score history; null when the deal
 *  was first scored within them. */
function weekChange(history, now) {
  const start = now - 7 * 86400e3;
  const entries = history.history;
  if (!entries.length) return 0;
  const before = entries.filter((e) => Date.parse(e.recorded_at) < start);
  const inWeek = entries.filter((e) => Date.parse(e.recorded_at) >= start);
  const last = entries[entries.length - 1].after;
  if (before.length) return last - before[before.length - 1].after;
  if (inWeek.length && inWeek[0].before !== null) return last - inWeek[0].before;
  return null;
}

async function renderPipeline() {
  const view = $("#view");
  const list = await api("/v1/deals?limit=100");
  const table = el("table", { id: "pipeline" },
    el("thead", {}, el("tr", {},
      el("th", { text: "Deal" }), el("th", { text: "Rep" }), el("th", { text: "Stage" }),
      el("th", { class: "num", text: "Amount" }), el("th", { class: "num", text: "P(win)" }),
      el("th", { class: "num", text: "This week" }), el("th", { text: "Biggest factor" }),
      el("th", { text: "Next action" }))));
  const body = el("tbody");
  for (const d of list.deals) {
    body.append(el("tr", { "data-deal": d.opportunity_id },
      el("td", {}, el("a", { href: `#/deals/${encodeURIComponent(d.opportunity_id)}`, text: d.opportunity_id })),
      el("td", { text: d.rep_id || "–" }), el("td", { text: d.stage || "–" }),
      el("td", { class: "num", text: money(d.amount) }),
      el("td", { class: "num p-win", text: pct(d.p_win) }),
      el("td", { class: "num week", text: "…" }),
      el("td", { text: d.biggest_drag ? `${d.biggest_drag.term} (${pts(d.biggest_drag.points)})` : "–" }),
      el("td", { text: d.next_action ? `${d.next_action.title} (${pts(d.next_action.uplift_points)})` : "–" })));
  }
  table.append(body);
  const heading = list.model_id === null
    ? el("p", { class: "muted", text: "No win model is trained yet: `winsignal train` makes one; scores appear then." })
    : el("p", { class: "muted", text: `${list.deals.length} open deals, riskiest first · model ${list.model_id.slice(0, 12)}` });
  view.replaceChildren(el("h1", { text: "Pipeline" }), heading, table);
  const now = Date.now();
  await Promise.all(list.deals.map(async (d) => {
    const cell = $(`tr[data-deal="${CSS.escape(d.opportunity_id)}"] .week`);
    try {
      const change = weekChange(await api(`/v1/deals/${encodeURIComponent(d.opportunity_id)}/history`), now);
      cell.textContent = change === null ? "new" : pts(change * 100);
      cell.className = `num week ${change > 0 ? "pos" : change < 0 ? "neg" : ""}`;
    } catch (e) {
      cell.textContent = "–";
    }
  }));
}

// ---- a deal ----

async function renderDeal(id, change) {
  const view = $("#view");
  const path = `/v1/deals/${encodeURIComponent(id)}`;
  let got;
  try {
    got = await api(path);
  } catch (e) {
    if (e.status !== 404) throw e;
    view.replaceChildren(el("h1", { text: `Deal ${id}` }),
      el("p", { id: "p-win", text: "Not open (closed, or not yours to see)." }));
    return;
  }
  const [history, lineage, feedback] = await Promise.all([
    api(`${path}/history`).catch(() => ({ history: [] })),
    api(`${path}/lineage`).catch(() => null),
    api(`${path}/feedback`).catch(() => ({ feedback: [] })),
  ]);
  if (currentDeal() !== id) return;
  const d = got.deal;
  const shown = change || lastChanges.get(id);
  view.replaceChildren(
    el("p", {}, el("a", { href: "#/deals", text: "← Pipeline" })),
    el("h1", { id: "deal-title", text: `Deal ${d.opportunity_id}` }),
    el("div", { class: "card" },
      el("div", { class: "score", id: "p-win", text: pct(d.p_win) }),
      el("div", { class: "muted", text: `P(win) as of ${when(d.as_of)} · stage ${d.stage || "–"} · amount ${money(d.amount)} · rep ${d.rep_id || "–"}` }),
      reviewOverride(got.review)),
    lastChange(shown),
    el("h2", { text: "Why: the factors" }), waterfall(d.factors),
    el("h2", { text: "Score history" }), historyChart(history.history),
    el("h2", { text: "Next best actions" }), actions(d.actions, d.opportunity_id, feedback.feedback),
    el("h2", { text: "Where the factors come from" }), lineageList(lineage));
}

// A reviewer's standing correction of the deal's P(win), beside the model's.
function reviewOverride(r) {
  if (!r) return el("div", { id: "review-override" });
  const comment = r.comment ? `: “${r.comment}”` : "";
  return el("div", { id: "review-override", class: "override" },
    el("strong", { text: `Reviewed: ${pct(r.corrected_p_win)}` }),
    el("span", { class: "muted", text: ` by ${r.reviewer} (${r.reason_code}) on ${when(r.at)}${comment} · the model (${r.model_id.slice(0, 12)}) gave ${pct(r.p_win)}` }));
}

function lastChange(change) {
  if (!change) return el("div", { id: "last-change" });
  const moved = change.moved_by.slice(0, 5).map((m) =>
    el("li", { class: m.logit_change > 0 ? "pos" : "neg", text: `${m.term} ${m.logit_change > 0 ? "raised" : "lowered"} it (${m.logit_change.toFixed(2)} log-odds)` }));
  return el("div", { id: "last-change", class: "card" },
    el("strong", { text: `Just changed: ${pct(change.before)} → ${pct(change.after)}` }),
    moved.length ? el("ul", {}, moved) : el("p", { class: "muted", text: "No factor moved (first score)." }));
}

function waterfall(factors) {
  const shown = factors.filter((f) => Math.abs(f.points) >= 0.05).slice(0, 12);
  const max = Math.max(1, ...shown.map((f) => Math.abs(f.points)));
  return el("div", { class: "bars", id: "factors" }, shown.map((f) => {
    const width = (Math.abs(f.points) / max) * 50;
    const bar = el("div", { class: `bar ${f.points >= 0 ? "pos" : "neg"}` });
    bar.style.width = `${width}%`;
    bar.style.left = f.points >= 0 ? "50%" : `${50 - width}%`;
    return el("div", { class: "row" }, el("span", { text: f.text }),
      el("div", { class: "track" }, el("div", { class: "axis" }), bar),
      el("span", { class: `num ${f.points >= 0 ? "pos" : "neg"}`, text: pts(f.points) }));
  }));
}

function historyChart(entries) {
  const points = entries.filter((e) => e.after !== null);
  if (points.length === 0) return el("p", { class: "muted", text: "No score recorded yet." });
  const w = 640, h = 160, pad = 28;
  const chart = svg("svg", { width: w, height: h, id: "history", role: "img" });
  const x = (i) => pad + (points.length === 1 ? 0 : (i / (points.length - 1)) * (w - 2 * pad));
  const y = (p) => h - pad - p * (h - 2 * pad);
  for (const p of [0, 0.5, 1]) {
    chart.append(svg("line", { x1: pad, x2: w - pad, y1: y(p), y2: y(p), stroke: "#e4e7ec" }));
    const label = svg("text", { x: 2, y: y(p) + 4 });
    label.textContent = pct(p);
    chart.append(label);
  }
  chart.append(svg("polyline", { fill: "none", stroke: "#1f5fbf", "stroke-width": 2,
    points: points.map((e, i) => `${x(i)},${y(e.after)}`).join(" ") }));
  points.forEach((e, i) => {
    const dot = svg("circle", { cx: x(i), cy: y(e.after), r: 3, fill: "#1f5fbf" });
    const title = svg("title");
    title.textContent = `${e.recorded_at}: ${pct(e.after)}`;
    dot.append(title);
    chart.append(dot);
  });
  return chart;
}

/** A deal's next actions, each with the feedback given on it and buttons to give more ("done", "not
 *  relevant"), recorded in the caller's name. */
function actions(list, dealId, feedback = []) {
  if (!list.length) return el("p", { class: "muted", text: "No proven behaviour is missing." });
  const give = (behaviour, verdict) => async () => {
    try {
      await apiPost(`/v1/deals/${encodeURIComponent(dealId)}/feedback`, { behaviour, verdict, comment: "" });
      await renderDeal(dealId);
    } catch (e) {
      $("#actions").prepend(el("p", { class: "error", role: "alert", text: e.message }));
    }
  };
  return el("div", { id: "actions" }, list.map((a) => el("div", { class: "card", "data-behaviour": a.behaviour },
    el("div", { class: "feedback" },
      el("button", { type: "button", class: "done", onclick: give(a.behaviour, "done") }, "Done"),
      " ",
      el("button", { type: "button", class: "not-relevant", onclick: give(a.behaviour, "not_relevant") }, "Not relevant"),
      " ",
      el("span", { class: "muted given", text: feedback.filter((f) => f.behaviour === a.behaviour)
        .map((f) => `${f.verdict.replace("_", " ")} by ${f.user} on ${when(f.at)}`).join("; ") })),
    el("strong", { text: `${a.title} (${pts(a.uplift_points)})` }),
    el("div", { class: "muted", text: `Evidence: at ${a.evidence.landmark}, odds ratio ${a.evidence.odds_ratio.toFixed(2)} (${a.evidence.low.toFixed(2)}–${a.evidence.high.toFixed(2)}), q = ${a.evidence.q.toFixed(3)}; won ${pct(a.evidence.win_rate_with)} with it vs ${pct(a.evidence.win_rate_without)} without (n = ${a.evidence.n_with} / ${a.evidence.n_without})` }),
    a.targets.length ? el("div", { text: `People to involve: ${a.targets.map((t) => `${t.title || t.contact_id} (${t.seniority})`).join(", ")}` }) : null,
    el("p", { text: a.coaching }))));
}

function lineageList(lineage) {
  if (!lineage || !lineage.lineage.length) return el("p", { class: "muted", text: "No behaviour among the factors reads events." });
  return el("div", { id: "lineage" }, lineage.lineage.map((f) => el("details", { class: "card" },
    el("summary", { text: `${f.term}: ${f.contributions.length} item${f.contributions.length === 1 ? "" : "s"}` }),
    f.definition ? el("p", { class: "muted", text: f.definition }) : null,
    el("ul", {}, f.contributions.slice(0, 50).map((c) => el("li", { text:
      `${c.kind} ${c.id || ""} ${c.at ? when(c.at) : ""} weight ${c.weight}` +
      (c.origin ? ` — ${c.origin.file}, line ${c.origin.line} (load ${c.origin.load_id})` : "") }))))));
}

// ---- reps ----

async function renderReps() {
  const got = await api("/v1/reps");
  const cards = got.scorecards;
  const rows = cards.reps.map((c) => el("tr", {},
    el("td", {}, el("a", { href: `#/reps/${encodeURIComponent(c.rep_id)}`, text: c.name || c.rep_id })),
    el("td", { text: c.team || "–" }), el("td", { class: "num", text: c.rank ?? "–" }),
    el("td", { class: "num", text: c.closed }), el("td", { class: "num", text: pct(c.win_rate) }),
    el("td", { class: "num", text: c.win ? pct(c.win.adjusted_win_rate.estimate) : "–" }),
    el("td", { text: c.coaching.length ? c.coaching[0].title : "–" })));
  $("#view").replaceChildren(el("h1", { text: "Reps" }),
    el("p", { class: "muted", text: `Average rep's win rate ${pct(cards.mean_win_rate)}; adjusted for deal mix and pooled toward the average (as of data position ${got.position}, computed ${got.computed_at}).` }),
    el("table", { id: "reps" }, el("thead", {}, el("tr", {},
      el("th", { text: "Rep" }), el("th", { text: "Team" }), el("th", { class: "num", text: "Rank" }),
      el("th", { class: "num", text: "Closed" }), el("th", { class: "num", text: "Win rate" }),
      el("th", { class: "num", text: "Adjusted" }), el("th", { text: "Top coaching priority" }))),
    el("tbody", {}, rows)));
}

async function renderRep(id) {
  const got = await api(`/v1/reps/${encodeURIComponent(id)}`);
  const c = got.card;
  $("#view").replaceChildren(el("p", {}, el("a", { href: "#/reps", text: "← Reps" })),
    el("h1", { text: c.name || c.rep_id }),
    el("div", { class: "card", text: `${c.closed} closed (${c.won} won), ${c.open} open; win rate ${pct(c.win_rate)}` +
      (c.win ? `, adjusted ${pct(c.win.adjusted_win_rate.estimate)} (${pct(c.win.adjusted_win_rate.low)}–${pct(c.win.adjusted_win_rate.high)})` : "") }),
    el("h2", { text: "Coaching, by the wins it could add" }),
    c.coaching.length ? el("ol", { id: "coaching" }, c.coaching.map((p) => el("li", { text:
      `${p.title} at ${p.landmark}: done on ${pct(p.rep_adoption)} of deals vs ${pct(p.top_quartile)} by the best quarter of reps; about ${p.expected_extra_wins.toFixed(1)} more wins on ${p.open_deals} open deals` })))
      : el("p", { class: "muted", text: "Nothing to coach: no significant behaviour lags." }));
}

// ---- findings ----

async function renderFindings() {
  const got = await api("/v1/findings");
  const f = got.findings;
  const rows = f.findings.filter((x) => x.effect).sort((a, b) => (a.q ?? 1) - (b.q ?? 1)).slice(0, 60).map((x) =>
    el("tr", {}, el("td", { text: x.title }), el("td", { text: x.outcome }), el("td", { text: x.landmark }),
      el("td", { class: "num", text: `${x.effect.estimate.toFixed(2)} (${x.effect.low.toFixed(2)}–${x.effect.high.toFixed(2)})` }),
      el("td", { text: x.effect.scale }), el("td", { class: "num", text: x.q === null || x.q === undefined ? "–" : x.q.toFixed(3) }),
      el("td", { text: x.significant ? "yes" : "no" })));
  $("#view").replaceChildren(el("h1", { text: "Findings" }),
    el("p", { class: "muted", text: `${f.opportunities} deals, ${f.snapshots} snapshots; effects adjusted for deal mix, q-values across ${f.tests} tests (false-discovery rate ${f.fdr}).` }),
    el("table", { id: "findings" }, el("thead", {}, el("tr", {},
      el("th", { text: "Behaviour" }), el("th", { text: "Outcome" }), el("th", { text: "Landmark" }),
      el("th", { class: "num", text: "Effect (95% CI)" }), el("th", { text: "Scale" }),
      el("th", { class: "num", text: "q" }), el("th", { text: "Significant" }))), el("tbody", {}, rows)));
}

// ---- data quality ----

async function renderQuality() {
  const q = await api("/v1/quality");
  $("#view").replaceChildren(el("h1", { text: "Data quality" }),
    el("pre", { class: "card", id: "quality", text: JSON.stringify(q, null, 2).slice(0, 20000) }));
}

// ---- models ----

/** The win models with their stages; admin and revops approve, activate, roll back and retire, each with
 *  a reason, in their own name (the server enforces the two-person rule and the gate). */
async function renderModels() {
  const got = await api("/v1/models");
  const governs = me.sees_operations;
  const reason = el("input", { id: "model-reason", type: "text", size: "50", placeholder: "Reason (required)" });
  const override = el("input", { id: "model-override", type: "text", size: "40", placeholder: "Override the gate because… (optional)" });
  const message = el("p", { id: "models-message", role: "alert" });
  const act = (path, extra = {}) => async () => {
    message.className = "";
    message.textContent = "Working…";
    try {
      const body = { reason: reason.value, ...extra };
      if (path.endsWith("/activate") && override.value.trim()) body.override_reason = override.value;
      const done = await apiPost(path, body);
      await renderModels();
      const m = $("#models-message");
      m.className = "pos";
      m.textContent = `${done.transition.action.replace("_", " ")}: ${done.transition.model_id}. Serving ${done.serving ?? "–"}.`;
    } catch (e) {
      message.className = "error";
      message.textContent = e.message;
    }
  };
  const rows = got.models.slice().reverse().map((m) => {
    const ev = (m.summary && m.summary.evaluation && m.summary.evaluation.model) || {};
    const id = encodeURIComponent(m.model_id);
    const buttons = [];
    if (governs && m.stage === "candidate" && !m.approved_by)
      buttons.push(el("button", { type: "button", class: "approve", onclick: act(`/v1/models/${id}/approve`) }, "Approve"));
    if (governs && m.approved_by && m.stage !== "active")
      buttons.push(el("button", { type: "button", class: "activate", onclick: act(`/v1/models/${id}/activate`) }, "Activate"));
    if (governs && m.stage !== "active" && m.stage !== "retired")
      buttons.push(el("button", { type: "button", class: "retire", onclick: act(`/v1/models/${id}/retire`) }, "Retire"));
    return el("tr", { "data-model": m.model_id },
      el("td", {}, el("code", { text: m.model_id.slice(0, 12) })),
      el("td", { class: `stage ${m.stage}`, text: m.stage }),
      el("td", { text: m.trained_by ?? "–" }),
      el("td", { text: m.approved_by ? `${m.approved_by}: ${m.approval_reason}` : "–" }),
      el("td", { class: "num", text: ev.auc === null || ev.auc === undefined ? "–" : ev.auc.toFixed(3) }),
      el("td", { class: "num", text: ev.brier === null || ev.brier === undefined ? "–" : ev.brier.toFixed(4) }),
      el("td", {}, buttons));
  });
  const controls = governs
    ? el("div", { class: "card" }, reason, " ", override, " ",
        el("button", { type: "button", id: "rollback", onclick: act("/v1/models/rollback") }, "Roll back"))
    : el("p", { class: "muted", text: "Admin and revops tokens approve, activate and roll back models." });
  $("#view").replaceChildren(el("h1", { text: "Models" }),
    el("p", { class: "muted", text: "A candidate is approved by someone other than whoever trained it, then activated after the gate (it may not be worse than the active model on the latest holdout beyond the tolerances). docs/governance.md." }),
    controls, message,
    el("table", { id: "models" }, el("thead", {}, el("tr", {},
      el("th", { text: "Model" }), el("th", { text: "Stage" }), el("th", { text: "Trained by" }),
      el("th", { text: "Approved" }), el("th", { class: "num", text: "AUC" }), el("th", { class: "num", text: "Brier" }),
      el("th", { text: "" }))), el("tbody", {}, rows)));
}

// ---- review queue ----

/** The review queue: score changes that matter wait for a reviewer (admin, revops, manager) to accept
 *  or reject them with a reason code; the server records who, when, on which model. */
async function renderReview() {
  const got = await api("/v1/review?all=true");
  const reviews = ["admin", "revops", "manager"].includes(me.role);
  const code = el("select", { id: "review-code" },
    ["agree", "wrong_data", "missing_context", "model_error", "other"].map((c) => el("option", { value: c }, c)));
  const comment = el("input", { id: "review-comment", type: "text", size: "50", placeholder: "Comment" });
  const message = el("p", { id: "review-message", role: "alert" });
  const decide = (id, verdict) => async () => {
    try {
      await apiPost(`/v1/review/${id}`, { verdict, reason_code: code.value, comment: comment.value });
      await renderReview();
      const m = $("#review-message");
      m.className = "pos";
      m.textContent = `Item ${id}: ${verdict}.`;
    } catch (e) {
      message.className = "error";
      message.textContent = e.message;
    }
  };
  const rows = got.items.slice().reverse().map((r) => {
    const c = r.change;
    const d = r.decision;
    const cell = d
      ? el("td", { class: "decision", text: `${d.verdict} by ${d.reviewer} (${d.reason_code})${d.comment ? `: ${d.comment}` : ""}` })
      : el("td", { class: "decision" }, reviews
        ? [el("button", { type: "button", class: "accept", onclick: decide(r.id, "accept") }, "Accept"),
           el("button", { type: "button", class: "reject", onclick: decide(r.id, "reject") }, "Reject")]
        : "waiting");
    // A team's coaching change has no deal: its team and reps instead.
    const t = r.coaching;
    return el("tr", { "data-item": String(r.id) },
      el("td", { class: "num", text: String(r.id) }),
      c ? el("td", {}, el("a", { href: `#/deals/${encodeURIComponent(c.opportunity_id)}`, text: c.opportunity_id }))
        : el("td", { text: t ? `team ${t.team}` : "–" }),
      el("td", { text: c ? (c.rep_id ?? "–") : t ? `${t.rep_ids.length} reps` : "–" }),
      el("td", { class: "num", text: c ? `${pct(c.before)} → ${pct(c.after)}` : "" }),
      el("td", { text: r.why }),
      cell);
  });
  $("#view").replaceChildren(el("h1", { text: "Review queue" }),
    el("p", { class: "muted", text: "What the workspace's rules hold for a person: a large score move on a large deal, a next action for a strategic account, a team's coaching focus changing (`winsignal review rules`). docs/governance.md." }),
    reviews ? el("div", { class: "card" }, "Reason: ", code, " ", comment) : null, message,
    el("table", { id: "review" }, el("thead", {}, el("tr", {},
      el("th", { class: "num", text: "#" }), el("th", { text: "Deal" }), el("th", { text: "Rep" }),
      el("th", { class: "num", text: "P(win)" }), el("th", { text: "Why" }), el("th", { text: "Decision" }))),
      el("tbody", {}, rows)));
}

// ---- monitoring ----

/** The latest monitoring check (live performance, drift of the latest window) and its alerts. */
async function renderMonitor() {
  const got = await api("/v1/monitor");
  const f = got.figures;
  const num = (v, d = 3) => (v === null || v === undefined ? "–" : v.toFixed(d));
  const figures = f
    ? el("table", { id: "monitor-figures" }, el("tbody", {},
        [["Model", f.model_id.slice(0, 12)],
         ["Checked", new Date(f.checked_at).toISOString().replace("T", " ").slice(0, 16)],
         ["Live AUC (floor)", `${num(f.live_auc)} (${num(f.auc_floor)})`],
         ["Holdout AUC, realised / estimated", `${num(f.holdout_auc)} / ${num(f.holdout_estimated_auc)}`],
         ["Open deals' AUC, estimated", `${num(f.open_estimated_auc)}${f.estimate_trusted ? "" : " (not trusted)"}`],
         ["Latest window", `${f.window_snapshots} snapshots; score PSI ${num(f.score_psi)}; ${f.features.filter((x) => x.alarm).length} of ${f.features.length} features alarming`]]
          .map(([k, v]) => el("tr", {}, el("th", { text: k }), el("td", { text: v })))))
    : el("p", { id: "monitor-figures", class: "muted", text: "No monitoring check has run yet: `winsignal monitor check`, or `winsignal serve --monitor-every 1h`." });
  const alertRow = (a, seq) => el("tr", { class: a.state === "firing" ? "neg" : "" },
    el("td", { text: seq === undefined ? a.key : String(seq) }),
    el("td", { text: a.state }),
    el("td", { text: new Date(a.checked_at).toISOString().slice(0, 16).replace("T", " ") }),
    el("td", { text: a.summary + (a.recommendation ? `. Recommendation: ${a.recommendation}` : "") }));
  const firing = got.firing.length
    ? el("table", { id: "monitor-firing" }, el("tbody", {}, got.firing.map((a) => alertRow(a))))
    : el("p", { id: "monitor-firing", class: "muted", text: "No alert firing." });
  $("#view").replaceChildren(el("h1", { text: "Monitoring" }),
    el("p", { class: "muted", text: "The active model's live performance and drift, as the latest check found them; alerts go to webhooks with `--on alert`. docs/monitoring.md." }),
    figures,
    el("h2", { text: "Firing" }), firing,
    el("h2", { text: "Recorded" }),
    got.recent.length
      ? el("table", { id: "monitor-recent" }, el("tbody", {}, got.recent.map((r) => alertRow(r.alert, r.seq))))
      : el("p", { class: "muted", text: "No alert recorded." }));
}

// ---- start ----

if (token) signIn(token).catch(() => showSignIn());
else showSignIn();
