// app.js - the edge's dashboard (served by the admin listener at
// /dashboard). Every 2 s it reads /status?format=json (pools and
// origins), /metrics (rates, computed from two scrapes) and the v4 API's
// health events (with the token the page is given when the API asks for
// one). Its one action: disable or enable an origin of a pool created
// through the API (an edit token). The functions above the DOM part are pure, and exported for
// the tests (tests/integration/test_dashboard.py runs them under node
// against a real edge's answers).
"use strict";

const REFRESH_MS = 2000;
const EVENTS_PATH = "/client/v4/user/load_balancing_analytics/events?per_page=20";

// ---- pure ---------------------------------------------------------------

// Prometheus text format 0.0.4 -> [{name, labels, value}].
function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    const body = m[3] || "";
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
    let l;
    while ((l = re.exec(body)) !== null)
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

function add(map, key, field, v) {
  if (!map[key]) map[key] = {};
  map[key][field] = (map[key][field] || 0) + v;
}

// Counters by load balancer: requests by status class, retries, and the
// duration histogram's buckets (le -> cumulative count).
function lbCounters(samples) {
  const lbs = {};
  for (const s of samples) {
    const lb = s.labels.lb;
    if (lb === undefined) continue;
    if (s.name === "meridian_requests_total") {
      add(lbs, lb, "total", s.value);
      add(lbs, lb, "c" + (s.labels.code || "other"), s.value);
    } else if (s.name === "meridian_retries_total") {
      add(lbs, lb, "retries", s.value);
    } else if (s.name === "meridian_request_duration_seconds_bucket") {
      if (!lbs[lb]) lbs[lb] = {};
      if (!lbs[lb].buckets) lbs[lb].buckets = {};
      lbs[lb].buckets[s.labels.le] = s.value;
    }
  }
  return lbs;
}

// The q-quantile (seconds) of the requests between two cumulative
// histograms ({le: count}, "+Inf" included), interpolated linearly inside
// its bucket; null when no request came.
function quantile(prev, cur, q) {
  const buckets = Object.keys(cur || {})
    .map((k) => [k === "+Inf" ? Infinity : Number(k),
                 (cur[k] || 0) - ((prev && prev[k]) || 0)])
    .sort((x, y) => x[0] - y[0]);
  if (!buckets.length) return null;
  const total = buckets[buckets.length - 1][1];
  if (!(total > 0)) return null;
  const want = q * total;
  let lo = 0, below = 0;
  for (const [le, n] of buckets) {
    if (n >= want) {
      if (le === Infinity) return lo;
      return lo + ((le - lo) * (want - below)) / Math.max(n - below, 1e-9);
    }
    lo = le;
    below = n;
  }
  return lo;
}

// Per second between two scrapes dt seconds apart, by load balancer.
function lbRates(prev, cur, dt) {
  const rows = [];
  for (const name of Object.keys(cur).sort()) {
    const c = cur[name], p = (prev && prev[name]) || {};
    const r = (f) => (dt > 0 ? Math.max((c[f] || 0) - (p[f] || 0), 0) / dt : 0);
    rows.push({
      lb: name || "(no load balancer)", // unknown hosts, bad requests
      rps: r("total"),
      c2xx: r("c2xx"), c3xx: r("c3xx"), c4xx: r("c4xx"), c5xx: r("c5xx"),
      retries: r("retries"),
      // Between the two scrapes only: none before the second.
      p50: prev ? quantile(p.buckets, c.buckets, 0.5) : null,
    });
  }
  return rows;
}

// Rate limits: total over the rate, keys counting, per rule.
function rateLimits(samples) {
  const rl = {};
  for (const s of samples) {
    if (s.name === "meridian_rate_limit_exceeded_total") add(rl, s.labels.rule, "over", s.value);
    else if (s.name === "meridian_rate_limit_keys") add(rl, s.labels.rule, "keys", s.value);
  }
  return rl;
}

// Tunnels: connectors taking requests, requests and failed ones, per tunnel.
function tunnels(samples) {
  const t = {};
  for (const s of samples) {
    if (s.name === "meridian_tunnel_connectors") add(t, s.labels.tunnel, "connectors", s.value);
    else if (s.name === "meridian_tunnel_requests_total") add(t, s.labels.tunnel, "requests", s.value);
    else if (s.name === "meridian_tunnel_request_errors_total") add(t, s.labels.tunnel, "errors", s.value);
  }
  return t;
}

// Firewall custom rules: {rule: {action, matches}}.
function wafRules(samples) {
  const w = {};
  for (const s of samples)
    if (s.name === "meridian_waf_rule_matches_total")
      w[s.labels.rule] = { action: s.labels.action, matches: s.value };
  return w;
}

// Managed rules (the CRS on ModSecurity): the rule count and the request
// counters by result, or null when they have never been on.
function wafManaged(samples) {
  const rules = single(samples, "meridian_waf_managed_rules");
  if (rules === null) return null;
  const m = { rules, inspected: 0, blocked: 0, detected: 0, body_partial: 0 };
  for (const s of samples)
    if (s.name === "meridian_waf_managed_requests_total" && s.labels.result in m)
      m[s.labels.result] = s.value;
  return m;
}

