// The Assay dashboard: reads the API's JSON endpoints and draws tables and SVG.
// Views (by URL hash): #/ jobs, #/jobs/ID one job, #/disputes, #/disputes/ID one game
// drawn as its bisection, #/solvers earnings.  No library, nothing from outside the API.
"use strict";

const ONE = 10n ** 18n;
const LEVELS = ["CHECKPOINT", "STEP", "OP"];
const SVG_NS = "http://www.w3.org/2000/svg";
const view = document.getElementById("view");
let timer = null;

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);
}

function work(wei) {
  // A uint256 decimal string as WORK with 4 decimals, exactly (BigInt, no float).
  const v = BigInt(wei ?? 0);
  const whole = v / ONE;
  const frac = ((v % ONE) * 10000n) / ONE;
  return `${whole}.${String(frac).padStart(4, "0")} WORK`;
}

function short(hex) {
  return hex ? `<code title="${esc(hex)}">${esc(hex.slice(0, 10))}…</code>` : "-";
}

function when(ts, now) {
  if (!ts) return "-";
  const d = ts - now;
  const abs = Math.abs(d);
  const text = abs < 120 ? `${abs}s` : abs < 7200 ? `${Math.round(abs / 60)}m` : `${Math.round(abs / 3600)}h`;
  return d >= 0 ? `in ${text}` : `${text} ago`;
}

function deadline(status, t, now) {
  // The one deadline that matters in this state (the contract's, in chain time).
  if (status === "Open") return `claim ${when(t.claim_deadline, now)}`;
  if (status === "Claimed") return `submit ${when(t.submit_deadline, now)}`;
  if (status === "Submitted") return `challenges close ${when(t.challenge_deadline, now)}`;
  return "-";
}

function levelName(level) {
  return typeof level === "number" ? (LEVELS[level] ?? String(level)) : String(level);
}

async function api(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `HTTP ${response.status} from ${path}`);
  return body;
}

function svg(tag, attrs, parent) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (parent) parent.appendChild(el);
  return el;
}

function label(parent, x, y, text, anchor = "start") {
  const t = svg("text", { x, y, "text-anchor": anchor }, parent);
  t.textContent = text;
  return t;
}

// ------------------------------------------------------------------------ loss curve

function lossCurve(points, width = 640, height = 240) {
  const root = svg("svg", { width, height, class: "loss-curve", role: "img" });
  const pad = { l: 52, r: 12, t: 12, b: 28 };
  if (points.length === 0) {
    label(root, width / 2, height / 2, "no loss reported yet", "middle");
    return root;
  }
  const xs = points.map((p) => p.step);
  const ys = points.map((p) => p.loss);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (y1 - y0 < 1e-9) { y0 -= 0.5; y1 += 0.5; }
  const sx = (x) => pad.l + ((x - x0) / (x1 - x0)) * (width - pad.l - pad.r);
  const sy = (y) => height - pad.b - ((y - y0) / (y1 - y0)) * (height - pad.t - pad.b);
  svg("line", { x1: pad.l, y1: height - pad.b, x2: width - pad.r, y2: height - pad.b, class: "axis" }, root);
  svg("line", { x1: pad.l, y1: pad.t, x2: pad.l, y2: height - pad.b, class: "axis" }, root);
  label(root, pad.l - 4, sy(y1) + 4, y1.toFixed(3), "end");
  label(root, pad.l - 4, sy(y0) + 4, y0.toFixed(3), "end");
  label(root, sx(x0), height - 10, `step ${x0}`, "start");
  label(root, sx(x1), height - 10, `step ${x1}`, "end");
  const d = points.map((p, i) => `${i ? "L" : "M"}${sx(p.step).toFixed(1)},${sy(p.loss).toFixed(1)}`).join("");
  svg("path", { d, class: "curve" }, root);
  return root;
}

// ----------------------------------------------------------------------- bisection

