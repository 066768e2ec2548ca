// The dashboard's Alerts page: the rules, each rule's state (since when, the last value), the
// history of changes and the notifications, from /v1/alerts (worker/alerts/views.py, what
// `metrics-worker alerts list|history` print). Registered as an extra page of dashboard.js,
// which draws it with its own helpers (kit).
"use strict";
(window.dashboardPages = window.dashboardPages || {}).alerts = async (kit, q) => {
  const { el, table, section, show, api, utcTime, empty, tile } = kit;
  const data = await api("/v1/alerts", { limit: 50 });
  const value = (v) => (v === null || v === undefined ? "–" : Number(v.toPrecision(4)).toLocaleString("en-US"));
  const labels = (l) => l || "all";
  const badge = (phase) => el("span", { class: `status ${phase}` }, phase);
  const firing = data.states.filter((s) => s.phase === "firing");
  const pending = data.states.filter((s) => s.phase === "pending");
  const rules = data.rules.length
    ? table(["rule", "condition", "filters", "min samples", "for", "severity", "receivers", "repeat"],
      data.rules.map((r) => el("tr", { dataset: { rule: r.name } },
        el("td", {}, r.name),
        el("td", {}, r.condition, r.unavailable ? el("div", { class: "hint not-available" }, r.unavailable) : null),
        el("td", {}, [...Object.entries(r.filters).map(([k, v]) => `${k}=${v}`), r.group_by ? `per ${r.group_by}` : null]
          .filter(Boolean).join(", ") || "–"),
        el("td", { class: "num" }, String(r.min_samples)), el("td", {}, r.hold), el("td", {}, r.severity),
        el("td", {}, r.receivers.join(", ") || "–"), el("td", {}, r.repeat || "–"))), "alert-rules")
    : el("p", { class: "empty", id: "no-rules" }, data.rules_error
      ? `The rules file cannot be read: ${data.rules_error}`
      : "metrics-api has no METRICS_ALERTS_FILE, so the rules are not shown; their state and history are.");
  show(
    el("h2", { class: "page" }, "Alerts, now"),
    el("div", { class: "tiles" },
      tile("firing", "firing", firing.length, "alerts"),
      tile("pending", "pending", pending.length, "alerts"),
      tile("rules", "rules", data.rules.length, "alerts")),
    section("Rules", rules),
    section("State", data.states.length
      ? table(["rule", "labels", "state", "since", "last value", "samples", "severity", "evaluated"],
        data.states.map((s) => el("tr", { dataset: { rule: s.rule, labels: s.labels, phase: s.phase } },
          el("td", {}, s.rule), el("td", {}, labels(s.labels)), el("td", {}, badge(s.phase)),
          el("td", {}, utcTime(s.since)), el("td", { class: "num" }, value(s.value)),
          el("td", { class: "num" }, String(s.samples)), el("td", {}, s.severity), el("td", {}, utcTime(s.evaluated_at)))),
        "alert-states")
      : empty("No rule evaluated yet (the alerts job runs every minute once METRICS_ALERTS_FILE is set).")),
    section("History, latest first", data.history.length
      ? table(["at", "rule", "labels", "change", "value", "condition"],
        data.history.map((h) => el("tr", { dataset: { change: h.change } },
          el("td", {}, utcTime(h.at)), el("td", {}, h.rule), el("td", {}, labels(h.labels)),
          el("td", {}, badge(h.change)), el("td", { class: "num" }, value(h.value)), el("td", {}, h.condition))),
        "alert-history")
      : empty("No changes yet.")),
    section("Notifications, latest first", data.notifications.length
      ? table(["at", "rule", "labels", "event", "receiver", "outcome", "attempts", "error"],
        data.notifications.map((n) => el("tr", { dataset: { status: n.status } },
          el("td", {}, utcTime(n.created_at)), el("td", {}, n.rule), el("td", {}, labels(n.labels)),
          el("td", {}, n.event), el("td", {}, n.receiver), el("td", {}, badge(n.status)),
          el("td", { class: "num" }, String(n.attempts)), el("td", { class: "error-text" }, n.error || ""))),
        "alert-notifications")
      : empty("No notifications yet.")));
};