// A counter's rate per second between two scrapes dt seconds apart: 0
// before it was first seen (before undefined) or without an interval.
function perSecond(before, after, dt) {
  return dt > 0 && before !== undefined ? Math.max(after - before, 0) / dt : 0;
}

// One value of a metric without labels (or its first sample).
function single(samples, name) {
  const s = samples.find((x) => x.name === name);
  return s ? s.value : null;
}

// /status?format=json -> rows: a pool, then its origins.
function poolRows(status) {
  const rows = [];
  for (const p of (status && status.pools) || []) {
    rows.push({
      kind: "pool", name: p.id, address: "",
      health: p.enabled === false ? "disabled" : p.health,
      rtt: null, since: p.since,
      reason: p.healthy_origins + "/" + p.enabled_origins + " healthy, minimum " +
        p.minimum_origins + (p.monitor ? ", monitor " + p.monitor : ", no monitor"),
    });
    for (const o of p.origins || []) {
      rows.push({
        kind: "origin", name: o.name, pool: p.id, enabled: o.enabled !== false,
        address: o.address + (o.port ? ":" + o.port : ""),
        health: o.enabled === false ? "disabled" : o.health,
        rtt: o.rtt_ms, since: o.since, reason: o.reason || "",
      });
    }
  }
  return rows;
}

// The events API's result -> rows, newest first.
function eventRows(result) {
  const rows = [];
  for (const ev of result || []) {
    for (const p of ev.pool || []) {
      if (p.origins && p.origins.length) {
        for (const o of p.origins)
          rows.push({ time: ev.timestamp, pool: p.name, origin: o.name,
                      health: o.new_state, reason: o.failure_reason || "" });
      } else {
        rows.push({ time: ev.timestamp, pool: p.name, origin: "",
                    health: p.new_state, reason: p.reason || "" });
      }
    }
  }
  return rows;
}

// The message of a v4 API envelope that did not succeed.
function apiError(env) {
  const e = (env && env.errors) || [];
  return e.length ? e.map((x) => x.message).join("; ") : "the API refused";
}

// Drain or restore one origin of a pool created through the API: read the
// pool, set that origin's `enabled`, PATCH the origins back (a pool of the
// config file is read-only: the API says so, and that is the error).
// fetchFn is window.fetch (or node's); the result is the new pool.
async function setOriginEnabled(fetchFn, token, poolId, origin, enabled) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = "Bearer " + token;
  const call = async (path, init) => {
    const r = await fetchFn(path, Object.assign({ headers }, init || {}));
    const env = await r.json();
    if (!env.success) throw new Error(apiError(env));
    return env.result;
  };
  const accounts = await call("/client/v4/accounts");
  const base = "/client/v4/accounts/" + encodeURIComponent(accounts[0].id) +
    "/load_balancers/pools/" + encodeURIComponent(poolId);
  const pool = await call(base);
  if (!pool.origins.some((o) => o.name === origin))
    throw new Error("pool " + poolId + " has no origin " + origin);
  const origins = pool.origins.map((o) =>
    o.name === origin ? Object.assign({}, o, { enabled }) : o);
  return call(base, { method: "PATCH", body: JSON.stringify({ origins }) });
}

if (typeof module !== "undefined")
  module.exports = { parseMetrics, lbCounters, quantile, lbRates, rateLimits, wafRules, wafManaged, tunnels,
                     perSecond, single, poolRows, eventRows, apiError, setOriginEnabled };

// ---- DOM ----------------------------------------------------------------