// The ArbiterReferee's per-game events: drawn in the ruling card, not as bisection rows.
const REFEREE_EVENTS = new Set(["RulingPending", "Voted", "RulingProposed", "Escalated", "Ruled", "ArbiterSlashed", "RulingExpired"]);

function bisection(g, width = 760) {
  // One row per move: the interval it leaves, drawn on the scale of its level's start.
  const rows = [];
  let scale = null;
  let level = null;
  for (const m of g.moves) {
    const a = m.args || {};
    if (m.name === "GameCreated" || m.name === "LevelEntered") {
      level = levelName(a.level);
      scale = { lo: Number(a.lo), hi: Number(a.hi), base: Number(a.base ?? 0) };
      rows.push({ kind: "enter", level, lo: scale.lo, hi: scale.hi, scale, text: `${level} level: [${a.lo}, ${a.hi}]${a.base ? ` at base ${a.base}` : ""}` });
    } else if (m.name === "Dissected" && scale) {
      // The OP level opens before its length is known: its first dissection sets the scale.
      if (scale.hi <= scale.lo) scale = { lo: Number(a.lo), hi: Number(a.hi), base: scale.base };
      const parts = (a.hashes || []).length + 1;
      rows.push({ kind: "dissect", level, lo: Number(a.lo), hi: Number(a.hi), parts, scale, text: `solver dissects [${a.lo}, ${a.hi}] into ${parts} parts` });
    } else if (m.name === "Selected" && scale) {
      rows.push({ kind: "select", level, lo: Number(a.lo), hi: Number(a.hi), scale, text: `challenger disputes part ${a.part}: [${a.lo}, ${a.hi}]` });
    } else if (m.name === "OpLevelOpened") {
      rows.push({ kind: "note", text: `operator chain of ${a.op_count} ops revealed` });
    } else if (m.name === "BundleRequested") {
      rows.push({ kind: "note", text: `disputed: step ${a.base}, operator ${a.position} — operand bundle requested` });
    } else if (REFEREE_EVENTS.has(m.name)) {
      if (m.name === "RulingPending") rows.push({ kind: "note", text: `ruling requested from a committee of ${a.committee_size} (see Ruling)` });
    } else {
      const detail = Object.entries(a).filter(([k]) => k !== "game_id").map(([k, v]) => `${k}=${v}`).join(" ");
      rows.push({ kind: "note", text: m.name === "GameResolved" ? `game resolved: ${g.status}` : `${m.name} ${detail}` });
    }
  }
  const rowH = 26, left = 300, barW = width - left - 20;
  const root = svg("svg", { width, height: rows.length * rowH + 10, class: "bisection", role: "img" });
  rows.forEach((r, i) => {
    const y = 6 + i * rowH;
    label(root, 4, y + 15, r.text);
    if (!r.scale) return;
    const span = Math.max(1, r.scale.hi - r.scale.lo);
    const x = (v) => left + ((v - r.scale.lo) / span) * barW;
    svg("rect", { x: left, y: y + 6, width: barW, height: 10, class: "span", opacity: 0.35 }, root);
    const cls = r.kind === "select" ? "pick" : "span";
    svg("rect", { x: x(r.lo), y: y + 4, width: Math.max(2, x(r.hi) - x(r.lo)), height: 14, class: cls }, root);
    if (r.kind === "dissect") {
      for (let k = 1; k < r.parts; k++) {
        const t = x(r.lo + ((r.hi - r.lo) * k) / r.parts);
        svg("line", { x1: t, y1: y + 2, x2: t, y2: y + 20, class: "tick" }, root);
      }
    }
  });
  return root;
}

// -------------------------------------------------------------------------- views

