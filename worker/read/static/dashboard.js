// The dashboard: reads /v1 from the browser and draws one page. No build step, no framework;
// uPlot (vendor/) draws the charts. Everything untrusted (model names, errors) goes in as text.
"use strict";
(() => {
  const TOKEN_KEY = "metrics-api-token";
  const PAGE_SIZE = 25;
  const DAY = 86400;
  const COLORS = ["#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7", "#a463f2", "#97bbf5", "#9c6b4e"];
  const authRequired = document.querySelector('meta[name="metrics-auth"]').content === "required";
  const view = document.getElementById("view");
  const filters = document.getElementById("filters");
  const pauseButton = document.getElementById("pause");
  const statusLine = document.getElementById("status");
  // For people and for the browser tests: the charts drawn and how many renders finished.
  const dashboard = (window.dashboard = { charts: {}, renders: 0, lastError: null });
  let timer = null;
  let rendering = null;

  class AuthError extends Error {}

  // -- formatting ------------------------------------------------------------------------------
  // People-sized numbers stay exact (2,134); from 10,000 on they are abbreviated (12.3k), the
  // exact figure in the title.
  function human(n) {
    if (n === null || n === undefined) return "–";
    const a = Math.abs(n);
    if (a < 1e4) return exact(n);
    for (const [v, s] of [[1e12, "T"], [1e9, "B"], [1e6, "M"], [1e3, "k"]]) {
      if (a >= v) {
        const x = n / v;
        return (x >= 100 ? x.toFixed(0) : x.toFixed(1).replace(/\.0$/, "")) + s;
      }
    }
    return String(n);
  }
  const exact = (n) => (n === null || n === undefined ? "–" : n.toLocaleString("en-US"));
  const share = (x) => (x === null || x === undefined ? "–" : (x * 100).toFixed(x < 0.1 && x > 0 ? 1 : 0) + "%");
  function utcTime(ts) {
    if (!ts) return "–";
    return new Date(ts).toISOString().replace("T", " ").replace(/\.\d+Z$/, "") + " UTC";
  }
  function duration(ms) {
    if (ms === null || ms === undefined) return "–";
    if (ms < 1000) return ms + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
    const m = Math.floor(ms / 60000);
    return m < 60 ? `${m} min ${Math.round((ms % 60000) / 1000)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
  }
  // USD arrives as an exact decimal string ("3.25"): shown with cents from $1, to four significant
  // digits below (a round may cost $0.0004); the exact string stays in the element's data-usd.
  function usd(text) {
    if (text === null || text === undefined) return "–";
    const x = Number(text);
    if (x === 0) return "$0";
    if (Math.abs(x) >= 1) return "$" + x.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    return "$" + Number(x.toPrecision(4)).toString();
  }
  const ms = (x) => (x === null || x === undefined ? "–" : x < 1000 ? `${x.toFixed(x < 10 && x !== 0 ? 1 : 0)} ms` : `${(x / 1000).toFixed(2)} s`);
  const isoDay = (d) => d.toISOString().slice(0, 10);
  const dayTs = (iso) => Date.parse(iso + "T00:00:00Z") / 1000;

  // -- DOM helpers: text only, never HTML from data -----------------------------------------------
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }
  function table(headers, rows, cls = "") {
    return el("table", { class: cls },
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
      el("tbody", {}, rows));
  }
  const num = (n, attrs = {}) => el("td", { class: "num", title: exact(n), ...attrs }, human(n));
  const empty = (text) => el("p", { class: "empty" }, text);
  function tile(key, label, value, source = "summary") {
    return el("div", { class: "tile", dataset: { key, value: String(value), source } },
      el("span", { class: "value", title: exact(value) }, human(value)), el("span", { class: "label" }, label));
  }
  // A USD figure: the value is the API's exact decimal string (data-value), never a float's rounding.
  function usdTile(key, label, value, source = "cost") {
    return el("div", { class: "tile usd", title: `$${value}`, dataset: { key, value: String(value), source } },
      el("span", { class: "value" }, usd(value)), el("span", { class: "label" }, label));
  }
  const usdCell = (value) => el("td", { class: "num usd", dataset: { usd: value === null ? "" : String(value) } }, usd(value));
  const msCell = (value, key) => el("td", { class: "num ms", dataset: { ms: value === null || value === undefined ? "" : String(value), key } }, ms(value));
  const link = (href, text) => el("a", { href, "data-nav": true }, text);
  // A session's status, and a "reconciled" tag beside it when the reconcile job closed it: no
  // session.completed came, its agent stopped saying it was alive (crashed, or no heartbeats).
  const RECONCILED = "closed by the reconcile job, not by a session.completed: its agent stopped saying it was alive; it ended at its last activity";
  function sessionStatus(s) {
    return el("span", {}, el("span", { class: `status ${s.status}` }, s.status),
      s.closed_by_reconcile ? [" ", el("span", { class: "status reconciled", title: `${RECONCILED} (reconciled ${utcTime(s.reconciled_at)})` }, "reconciled")] : null);
  }

  // -- the URL is the state ---------------------------------------------------------------------
  function defaults() {
    const end = new Date();
    const start = new Date(end.getTime() - 6 * DAY * 1000);
    return { start: isoDay(start), end: isoDay(end), refresh: "30" };
  }
  function route() {
    const q = Object.fromEntries(new URL(location.href).searchParams);
    const d = defaults();
    const state = { ...q, start: q.start || d.start, end: q.end || d.end, refresh: q.refresh || d.refresh };
    const path = location.pathname.replace(/\/+$/, "") || "/";
    const detail = path.match(/^\/sessions\/(.+)$/);
    state.page = detail ? "session" : { "/": "overview", "/sessions": "sessions", "/forwards": "forwards", "/pipeline": "pipeline", "/alerts": "alerts" }[path] || "missing";
    if (detail) state.sessionId = decodeURIComponent(detail[1]);
    return state;
  }
  function go(path, changes = {}, replace = false) {
    const url = new URL(path ?? location.pathname, location.origin);
    const current = new URL(location.href).searchParams;
    for (const [k, v] of current) url.searchParams.set(k, v);
    for (const [k, v] of Object.entries(changes)) {
      if (v === null || v === undefined || v === "") url.searchParams.delete(k);
      else url.searchParams.set(k, v);
    }
    history[replace ? "replaceState" : "pushState"](null, "", url);
    render();
  }

  // -- the API ----------------------------------------------------------------------------------
  async function api(path, params = {}) {
    const url = new URL(path, location.origin);
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
    const token = sessionStorage.getItem(TOKEN_KEY);
    const response = await fetch(url, { headers: token ? { Authorization: "Bearer " + token } : {} });
    if (response.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      throw new AuthError(token ? "That token was refused. Enter another one." : "This API needs a token.");
    }
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const detail = body && body.detail;
      const text = Array.isArray(detail) ? detail.map((d) => d.msg).join("; ") : detail || response.statusText;
      throw new Error(`${response.status} from ${url.pathname}: ${text}`);
    }
    return body;
  }
  function askToken(message) {
    const dialog = document.getElementById("token-dialog");
    const form = document.getElementById("token-form");
    document.getElementById("token-message").textContent = message;
    return new Promise((resolve) => {
      form.onsubmit = (event) => {
        event.preventDefault();
        const token = form.elements.token.value.trim();
        if (!token) return;
        sessionStorage.setItem(TOKEN_KEY, token);
        form.reset();
        dialog.close();
        resolve();
      };
      dialog.oncancel = (event) => event.preventDefault(); // Escape would leave the page empty
      if (!dialog.open) dialog.showModal();
      form.elements.token.focus();
    });
  }

  // -- charts -----------------------------------------------------------------------------------
  function dayRange(start, end) {
    const days = [];
    for (let t = dayTs(start); t <= dayTs(end); t += DAY) days.push(t);
    return days;
  }
  // Bars per UTC day (step DAY) or per UTC hour (step 3600); lines for figures that do not add up
  // (percentiles).
  function chart(name, container, days, series, { stacked = false, step = DAY, lines = false, format = null } = {}) {
    const width = Math.max(320, container.clientWidth - 8);
    const raw = series.map((s) => s.values);
    // Stacked bars: series k is drawn up to the sum of itself and every later one, tallest first,
    // so each shows its own band; the legend shows each series' own value.
    const drawn = stacked ? raw.map((_, k) => days.map((_, i) => raw.slice(k).reduce((a, r) => a + (r[i] || 0), 0))) : raw;
    const hourly = step < DAY;
    const label = (t) => (hourly ? new Date(t * 1000).toISOString().slice(11, 16) : isoDay(new Date(t * 1000)).slice(5));
    const opts = {
      width,
      height: 260,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
      scales: {
        x: { time: true, range: (u, min, max) => [min - step / 2, max + step / 2] },
        y: { range: (u, min, max) => [0, max > 0 ? max * 1.08 : 1] }, // bars stand on zero
      },
      axes: [
        // one tick per day (hour) at most, labelled by its UTC date (hour)
        { space: 48, incrs: hourly ? [3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600, DAY] : [DAY, 2 * DAY, 7 * DAY, 14 * DAY, 28 * DAY, 91 * DAY, 364 * DAY],
          values: (u, ticks) => ticks.map(label) },
        { values: (u, ticks) => ticks.map(format || human), size: 64 },
      ],
      legend: { live: true },
      series: [
        { label: hourly ? "UTC hour" : "UTC day", value: (u, ts) => (ts == null ? "–" : hourly ? utcTime(new Date(ts * 1000).toISOString()) : isoDay(new Date(ts * 1000))) },
        ...series.map((s, k) => ({
          label: s.label,
          stroke: COLORS[k % COLORS.length],
          fill: lines ? undefined : COLORS[k % COLORS.length] + "cc",
          width: lines ? 2 : 0,
          paths: lines ? undefined : uPlot.paths.bars({ size: [stacked ? 0.7 : 0.35, 60], align: 0 }),
          points: { show: lines },
          value: (u, v, si, di) => (di == null ? "–" : (format || exact)(raw[k][di])),
        })),
      ],
    };
    if (!stacked && !lines && series.length > 1) {
      // side by side: shift each series' bars a little (uPlot's bars path has no grouping)
      opts.series.slice(1).forEach((s, k) => {
        s.paths = uPlot.paths.bars({ size: [0.35, 40], align: k === 0 ? -1 : 1 });
      });
    }
    const box = el("div", { class: "chart", dataset: { chart: name } });
    container.append(box);
    const plot = new uPlot(opts, [days, ...drawn], box);
    dashboard.charts[name] = plot;
    return plot;
  }
  function perDay(start, end, rows, pick) {
    const byDay = new Map(rows.map((r) => [dayTs(r.date), r]));
    return dayRange(start, end).map((t) => (byDay.has(t) ? pick(byDay.get(t)) : 0));
  }
  function show(...nodes) {
    // a chart holds window listeners until destroyed: every redraw replaces them all
    for (const [name, plot] of Object.entries(dashboard.charts)) {
      plot.destroy();
      delete dashboard.charts[name];
    }
    view.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined));
  }
  function section(title, ...content) {
    return el("section", {}, el("h2", {}, title), ...content);
  }

  // -- pages ------------------------------------------------------------------------------------
  async function overview(q) {
    if (q.hours) return lastHours(q);
    const dates = { start_date: q.start, end_date: q.end };
    const [data, cost, latency] = await Promise.all([
      api("/v1/overview", dates), api("/v1/cost", dates), api("/v1/latency", dates)]);
    const days = dayRange(q.start, q.end);
    const costRanked = cost.by_model.filter((m) => Number(m.round_usd) > 0)
      .sort((a, b) => Number(b.round_usd) - Number(a.round_usd) || a.model.localeCompare(b.model));
    const costModels = costRanked.slice(0, 8);
    const s = data.summary;
    const rounds = data.daily.reduce((a, d) => a + d.total_rounds, 0);
    const tiles = sessionTiles(s, tile("total_rounds", "rounds", rounds, "daily"));
    const tokens = el("div");
    const activity = el("div");
    const tools = toolsTable(data.tools, "these dates");
    const mismatches = mismatchTable(s, "these dates");
    const costChart = el("div");
    show(
      el("h2", { class: "page" }, `Overview, ${data.start_date} to ${data.end_date} (UTC)`),
      costTiles(cost, days.length),
      el("p", { class: "hint" }, UNPRICED_HINT),
      section("Agents' cost per day by model (rounds, USD, stacked)", costChart),
      latencySection(latency),
      el("div", { class: "pair" },
        section("Top sessions by cost", topSessions(cost.top_sessions)),
        section("Top users by cost", topUsers(cost.by_user))),
      tiles,
      el("p", { class: "hint" }, SESSIONS_HINT),
      section("Tokens per day by model (stacked)", tokens),
      section("Rounds and tool calls per day", activity),
      section("Tool calls by tool", tools),
      section("Sync mismatches by reason", mismatches));
    const models = new Map();
    for (const d of data.daily) for (const [m, u] of Object.entries(d.model_breakdown)) models.set(m, (models.get(m) || 0) + u.total_tokens);
    const ranked = [...models.entries()].sort((a, b) => b[1] - a[1]).map(([m]) => m);
    const shown = ranked.slice(0, 8);
    const series = shown.map((m) => ({ label: m, values: perDay(q.start, q.end, data.daily, (d) => (d.model_breakdown[m] || {}).total_tokens || 0) }));
    if (ranked.length > shown.length) {
      const rest = new Set(ranked.slice(shown.length));
      series.push({ label: `${rest.size} other models`, values: perDay(q.start, q.end, data.daily, (d) =>
        Object.entries(d.model_breakdown).filter(([m]) => rest.has(m)).reduce((a, [, u]) => a + u.total_tokens, 0)) });
    }
    if (series.length) chart("tokens", tokens, days, series, { stacked: true });
    else tokens.append(empty("No sessions in these dates."));
    chart("activity", activity, days, [
      { label: "rounds", values: perDay(q.start, q.end, data.daily, (d) => d.total_rounds) },
      { label: "tool calls", values: perDay(q.start, q.end, data.daily, (d) => d.total_tool_calls) },
    ]);
    // Cost per day by model: the 8 costliest models from each day's round_usd_by_model, the rest as
    // the day's total less theirs.
    const usdPerDay = (pick) => {
      const byDay = new Map(cost.by_day.map((r) => [dayTs(r.day), pick(r)]));
      return days.map((t) => byDay.get(t) || 0);
    };
    const costSeries = costModels.map((m) => ({ label: m.model, values: usdPerDay((r) => Number(r.round_usd_by_model[m.model] || 0)) }));
    if (costRanked.length > costModels.length) {
      const all = usdPerDay((r) => Number(r.round_usd));
      costSeries.push({ label: `${costRanked.length - costModels.length} other models`,
        values: all.map((v, i) => Math.max(0, v - costSeries.reduce((a, c) => a + c.values[i], 0))) });
    }
    if (costSeries.length) chart("cost", costChart, days, costSeries, { stacked: true, format: usd });
    else costChart.append(empty(Number(cost.unpriced_rounds) ? "No priced rounds in these dates (only unpriced ones)." : "No priced rounds in these dates."));
  }

  // The summary's tiles (sessions by status, tokens, tool calls, ...), the rounds tile among them.
  function sessionTiles(s, roundsTile) {
    return el("div", { class: "tiles activity" },
      tile("total_sessions", "sessions", s.total_sessions),
      tile("active_sessions", "active (running)", s.active_sessions),
      tile("completed_sessions", "completed", s.completed_sessions),
      tile("awaiting_response_sessions", "awaiting response", s.awaiting_response_sessions),
      tile("error_sessions", "error", s.error_sessions),
      tile("cancelled_sessions", "cancelled", s.cancelled_sessions),
      tile("reconciled_sessions", "closed by reconcile", s.reconciled_sessions),
      roundsTile,
      tile("total_tokens.prompt_tokens", "prompt tokens", s.total_tokens.prompt_tokens),
      tile("total_tokens.completion_tokens", "completion tokens", s.total_tokens.completion_tokens),
      tile("total_tool_calls", "tool calls", s.total_tool_calls),
      tile("prompt_cached_tool_outputs", "cached tool outputs", s.prompt_cached_tool_outputs),
      tile("total_compression_events", "compressions", s.total_compression_events),
      tile("total_tokens_saved", "tokens saved", s.total_tokens_saved),
      tile("total_sync_mismatches", "sync mismatches", s.total_sync_mismatches));
  }
  const SESSIONS_HINT = "sessions = active + completed + awaiting response + error + cancelled + closed by reconcile: a session the reconcile job closed (no session.completed came) counts there alone";
  function toolsTable(rows, what) {
    return rows.length
      ? table(["tool", "calls", "succeeded", "failed", "unfinished", "failure share"],
        rows.map((t) => el("tr", { dataset: { tool: t.tool_name } },
          el("td", {}, t.tool_name), num(t.calls), num(t.succeeded), num(t.failed), num(t.unfinished),
          el("td", { class: "share" },
            el("span", { class: "bar", style: `width:${Math.round((t.failure_share || 0) * 100)}%` }),
            el("span", {}, share(t.failure_share))))), "tools")
      : empty(`No tool calls in ${what}.`);
  }
  function mismatchTable(s, what) {
    const reasons = Object.entries(s.sync_mismatch_breakdown).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    return reasons.length
      ? table(["reason", "mismatches"], reasons.map(([reason, n]) => el("tr", {}, el("td", {}, reason), num(n))), "mismatches")
      : empty(`No sync mismatches in ${what}.`);
  }

  // -- cost and latency (the overview's first screen) ----------------------------------------------
  const UNPRICED_HINT = "Unpriced: a completed round or forward whose model no price list knows, counted here and never summed as $0. "
    + "Forwards are the proxy's requests, shown apart: a forward made for a round may be the same model call.";
  // Per day over whole days, or per hour over the last hours (unit "hour").
  function costTiles(cost, n, unit = "day") {
    return el("div", { class: "tiles cost" },
      usdTile("round_usd", "agents' cost (rounds)", cost.round_usd),
      usdTile(`per_${unit}`, `per ${unit} (over ${n} ${n === 1 ? unit : unit + "s"})`, String(Number(cost.round_usd) / n)),
      tile("unpriced_rounds", "unpriced rounds", cost.unpriced_rounds, "cost"),
      tile("priced_rounds", "priced rounds", cost.priced_rounds, "cost"),
      usdTile("forward_usd", "forwarded requests' cost", cost.forward_usd),
      tile("unpriced_forwards", "unpriced forwards", cost.unpriced_forwards, "cost"));
  }
  // Round duration and time to first token per model, as /v1/latency has them (ms, from the
  // latency histograms: each within 1.083% of the exact percentile).
  function latencySection(latency, what = "these dates") {
    const pcts = ["p50", "p95", "p99"];
    return section("Model latency (round duration; time to first token)", latency.models.length
      ? table(["model", "rounds measured", ...pcts.map((p) => `${p}`), "TTFT measured", ...pcts.map((p) => `TTFT ${p}`)],
        latency.models.map((m) => el("tr", { dataset: { model: m.model } }, el("td", {}, m.model),
          num(m.duration.count), pcts.map((p) => msCell(m.duration[p], `duration.${p}`)),
          num(m.time_to_first_token.count), pcts.map((p) => msCell(m.time_to_first_token[p], `time_to_first_token.${p}`)))),
        "latency")
      : empty(`No completed rounds in ${what}.`),
      el("p", { class: "hint" }, "Percentiles from the latency histograms: each within 1.083% of the exact one. A round's duration runs from its start to its completion; one the reconcile job closed is not counted."));
  }
  function topSessions(rows, what = "these dates") {
    return rows.length
      ? table(["session", "user", "model", "started", "cost", "unpriced rounds"],
        rows.map((r) => el("tr", { dataset: { session: r.session_id } },
          el("td", {}, link(`/sessions/${encodeURIComponent(r.session_id)}${location.search}`, r.session_id)),
          el("td", {}, r.user_id || "–"), el("td", {}, r.model || "–"), el("td", {}, utcTime(r.started_at)),
          usdCell(r.cost_usd), num(r.unpriced_rounds))), "top-sessions")
      : empty(`No priced or unpriced sessions in ${what}.`);
  }
  function topUsers(rows, what = "these dates") {
    return rows.length
      ? table(["user", "cost", "unpriced rounds"],
        rows.map((r) => el("tr", { dataset: { user: r.user_id } }, el("td", {}, r.user_id), usdCell(r.cost_usd), num(r.unpriced_rounds))),
        "top-users")
      : empty(`No sessions with a user in ${what}.`);
  }

  // The last 1, 6 or 24 UTC hours (?hours=N): the summary, tools and the per-hour series from
  // /v1/overview?hours=N (the current hour so far last; its cost per hour from round_hourly), cost
  // from /v1/cost?hours=N, latency from /v1/latency?hours=N: every figure of what started in those hours.
  async function lastHours(q) {
    const hours = Number(q.hours);
    const [data, spend, latency] = await Promise.all([
      api("/v1/overview", { hours }), api("/v1/cost", { hours }), api("/v1/latency", { hours })]);
    const series = data.series;
    const pts = series.points;
    const xs = pts.map((p) => Date.parse(p.hour) / 1000);
    const sum = (pick) => pts.reduce((a, p) => a + pick(p), 0);
    const activity = el("div");
    const tokens = el("div");
    const cost = el("div");
    const latencyChart = el("div");
    show(
      el("h2", { class: "page" }, `Last ${hours === 1 ? "hour" : hours + " hours"}, ${utcTime(series.start)} to ${utcTime(series.end)}`),
      costTiles(spend, hours, "hour"),
      el("p", { class: "hint" }, UNPRICED_HINT),
      el("div", { class: "tiles hourly" },
        tile("rounds", "rounds", sum((p) => p.rounds), "series"),
        tile("errors", "errors", sum((p) => p.errors), "series"),
        tile("tokens.prompt_tokens", "prompt tokens", sum((p) => p.tokens.prompt_tokens), "series"),
        tile("tokens.completion_tokens", "completion tokens", sum((p) => p.tokens.completion_tokens), "series")),
      section("Rounds and errors per UTC hour", activity),
      section("Tokens per UTC hour (stacked)", tokens),
      section("Rounds' cost per UTC hour (USD; unpriced rounds are counted above, never $0)", cost),
      section("Round duration per UTC hour (p50, p95, p99)", latencyChart),
      latencySection(latency, "these hours"),
      el("div", { class: "pair" },
        section("Top sessions by cost", topSessions(spend.top_sessions, "these hours")),
        section("Top users by cost", topUsers(spend.by_user, "these hours"))),
      section("Sessions started in these hours", sessionTiles(data.summary, null)),
      el("p", { class: "hint" }, SESSIONS_HINT + ". Sync mismatches are kept per UTC date: those of the dates these hours touch."),
      section("Tool calls by tool", toolsTable(data.tools, "these hours")),
      section("Sync mismatches by reason (of the UTC dates these hours touch)", mismatchTable(data.summary, "those dates")));
    chart("series-activity", activity, xs, [
      { label: "rounds", values: pts.map((p) => p.rounds) }, { label: "errors", values: pts.map((p) => p.errors) }], { step: 3600 });
    chart("series-tokens", tokens, xs, [
      { label: "prompt", values: pts.map((p) => p.tokens.prompt_tokens) },
      { label: "completion", values: pts.map((p) => p.tokens.completion_tokens) }], { step: 3600, stacked: true });
    chart("series-cost", cost, xs, [{ label: "USD", values: pts.map((p) => Number(p.cost_usd)) }], { step: 3600, format: usd });
    chart("series-latency", latencyChart, xs, ["p50", "p95", "p99"].map((k) => (
      { label: k, values: pts.map((p) => p.duration[k]) })), { step: 3600, lines: true, format: ms });
  }

  // Paged by keyset, as the API pages: ?before=<id> is the page older than that session, ?after=<id>
  // the page newer; one row more than a page says whether there is a page beyond it.
  async function sessions(q) {
    const dates = { start_date: q.start, end_date: q.end };
    const list = (cursor) => api("/v1/sessions", { ...dates, model: q.model, limit: PAGE_SIZE + 1, ...cursor });
    let [rows, models] = await Promise.all([list({ before: q.before, after: q.after }), api("/v1/models", dates)]);
    if (q.after && rows.length <= PAGE_SIZE) { // nothing newer than this page: it is the latest page
      const url = new URL(location.href);
      url.searchParams.delete("after");
      history.replaceState(null, "", url);
      q = { ...q, after: undefined };
      rows = await list({});
    }
    const select = el("select", { name: "model" }, el("option", { value: "" }, "every model"),
      models.map((m) => el("option", { value: m.model, selected: m.model === q.model }, `${m.model} (${exact(m.sessions)})`)));
    if (q.model && !models.some((m) => m.model === q.model)) select.append(el("option", { value: q.model, selected: true }, q.model));
    select.onchange = () => go(null, { model: select.value, before: null, after: null });
    const beyond = rows.length > PAGE_SIZE;
    const shown = q.after ? rows.slice(-PAGE_SIZE) : rows.slice(0, PAGE_SIZE);
    const newer = Boolean(q.before || q.after);
    const older = q.after || beyond;
    const pager = el("p", { class: "pager" },
      newer ? el("button", { type: "button", "data-action": "latest" }, "« Latest") : null,
      newer ? el("button", { type: "button", "data-action": "newer" }, "‹ Newer") : null,
      newer ? " " : " Latest sessions ",
      older && shown.length ? el("button", { type: "button", "data-action": "older" }, "Older ›") : null);
    pager.onclick = (e) => {
      const action = e.target.dataset && e.target.dataset.action;
      if (action === "latest") go(null, { before: null, after: null });
      if (action === "newer") go(null, { before: null, after: shown[0].session_id });
      if (action === "older") go(null, { after: null, before: shown[shown.length - 1].session_id });
    };
    show(
      el("h2", { class: "page" }, `Sessions started ${q.start} to ${q.end} (UTC), latest first`),
      el("p", { class: "toolbar" }, el("label", {}, "Model ", select)),
      shown.length
        ? table(["session", "model", "status", "started", "duration", "rounds", "tokens", "tool calls", "compressions", "messages"],
          shown.map((s) => el("tr", { dataset: { session: s.session_id, reconciled: String(s.closed_by_reconcile) } },
            el("td", {}, link(`/sessions/${encodeURIComponent(s.session_id)}${location.search}`, s.session_id)),
            el("td", {}, s.model), el("td", {}, sessionStatus(s)),
            el("td", {}, utcTime(s.started_at)), el("td", { class: "num" }, duration(s.duration_ms)),
            num(s.total_rounds), num(s.total_token_usage.total_tokens), num(s.tool_call_count),
            num(s.total_compression_events), num(s.message_count))), "sessions")
        : empty("No sessions match these filters."),
      pager);
  }

  // A round's tool calls (or those whose round is not stored: then each names its round), each with
  // its id and start time on hover, as the CLI's tool-call table has them.
  function toolCalls(calls) {
    return el("ul", { class: "calls" }, calls.map((c) => el("li", { title: `${c.tool_call_id} · started ${utcTime(c.started_at)}`, dataset: { call: c.tool_call_id } },
      el("span", { class: `status ${c.success === null ? "running" : c.success ? "success" : "error"}` },
        c.success === null ? "unfinished" : c.success ? "ok" : "failed"),
      ` ${c.tool_name || "(not started)"} · ${duration(c.duration_ms)}`,
      c.round_id ? ` · round ${c.round_id}` : null,
      c.error ? el("span", { class: "error-text" }, ` · ${c.error}`) : null)));
  }

  // A round's usage parts (None: not reported), its cost: USD when priced, "unpriced" when no
  // price list knows its model (never $0), "–" while not priceable yet.
  function usageParts(r) {
    const parts = [r.cache_read_tokens, r.cache_write_tokens, r.reasoning_tokens];
    return el("td", { class: "num parts", dataset: { parts: parts.map((p) => (p === null ? "" : String(p))).join(",") } },
      parts.every((p) => p === null) ? "–" : `${exact(r.cache_read_tokens)} / ${exact(r.cache_write_tokens)}, ${exact(r.reasoning_tokens)}`);
  }
  function roundCost(r) {
    if (r.unpriced) return el("td", { class: "num usd unpriced", dataset: { usd: "", unpriced: "true" }, title: "no price list knows this model" }, "unpriced");
    return usdCell(r.cost_usd);
  }

  // Everything `metrics-worker query session` shows: the session's figures, its rounds (model,
  // tokens, cached tool outputs, compressions, error) and every tool call.
  async function session(q) {
    const d = await api(`/v1/sessions/${encodeURIComponent(q.sessionId)}`);
    const s = d.session;
    const rows = d.rounds.map((r, i) => el("tr", { dataset: { round: r.round_id } },
      el("td", { class: "num" }, i + 1), el("td", {}, r.round_id), el("td", {}, r.model || "–"),
      el("td", {}, el("span", { class: `status ${r.status}` }, r.status)),
      el("td", {}, utcTime(r.started_at)), el("td", { class: "num" }, duration(r.duration_ms)),
      num(r.token_usage.prompt_tokens), num(r.token_usage.completion_tokens), num(r.token_usage.total_tokens),
      usageParts(r), msCell(r.time_to_first_token_ms, "ttft"), roundCost(r), el("td", {}, r.provider || "–"),
      num(r.prompt_cached_tool_outputs, { dataset: { cached: String(r.prompt_cached_tool_outputs) } }),
      el("td", { class: "num" }, r.compression_count ? `${r.compression_count} (saved ${human(r.tokens_saved)})` : "–"),
      el("td", {}, r.error ? el("span", { class: "error-text" }, r.error) : null, r.tool_calls.length ? toolCalls(r.tool_calls) : null)));
    const byTool = Object.entries(s.tool_breakdown).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    show(
      el("p", {}, link(`/sessions${location.search}`, "‹ All sessions")),
      el("h2", { class: "page" }, `Session ${s.session_id}`),
      el("div", { class: "tiles" },
        tile("rounds", "rounds", s.total_rounds, "detail"), tile("messages", "messages", s.message_count, "detail"),
        tile("prompt_tokens", "prompt tokens", s.total_token_usage.prompt_tokens, "detail"),
        tile("completion_tokens", "completion tokens", s.total_token_usage.completion_tokens, "detail"),
        tile("tokens", "tokens", s.total_token_usage.total_tokens, "detail"),
        tile("tool_calls", "tool calls", s.tool_call_count, "detail"),
        tile("cached_tool_outputs", "cached tool outputs", s.prompt_cached_tool_outputs, "detail"),
        tile("compressions", "compressions", s.total_compression_events, "detail"),
        tile("saved", "tokens saved", s.total_tokens_saved, "detail"),
        usdTile("cost_usd", "cost (its rounds)", s.cost_usd, "detail"),
        tile("unpriced_rounds", "unpriced rounds", s.unpriced_rounds, "detail")),
      el("p", {}, sessionStatus(s), ` · user ${s.user_id || "not given"} · model ${s.model} · started ${utcTime(s.started_at)} · ${s.completed_at ? (s.closed_by_reconcile ? "last activity " : "completed ") + utcTime(s.completed_at) : "not completed"} · duration ${duration(s.duration_ms)}`),
      s.closed_by_reconcile
        ? el("p", { class: "hint", id: "reconciled" }, `Closed by reconcile at ${utcTime(s.reconciled_at)}: no session.completed came and its agent stopped saying it was alive (crashed, or a producer without heartbeats), so it ended at its last activity. A later event reopens it.`)
        : null,
      byTool.length
        ? section("Tool calls by tool", table(["tool", "calls"],
          byTool.map(([name, calls]) => el("tr", {}, el("td", {}, name), num(calls))), "by-tool"))
        : null,
      section(`Rounds in time order (${d.rounds.length})`, d.rounds.length
        ? table(["#", "round", "model", "status", "started", "duration", "prompt", "completion", "total", "cache read / write, reasoning", "TTFT", "cost", "provider", "cached tool outputs", "compressions", "error and tool calls"], rows, "rounds")
        : empty("No rounds yet.")),
      section(`Requests forwarded for this session (${d.forwards.length})`, d.forwards.length
        ? table(["started", "endpoint", "model", "round", "status", "status code", "duration", "TTFT", "tokens", "error"],
          d.forwards.map((f) => el("tr", { dataset: { forward: f.forward_id, status: f.status } },
            el("td", { title: f.forward_id }, utcTime(f.started_at)), el("td", {}, f.endpoint), el("td", {}, f.model),
            el("td", {}, f.round_id || "–"), el("td", {}, el("span", { class: `status ${f.status}` }, f.status)),
            el("td", { class: "num code" }, f.status_code === null ? "–" : String(f.status_code)),
            el("td", { class: "num" }, duration(f.duration_ms)), msCell(f.time_to_first_token_ms, "ttft"),
            num(f.token_usage ? f.token_usage.total_tokens : null), el("td", { class: "error-text" }, f.error || ""))), "session-forwards")
        : empty("No requests were forwarded for this session.")),
      d.tool_calls_without_round.length
        ? section("Tool calls whose round is not stored", toolCalls(d.tool_calls_without_round)) : null);
  }

  // Every outcome the forward summary counts, so that the parts add up to the requests.
  const OUTCOMES = [
    ["successful_requests", "successful", "successful"],
    ["failed_requests", "failed (error)", "failed"],
    ["timed_out_requests", "timed out", "timed_out"],
    ["pending_requests", "pending", "pending"],
  ];
  const REQUEST_LIMITS = ["50", "200", "1000"];

  function forwardRequests(q, rows, limit) {
    const select = el("select", { name: "requests" },
      REQUEST_LIMITS.map((n) => el("option", { value: n, selected: n === limit }, `latest ${n}`)));
    select.onchange = () => go(null, { requests: select.value === REQUEST_LIMITS[0] ? null : select.value }, true);
    return section(`Requests, latest first (${exact(rows.length)} shown)`,
      el("p", { class: "toolbar" }, el("label", {}, "Show ", select)),
      rows.length
        ? table(["started", "endpoint", "model", "stream", "status", "status code", "duration", "tokens", "error"],
          rows.map((r) => el("tr", { dataset: { forward: r.forward_id, status: r.status } },
            el("td", { title: r.forward_id }, utcTime(r.started_at)), el("td", {}, r.endpoint), el("td", {}, r.model),
            el("td", {}, r.is_stream ? "yes" : "no"), el("td", {}, el("span", { class: `status ${r.status}` }, r.status)),
            el("td", { class: "num code" }, r.status_code === null ? "–" : String(r.status_code)),
            el("td", { class: "num" }, duration(r.duration_ms)),
            num(r.token_usage ? r.token_usage.total_tokens : null),
            el("td", { class: "error-text" }, r.error || ""))), "requests")
        : empty("No forwarded requests in these dates."));
  }

  async function forwards(q) {
    const dates = { start_date: q.start, end_date: q.end };
    const days = dayRange(q.start, q.end);
    const limit = REQUEST_LIMITS.includes(q.requests) ? q.requests : REQUEST_LIMITS[0];
    const [summary, endpoints, daily, requests] = await Promise.all([
      api("/v1/forward/summary", dates), api("/v1/forward/endpoints", dates),
      api("/v1/forward/daily", { days: days.length, end_date: q.end }),
      api("/v1/forward/requests", { ...dates, limit }),
    ]);
    const perDayChart = el("div");
    show(
      el("h2", { class: "page" }, `Forwarded requests ${q.start} to ${q.end} (UTC)`),
      el("div", { class: "tiles" },
        tile("total_requests", "requests", summary.total_requests, "forward"),
        OUTCOMES.map(([key, label]) => tile(key, label, summary[key], "forward-outcome")),
        tile("total_tokens.total_tokens", "tokens", summary.total_tokens.total_tokens, "forward"),
        el("div", { class: "tile" }, el("span", { class: "value" }, duration(summary.avg_duration_ms)), el("span", { class: "label" }, "average duration"))),
      el("p", { class: "hint" }, "requests = successful + failed + timed out + pending (started, not completed yet)"),
      section("Per endpoint", endpoints.length
        ? table(["endpoint", "requests", "success", "error", "timeout", "pending", "average duration", "tokens"],
          endpoints.map((e) => el("tr", {}, el("td", {}, e.endpoint), num(e.requests), num(e.successful), num(e.failed),
            num(e.timed_out), num(e.pending), el("td", { class: "num" }, duration(e.avg_duration_ms)), num(e.tokens.total_tokens))),
          "endpoints")
        : empty("No forwarded requests in these dates.")),
      section("Requests per day by outcome (stacked)", perDayChart),
      forwardRequests(q, requests, limit));
    chart("forwards", perDayChart, days, OUTCOMES.map(([, label, field]) => (
      { label, values: perDay(q.start, q.end, daily, (d) => d[field]) })), { stacked: true });
  }

  // The applied rate needs two polls: the previous one is kept here (worker/status.py,
  // applied_per_second: entries acknowledged meanwhile, less the dead letters made meanwhile).
  let previousPipeline = null;
  function appliedPerSecond(before, after) {
    if (!before || before.group !== after.group || before.acknowledged === null || after.acknowledged === null) return null;
    const seconds = after.read_at - before.read_at;
    if (seconds <= 0 || seconds > 600) return null; // a poll from a visit long ago is no "now"
    const applied = after.acknowledged - before.acknowledged - Math.max(0, after.dead_letters - before.dead_letters);
    return Math.max(0, applied) / seconds;
  }
  dashboard.appliedPerSecond = appliedPerSecond; // the browser test holds it to worker/status.py's rule
  const perSecond = (r) => (r === null ? "–" : (r < 10 ? r.toFixed(1).replace(/\.0$/, "") : human(Math.round(r))) + "/s");
  const age = (seconds) => duration(Math.round(seconds * 1000));
  function figure(key, label, value, text, title) {
    return el("div", { class: "tile", dataset: { key, value: String(value), source: "pipeline" } },
      el("span", { class: "value", title }, text), el("span", { class: "label" }, label));
  }
  function drawPipeline(p, rate) {
    const where = p.dead_letter_streams.length === 1 ? p.dead_letter_streams[0] : `${p.dead_letter_streams.length} dead-letter streams`;
    const unknown = () => el("td", { class: "num", title: "Redis < 7 does not count them" }, "unknown");
    const unrouted = p.unrouted === 0 ? null : el("p", { class: "alert", id: "unrouted", dataset: { value: String(p.unrouted) } },
      `${p.unrouted === null ? "Some entries" : exact(p.unrouted) + (p.unrouted === 1 ? " entry" : " entries")} in ${p.base_stream}, the base stream, that no worker reads: `
      + `workers read only its ${p.streams.length} shards, so a producer wrote these without the routing rule. `
      + "Route each event to its shard (contract/routing.py; README, \"From any language\"); to apply the ones already there, "
      + "run metrics-worker run --shards 1 --burst once, with the same stream and group.");
    show(
      el("h2", { class: "page" }, `Pipeline health (consumer group ${p.group}), now`),
      unrouted,
      el("div", { class: "tiles" },
        figure("applied_per_second", "applied per second", rate, perSecond(rate),
          "entries acknowledged between two reads, less the dead letters made meanwhile"),
        figure("lag_seconds", "oldest waiting entry (lag)", p.lag_seconds, age(p.lag_seconds),
          "age of the oldest entry not yet applied: pending, or not yet read by any worker"),
        p.undelivered === null ? figure("undelivered", "undelivered", null, "some", "Redis < 7 does not count them")
          : tile("undelivered", "undelivered", p.undelivered, "pipeline"),
        tile("pending", "pending (read, not yet acknowledged)", p.pending, "pipeline"),
        tile("dead_letters", "dead letters", p.dead_letters, "pipeline")),
      section("Streams", table(["stream", "undelivered", "pending", "oldest waiting", "acknowledged", "kept in stream", "consumers"],
        p.streams.map((s) => el("tr", {}, el("td", {}, s.stream),
          s.undelivered === null ? unknown() : num(s.undelivered), num(s.pending),
          el("td", { class: "num" }, age(s.lag_seconds)),
          s.acknowledged === null ? unknown() : num(s.acknowledged),
          num(s.length, { title: `${exact(s.length)} entries kept until trimmed: not a count of events received` }),
          el("td", {}, s.consumers.length
            ? el("ul", { class: "calls" }, s.consumers.map((c) => el("li", {}, `${c.name}: ${exact(c.pending)} pending, idle ${duration(c.idle_ms)}`)))
            : "none"))), "streams")),
      section(`Dead letters: ${exact(p.dead_letters)} in ${where}`, p.latest_dead_letters.length
        ? table(["id", "failed at", "from stream", "deliveries", "reason"],
          p.latest_dead_letters.map((l) => el("tr", {}, el("td", {}, l.id), el("td", {}, utcTime(l.failed_at)),
            el("td", {}, l.stream), num(l.deliveries), el("td", { class: "error-text" }, l.reason))), "dead-letters")
        : empty("None.")));
  }

  async function pipeline() {
    let p = await api("/v1/pipeline");
    if (!p.configured) {
      show(el("h2", { class: "page" }, "Pipeline health"),
        el("p", { class: "empty", id: "not-configured" }, "Not configured: metrics-api was started without REDIS_URL, so it cannot read the streams."));
      return;
    }
    let rate = appliedPerSecond(previousPipeline, p);
    drawPipeline(p, rate);
    if (rate === null && p.acknowledged !== null) {
      // no earlier poll to compare with: a second read a moment later gives the rate now
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const later = await api("/v1/pipeline");
      rate = appliedPerSecond(p, later);
      p = later;
      drawPipeline(p, rate);
    }
    previousPipeline = p;
  }

  const PAGES = { overview, sessions, session, forwards, pipeline,
    missing: async () => show(el("p", { class: "empty" }, "No such page."), link("/", "Overview")) };
  // Pages of their own files (alerts.js), drawn with these helpers.
  const kit = { el, table, section, show, api, utcTime, empty, tile, num, human, exact };
  for (const [name, draw] of Object.entries(window.dashboardPages || {})) PAGES[name] = (q) => draw(kit, q);

  // -- the loop ---------------------------------------------------------------------------------
  // The pages the dates filter; the others (one session, the pipeline now) hide the date inputs.
  const DATED = new Set(["overview", "sessions", "forwards"]);
  function syncControls(q) {
    // the last hours are the overview's: the other pages read whole days
    document.getElementById("range").hidden = q.page !== "overview";
    document.getElementById("dates").hidden = !DATED.has(q.page) || (q.page === "overview" && !!q.hours);
    const range = filters.elements.range;
    if (q.hours && ![...range.options].some((o) => o.value === q.hours)) range.append(el("option", { value: q.hours }, `last ${q.hours} hours`));
    range.value = q.hours || "";
    filters.elements.start.value = q.start;
    filters.elements.end.value = q.end;
    filters.elements.refresh.value = q.refresh === "0" ? filters.elements.refresh.value : q.refresh;
    pauseButton.textContent = q.paused ? "Resume" : "Pause";
    // the nav keeps the dates and the refresh; a page's position or a model belongs to one page
    const here = new URLSearchParams(location.search);
    const keep = new URLSearchParams();
    for (const k of ["start", "end", "hours", "refresh", "paused"]) if (here.has(k)) keep.set(k, here.get(k));
    for (const a of document.querySelectorAll("nav a")) {
      a.dataset.base = a.dataset.base || a.getAttribute("href");
      a.href = a.dataset.base + (keep.toString() ? "?" + keep : "");
      a.classList.toggle("current", a.dataset.page === q.page || (q.page === "session" && a.dataset.page === "sessions"));
    }
  }
  async function draw() {
    const q = route();
    syncControls(q);
    clearTimeout(timer);
    if (authRequired && !sessionStorage.getItem(TOKEN_KEY)) await askToken("This API needs a token.");
    try {
      await PAGES[q.page](q);
      dashboard.lastError = null;
      statusLine.textContent = `Updated ${utcTime(new Date().toISOString())}` + (q.paused ? " · refresh paused" : ` · refreshing every ${q.refresh} s`);
      dashboard.renders += 1;
    } catch (error) {
      if (error instanceof AuthError) {
        await askToken(error.message);
        return draw();
      }
      dashboard.lastError = error.message;
      show(el("p", { class: "alert", role: "alert" }, error.message));
      statusLine.textContent = `Failed at ${utcTime(new Date().toISOString())}; retrying`;
    }
    if (!q.paused) timer = setTimeout(render, Number(q.refresh) * 1000);
  }
  function render() {
    // one draw at a time; a change during a draw draws again after it
    rendering = (rendering || Promise.resolve()).then(draw);
    return rendering;
  }

  filters.addEventListener("change", (event) => {
    const f = filters.elements;
    if (event.target.name === "refresh") return go(null, { refresh: f.refresh.value }, true);
    if (event.target.name === "range") return go(null, { hours: f.range.value || null });
    if (f.start.value && f.end.value) go(null, { start: f.start.value, end: f.end.value, hours: null, before: null, after: null });
  });
  filters.addEventListener("submit", (event) => event.preventDefault());
  pauseButton.addEventListener("click", () => go(null, { paused: route().paused ? null : "1" }, true));
  document.addEventListener("click", (event) => {
    const a = event.target.closest && event.target.closest("a[data-nav]");
    if (!a || event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    history.pushState(null, "", a.href);
    render();
  });
  window.addEventListener("popstate", render);
  render();
})();