if (typeof document !== "undefined") {
  let last = null; // the previous scrape: {t, lbs, waf, rl, tun}
  let token = sessionStorage.getItem("meridian-token") || "";

  const $ = (id) => document.getElementById(id);
  const fmt = (v, d) => (v === null || v === undefined ? "" : Number(v).toFixed(d));

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function fill(id, rows, render) {
    const tb = $(id).tBodies[0];
    const next = document.createElement("tbody");
    for (const r of rows) {
      const tr = document.createElement("tr");
      render(tr, r);
      next.appendChild(tr);
    }
    tb.replaceWith(next);
  }

  async function get(path, asJson, auth) {
    const headers = {};
    if (auth && token) headers.Authorization = "Bearer " + token;
    const ctl = new AbortController();
    const t = setTimeout(() => ctl.abort(), 5000);
    try {
      const r = await fetch(path, { headers, signal: ctl.signal, cache: "no-store" });
      if (r.status === 401 || r.status === 403) return { denied: true };
      if (!r.ok) throw new Error(path + ": HTTP " + r.status);
      return { body: asJson ? await r.json() : await r.text() };
    } finally {
      clearTimeout(t);
    }
  }

  async function refresh() {
    // One at a time: a slow answer must not land after a newer one.
    if (refresh.busy) return;
    refresh.busy = true;
    try {
      const [status, metrics, events] = await Promise.all([
        get("/status?format=json", true, false),
        get("/metrics", false, false),
        get(EVENTS_PATH, true, true),
      ]);
      const samples = parseMetrics(metrics.body);
      const now = performance.now() / 1000;
      const dt = last ? now - last.t : 0;
      const lbs = lbCounters(samples);
      const rates = lbRates(last && last.lbs, lbs, dt);
      const edge = samples.find((s) => s.name === "meridian_edge_info");
      $("edge").textContent = edge ? edge.labels.edge : "";
      $("summary").textContent =
        "config generation " + single(samples, "meridian_config_generation") +
        " · " + single(samples, "meridian_client_connections") + " client connections";
      fill("lbs", rates, (tr, r) => {
        cell(tr, r.lb);
        for (const f of ["rps", "c2xx", "c3xx", "c4xx", "c5xx"]) cell(tr, fmt(r[f], 1), "num");
        cell(tr, r.p50 === null ? "" : fmt(r.p50 * 1000, 2), "num");
        cell(tr, fmt(r.retries, 1), "num");
      });
      fill("pools", poolRows(status.body), (tr, r) => {
        tr.className = r.kind;
        cell(tr, r.name);
        cell(tr, r.address);
        cell(tr, r.health, r.health);
        cell(tr, fmt(r.rtt, 2), "num");
        cell(tr, r.since || "");
        cell(tr, r.reason, "reason");
        const td = cell(tr, "");
        if (r.kind === "origin") {
          const b = document.createElement("button");
          b.textContent = r.enabled ? "disable" : "enable";
          b.title = "pools of the config file are read-only here";
          b.addEventListener("click", async () => {
            const what = (r.enabled ? "Disable" : "Enable") + " origin " + r.name + " of pool " + r.pool + "?";
            if (!window.confirm(what)) return;
            const say = (m) => { $("notice").textContent = m; $("notice").hidden = false; };
            try {
              await setOriginEnabled(fetch, token, r.pool, r.name, !r.enabled);
              say(r.pool + "/" + r.name + ": " + (r.enabled ? "disabled" : "enabled"));
              refresh();
            } catch (e) {
              say(r.pool + "/" + r.name + ": " + e.message);
            }
          });
          td.appendChild(b);
        }
      });
      const waf = wafRules(samples);
      $("waf-section").hidden = Object.keys(waf).length === 0;
      fill("wafs", Object.keys(waf), (tr, name) => {
        const before = last && last.waf[name] ? last.waf[name].matches : undefined;
        cell(tr, name);
        cell(tr, waf[name].action);
        cell(tr, fmt(perSecond(before, waf[name].matches, dt), 1), "num");
        cell(tr, waf[name].matches, "num");
      });
      const wm = wafManaged(samples);
      $("wafm-section").hidden = wm === null;
      fill("wafm", wm ? ["managed"] : [], (tr) => {
        const before = (last && last.wm) || {};
        cell(tr, wm.rules, "num");
        for (const k of ["inspected", "blocked", "detected"])
          cell(tr, fmt(perSecond(before[k], wm[k], dt), 1), "num");
        cell(tr, wm.blocked, "num");
        cell(tr, wm.detected, "num");
        cell(tr, wm.body_partial, "num");
      });
      const rl = rateLimits(samples);
      $("rl-section").hidden = Object.keys(rl).length === 0;
      fill("rls", Object.keys(rl).sort(), (tr, name) => {
        const before = last && last.rl[name] ? last.rl[name].over : undefined;
        cell(tr, name);
        cell(tr, fmt(perSecond(before, rl[name].over, dt), 1), "num");
        cell(tr, rl[name].over, "num");
        cell(tr, rl[name].keys, "num");
      });
      const tun = tunnels(samples);
      $("tun-section").hidden = Object.keys(tun).length === 0;
      fill("tunnels", Object.keys(tun).sort(), (tr, name) => {
        const x = tun[name];
        const before = last && last.tun[name] ? last.tun[name] : {};
        cell(tr, name);
        cell(tr, x.connectors, x.connectors ? "healthy" : "unhealthy");
        cell(tr, fmt(perSecond(before.requests, x.requests, dt), 1), "num");
        cell(tr, fmt(perSecond(before.errors, x.errors, dt), 1), "num");
        cell(tr, x.requests, "num");
      });
      last = { t: now, lbs, waf, wm, rl, tun };
      $("token-form").hidden = !events.denied;
      if (!events.denied)
        fill("events", eventRows(events.body.result), (tr, r) => {
          cell(tr, r.time);
          cell(tr, r.pool);
          cell(tr, r.origin);
          cell(tr, r.health, r.health);
          cell(tr, r.reason, "reason");
        });
      $("error").hidden = true;
    } catch (e) {
      $("error").textContent = "refresh failed: " + e.message;
      $("error").hidden = false;
    } finally {
      refresh.busy = false;
    }
  }

  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = $("token").value.trim();
    sessionStorage.setItem("meridian-token", token);
    $("token").value = "";
    refresh();
  });
  refresh();
  setInterval(refresh, REFRESH_MS);
}