async function jobsView() {
  const [page, chain] = await Promise.all([api("/jobs?limit=50"), api("/chain").catch(() => null)]);
  const now = chain ? chain.chain_time : Math.floor(Date.now() / 1000);
  const details = await Promise.all(page.items.map((j) => api(`/jobs/${j.job_id}`).catch(() => null)));
  const rows = details.filter(Boolean).map((j) => {
    const t = j.terms;
    const p = j.progress;
    const progress = p ? `${p.step}/${p.total_steps}` : j.loss_curve.length ? "done" : "-";
    return `<tr class="job-row" data-job="${j.job_id}">
      <td><a href="#/jobs/${j.job_id}">${j.job_id}</a></td>
      <td><span class="status ${esc(j.status)}">${esc(j.status)}</span></td>
      <td>${short(j.submitter)}</td><td>${short(j.solver)}</td>
      <td class="num">${work(t.reward)}</td><td class="num">${work(t.solver_stake)}</td><td class="num">${work(t.challenger_bond)}</td>
      <td>${deadline(j.status, t, now)}</td>
      <td>${progress}</td><td>${j.disputes.length}</td></tr>`;
  });
  view.innerHTML = `<h2>Jobs</h2>
    <table id="jobs"><tr><th>job</th><th>status</th><th>submitter</th><th>solver</th><th>reward</th><th>stake</th><th>bond</th><th>next deadline</th><th>progress</th><th>disputes</th></tr>
    ${rows.join("") || '<tr><td colspan="10" class="muted">no jobs yet: submit one with <code>assay job submit</code></td></tr>'}</table>`;
}

async function jobView(id) {
  const j = await api(`/jobs/${id}`);
  const p = j.progress;
  const curve = j.loss_curve.length ? j.loss_curve : p ? p.curve : [];
  const pct = p && p.total_steps ? Math.min(100, (100 * p.step) / p.total_steps) : j.result ? 100 : 0;
  const rate = p && p.rate != null ? `${p.rate.toFixed(1)} ${esc(p.unit)}` : "-";
  const eta = p && p.eta_s != null ? `${Math.round(p.eta_s)} s` : "-";
  const cps = j.checkpoints.map((c) => `<tr><td>${c.index}</td><td>${c.step ?? "-"}</td>
      <td><a class="cid" href="/artifacts/${esc(c.cid)}" download><code>${esc(c.cid)}</code></a></td><td>${short(c.state_hash)}</td></tr>`);
  const disputes = j.disputes.map((d) => `<tr><td>${d.game_id ? `<a href="#/disputes/${d.game_id}">game ${d.game_id}</a>` : "-"}</td>
      <td>${short(d.challenger)}</td><td class="num">${work(d.bond)}</td>
      <td>${d.resolved ? (d.solver_won ? "solver won" : "solver lost") : "open"}</td></tr>`);
  const events = j.events.map((e) => `<tr><td>${e.block_number}</td><td>${esc(e.name)}</td><td class="mono">${esc(JSON.stringify(e.args))}</td></tr>`);
  view.innerHTML = `<h2>Job ${j.job_id} <span class="status ${esc(j.status)}">${esc(j.status)}</span></h2>
    <div class="cards">
      <div class="card">reward ${work(j.terms.reward)}<br>stake ${work(j.terms.solver_stake)}<br>bond ${work(j.terms.challenger_bond)}</div>
      <div class="card">solver ${short(j.solver)}<br>spec <code>${esc(j.spec_cid)}</code><br>${j.result ? `final state ${short(j.result.final_state_hash)}` : "no result yet"}</div>
      <div class="card" id="progress">progress ${p ? `step ${p.step} of ${p.total_steps}` : j.result ? "complete" : "-"}
        <div class="bar"><div style="width:${pct.toFixed(1)}%"></div></div>rate ${rate} · ETA ${eta}${p && p.loss != null ? ` · loss ${p.loss.toFixed(4)}` : ""}</div>
    </div>
    <h2>Loss</h2><div id="curve"></div>
    ${j.manifest_error ? `<p class="error">${esc(j.manifest_error)}</p>` : ""}
    <h2>Checkpoints</h2><table id="checkpoints"><tr><th>#</th><th>step</th><th>CID (download)</th><th>state hash</th></tr>${cps.join("") || '<tr><td colspan="4" class="muted">none yet</td></tr>'}</table>
    <h2>Disputes</h2><table id="disputes"><tr><th>game</th><th>challenger</th><th>bond</th><th>outcome</th></tr>${disputes.join("") || '<tr><td colspan="4" class="muted">none</td></tr>'}</table>
    <h2>Events</h2><table><tr><th>block</th><th>event</th><th>arguments</th></tr>${events.join("")}</table>`;
  document.getElementById("curve").appendChild(lossCurve(curve));
}

async function disputesView() {
  const games = await api("/disputes?limit=50");
  const rows = games.map((g) => `<tr><td><a href="#/disputes/${g.game_id}">${g.game_id}</a></td><td><a href="#/jobs/${g.job_id}">${g.job_id}</a></td>
    <td>${esc(g.status)}</td><td>${esc(g.level)}</td><td>[${g.interval.lo}, ${g.interval.hi}]</td><td>${g.rounds}</td></tr>`);
  view.innerHTML = `<h2>Dispute games</h2><table id="games"><tr><th>game</th><th>job</th><th>status</th><th>level</th><th>interval</th><th>rounds</th></tr>
    ${rows.join("") || '<tr><td colspan="6" class="muted">no disputes</td></tr>'}</table>`;
}

async function disputeView(id) {
  const g = await api(`/disputes/${id}`);
  const job = await api(`/jobs/${g.job_id}`).catch(() => null);
  const payouts = (job ? job.events : []).filter((e) => ["SolverSlashed", "DisputeResolved", "JobFinalized", "DisputeVoided"].includes(e.name))
    .map((e) => {
      const a = e.args;
      if (e.name === "SolverSlashed") return `<li>solver slashed: ${work(a.to_winner)} to ${short(a.winner)}, ${work(a.burned)} burned</li>`;
      if (e.name === "JobFinalized") return `<li>job finalized: ${work(a.payout)} to ${short(a.solver)}</li>`;
      return `<li>${esc(e.name)} ${esc(JSON.stringify(a))}</li>`;
    });
  const r = g.ruling;
  const finished = g.moves.some((m) => m.name === "GameResolved");
  const ruling = r && r.computed_hash
    ? `committee ruled solver ${r.solver_won ? "right" : "wrong"}${r.overturned ? " (proposal overturned)" : ""}; ${esc(g.status)}`
    : r && r.expired ? "committee could not decide: game voided"
    : r ? `${esc(r.phase)}: ${r.votes.length} of ${r.committee_size ?? "?"} voted`
    : finished ? esc(g.status) : "none yet";
  const c = g.clocks;
  view.innerHTML = `<h2>Dispute game ${g.game_id} on <a href="#/jobs/${g.job_id}">job ${g.job_id}</a></h2>
    <div class="cards">
      <div class="card">status <b id="game-status">${esc(g.status)}</b><br>level ${esc(g.level)} · interval [${g.interval.lo}, ${g.interval.hi}] (base ${g.interval.base})<br>arity ${g.arity} · ${g.rounds} rounds · ${g.op_count} ops</div>
      <div class="card">solver ${short(g.solver)} clock ${c.solver_s}s<br>challenger ${short(g.challenger)} clock ${c.challenger_s}s<br>turn: ${esc(c.turn)}${c.mover_remaining_s != null ? ` (${c.mover_remaining_s}s left)` : ""}</div>
      <div class="card">bundle ${g.bundle_cid ? `<a href="/artifacts/${esc(g.bundle_cid)}"><code>${esc(g.bundle_cid)}</code></a>` : "-"}<br>ruling: <span id="ruling">${ruling}</span></div>
    </div>
    <h2>Bisection</h2><div id="bisection"></div>
    ${r ? rulingCard(r) : ""}
    <h2>Payouts</h2><ul id="payouts">${payouts.join("") || '<li class="muted">none yet</li>'}</ul>`;
  document.getElementById("bisection").appendChild(bisection(g));
}

function rulingCard(r) {
  // The arbiter committee's votes and decision, from the ArbiterReferee's events.
  const votes = r.votes.map((v) => `<tr class="vote"><td><code>${esc(v.arbiter)}</code></td>
      <td><code>${esc(v.computed_hash)}</code></td><td class="num">${v.tally}</td>
      <td>${v.slashed != null ? `slashed ${work(v.slashed)}` : ""}</td></tr>`);
  const appeal = r.appellant
    ? `appealed by ${short(r.appellant)}, escalated to the whole committee until ${r.escalation_deadline}`
    : r.proposed_hash ? `proposed (solver ${r.proposed_solver_won ? "right" : "wrong"}); appeal open until ${r.appeal_deadline}`
    : r.computed_hash ? "decided at once by a majority (nothing to appeal)" : "no proposal yet";
  return `<h2>Ruling</h2>
    <div class="cards" id="ruling-card">
      <div class="card">phase <b id="ruling-phase">${esc(r.phase)}</b><br>committee of ${r.committee_size ?? "?"}, votes until ${r.voting_deadline ?? "-"}<br>${appeal}</div>
      <div class="card">computed hash <code id="computed-hash">${esc(r.computed_hash ?? "-")}</code><br>${r.computed_hash ? `solver ${r.solver_won ? "won" : "lost"}${r.overturned ? ", proposal overturned" : ""}` : r.expired ? "expired: game voided" : "not decided yet"}${r.slashed_total !== "0" ? `<br>arbiters slashed ${work(r.slashed_total)}` : ""}</div>
    </div>
    <table id="votes"><tr><th>arbiter</th><th>computed hash</th><th>tally</th><th></th></tr>
    ${votes.join("") || '<tr><td colspan="4" class="muted">no votes yet</td></tr>'}</table>`;
}

async function solversView() {
  const solvers = await api("/solvers");
  const rows = solvers.items.map((s) => `<tr><td><code>${esc(s.address)}</code></td><td class="num">${work(s.earned)}</td>
    <td class="num">${work(s.staked)}</td><td class="num">${s.balance != null ? work(s.balance) : "-"}</td><td class="num">${s.credit != null ? work(s.credit) : "-"}</td>
    <td class="num">${s.jobs.length}</td><td class="num">${s.active}</td><td class="num">${s.finalized}</td><td class="num">${s.slashed}</td>
    <td class="num">${s.timed_out}</td><td class="num">${s.disputes_won}</td><td class="num">${s.disputes_lost}</td></tr>`);
  view.innerHTML = `<h2>Solvers</h2><table id="solvers"><tr><th>solver</th><th>earned</th><th>staked</th><th>balance</th><th>withdrawable</th><th>jobs</th><th>active</th><th>finalized</th><th>slashed</th><th>timed out</th><th>disputes won</th><th>lost</th></tr>
    ${rows.join("") || '<tr><td colspan="12" class="muted">no solver has claimed a job yet</td></tr>'}</table>`;
}

// ------------------------------------------------------------------------- router

async function render() {
  const hash = location.hash.replace(/^#/, "") || "/";
  let m;
  try {
    if ((m = hash.match(/^\/jobs\/(\d+)$/))) await jobView(m[1]);
    else if ((m = hash.match(/^\/disputes\/(\d+)$/))) await disputeView(m[1]);
    else if (hash === "/disputes") await disputesView();
    else if (hash === "/solvers") await solversView();
    else await jobsView();
    document.body.dataset.rendered = hash;
  } catch (err) {
    view.innerHTML = `<p class="error">${esc(err.message)}</p>`;
    document.body.dataset.rendered = "error";
  }
}

async function header() {
  try {
    const c = await api("/chain");
    document.getElementById("chain").textContent = `chain ${c.chain_id} · market ${c.market.slice(0, 10)}… · ${c.token_name}`;
  } catch (err) {
    document.getElementById("chain").textContent = `chain unavailable: ${err.message}`;
  }
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(async () => { await render(); schedule(); }, 3000);
}

window.addEventListener("hashchange", () => { render(); schedule(); });
header();
render().then(schedule);
