// otel-gemini dashboard: reads the answers API beside it and draws it with plotly.js.
//
// Rules this file keeps:
// - Every figure comes from /api/observability/* with the page's filters; nothing is
//   computed here but sorting and choosing the top rows.
// - Money is shown as the API's decimal string, never through a float; a null cost is
//   "unknown", never $0. Floats are used only for bar heights.
// - Text from the API (user and session ids, model names, reasons) goes into the page
//   through textContent only, and into plotly.js labels escaped, because plotly reads a
//   few HTML tags in its labels.
// - State lives in the URL's query string, so a view can be shared.
"use strict";

(function () {
  // Okabe & Ito's palette: distinguishable with the common colour-vision deficiencies.
  const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00",
    "#F0E442", "#000000"];
  // Past eight series, patterns tell them apart as well as colours.
  const PATTERNS = ["", "/", "x", ".", "\\", "+", "-", "|"];
  const PERCENTILE_DASH = { p50: "dot", p95: "solid", p99: "dash" };
  const FILTERS = ["from", "to", "tz", "group", "model", "user", "source"];
  const API_FILTERS = ["from", "to", "tz", "model", "user", "source"];
  const GROUPS = ["model", "user", "provider"];
  const TOP = 10;
  const API = "api/observability/";

  const byId = (id) => document.getElementById(id);
  const integer = (n) => (n === null || n === undefined ? "unknown" : Number(n).toLocaleString("en-US"));
  const ms = (v) => (v === null || v === undefined ? "—" : String(v));
  const label = (value) => (value === null || value === undefined ? "(none)" : String(value));
  // plotly.js renders <b>, <br>, <a href> and entities in labels: escape what is not ours.
  const plotText = (value) =>
    label(value).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

  // --- exact money --------------------------------------------------------------------

  /** "$<the API's string>", "unknown" for null, and a mark when part of it is unknown. */
  function money(cost, unpriced) {
    if (cost === null || cost === undefined) return "unknown";
    const text = "$" + cost;
    return unpriced ? text + " + unknown (" + integer(unpriced) + " unpriced)" : text;
  }

  /** Compares two non-negative decimal strings exactly; null (unknown) sorts lowest. */
  function compareMoney(a, b) {
    if (a === b) return 0;
    if (a === null || a === undefined) return -1;
    if (b === null || b === undefined) return 1;
    const [ai, af = ""] = a.split(".");
    const [bi, bf = ""] = b.split(".");
    const ia = ai.replace(/^0+/, "");
    const ib = bi.replace(/^0+/, "");
    if (ia.length !== ib.length) return ia.length < ib.length ? -1 : 1;
    if (ia !== ib) return ia < ib ? -1 : 1;
    const width = Math.max(af.length, bf.length);
    const fa = af.padEnd(width, "0");
    const fb = bf.padEnd(width, "0");
    return fa === fb ? 0 : fa < fb ? -1 : 1;
  }

  const height = (cost) => (cost === null || cost === undefined ? null : Number(cost));

  // --- the URL's state ----------------------------------------------------------------

  function readFilters() {
    const query = new URLSearchParams(window.location.search);
    const filters = {};
    for (const name of FILTERS) {
      const value = (query.get(name) || "").trim();
      if (value) filters[name] = value;
    }
    if (!GROUPS.includes(filters.group)) filters.group = "model";
    return filters;
  }

  function setUpForm(filters) {
    for (const name of FILTERS) {
      const field = byId("filter-" + name);
      if (field) field.value = filters[name] || (name === "group" ? "model" : "");
    }
    byId("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      const query = new URLSearchParams();
      for (const name of FILTERS) {
        const value = byId("filter-" + name).value.trim();
        if (value && !(name === "group" && value === "model")) query.set(name, value);
      }
      const search = query.toString();
      window.location.search = search ? "?" + search : "";
    });
    byId("reset").addEventListener("click", () => {
      window.location.search = "";
    });
  }

  // --- the API --------------------------------------------------------------------------

  const timing = { first: null, last: 0 };

  async function ask(path, params) {
    const query = new URLSearchParams(params || {}).toString();
    const started = performance.now();
    if (timing.first === null) timing.first = started;
    let answer;
    try {
      const response = await fetch(API + path + (query ? "?" + query : ""), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      let body = null;
      try {
        body = await response.json();
      } catch (ignored) {
        body = null;
      }
      answer = { status: response.status, ok: response.ok, body };
    } catch (error) {
      answer = { status: 0, ok: false, body: null, failure: String(error) };
    }
    timing.last = Math.max(timing.last, performance.now());
    return answer;
  }

  function failureText(what, answer) {
    if (answer.failure) return what + ": the request failed (" + answer.failure + ")";
    const body = answer.body || {};
    const detail = body.message ? ": " + body.message : "";
    const parameter = body.parameter ? " (" + body.parameter + ")" : "";
    return what + ": HTTP " + answer.status + parameter + detail;
  }

  // --- building blocks ------------------------------------------------------------------

  const notices = new Set();

  function notice(text, kind) {
    if (notices.has(text)) return;
    notices.add(text);
    const p = document.createElement("p");
    p.textContent = text;
    if (kind) p.className = kind;
    byId("notices").appendChild(p);
  }

  /** Notes on an answer: stale, truncated, spans dropped by the store. */
  function noteAnswer(what, report) {
    if (report.stale) {
      notice("Asked " + report.requested_source + ", answered by " + report.source + ": " +
        (report.stale_reason || "the source asked for could not answer"));
    }
    if (report.truncated) {
      notice(what + ": Langfuse returned as many rows as its limit; some groups may be missing.");
    }
    const dropped = Number(report.dropped || 0);
    if (dropped > 0) {
      notice("⚠ " + integer(dropped) + " spans were dropped by the cost store in this window " +
        "(" + what + "): the figures here are missing them.");
      droppedMark(dropped);
    }
  }

  let shownDropped = 0;
  function droppedMark(dropped) {
    if (dropped <= shownDropped) return;
    shownDropped = dropped;
    let mark = byId("dropped-mark");
    if (!mark) {
      mark = document.createElement("span");
      mark.id = "dropped-mark";
      mark.className = "dropped-mark";
      byId("h-totals").appendChild(document.createTextNode(" "));
      byId("h-totals").appendChild(mark);
    }
    mark.textContent = "⚠ " + integer(dropped) + " dropped";
    mark.title = "The cost store dropped spans in this window: these totals are missing them.";
  }

  /** A table: columns [{title, value(row) -> text, num, unknown(row)}], rows. */
  function table(containerId, columns, rows) {
    const container = byId(containerId);
    container.replaceChildren();
    if (!rows.length) {
      const empty = document.createElement("p");
      empty.className = "empty";
      empty.textContent = "No generations in this window.";
      container.appendChild(empty);
      return;
    }
    const element = document.createElement("table");
    const head = element.createTHead().insertRow();
    for (const column of columns) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = column.title;
      if (column.num) th.className = "num";
      head.appendChild(th);
    }
    const body = element.createTBody();
    for (const row of rows) {
      const tr = body.insertRow();
      for (const column of columns) {
        const td = tr.insertCell();
        const text = column.value(row);
        td.textContent = text;
        const classes = [];
        if (column.num) classes.push("num");
        if (text === "unknown" || text.endsWith(" unpriced)")) classes.push("unknown");
        if (classes.length) td.className = classes.join(" ");
      }
    }
    container.appendChild(element);
  }

  function failedPanel(panelId, text) {
    const panel = byId(panelId);
    for (const chart of panel.querySelectorAll(".chart")) chart.replaceChildren();
    for (const box of panel.querySelectorAll(".table")) {
      box.replaceChildren();
      const p = document.createElement("p");
      p.className = "failed";
      p.textContent = text;
      box.appendChild(p);
    }
    const details = panel.querySelector("details");
    if (details) details.open = true;
  }

  const charts = [];

  function chart(id, traces, layout) {
    const element = byId(id);
    if (!window.Plotly) return;
    if (!traces.length) {
      element.replaceChildren();
      return;
    }
    const base = {
      margin: { l: 60, r: 10, t: 10, b: 40 },
      legend: { orientation: "h", y: -0.2 },
      font: { family: "system-ui, sans-serif", size: 12 },
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "#ffffff",
      colorway: PALETTE,
      autosize: true,
    };
    charts.push(window.Plotly.newPlot(element, traces, Object.assign(base, layout), {
      responsive: true,
      displaylogo: false,
      modeBarButtonsToRemove: ["lasso2d", "select2d"],
    }));
  }

  const colour = (index) => PALETTE[index % PALETTE.length];
  const pattern = (index) => ({ shape: PATTERNS[Math.floor(index / PALETTE.length) % PATTERNS.length] });

  function topByCost(groups, key) {
    return groups
      .slice()
      .sort((a, b) => compareMoney(b.cost, a.cost) || b.requests - a.requests ||
        label(a[key]).localeCompare(label(b[key])))
      .slice(0, TOP);
  }

  const costColumns = [
    { title: "Cost (USD)", num: true, value: (g) => money(g.cost, g.unpriced_requests) },
    { title: "Requests", num: true, value: (g) => integer(g.requests) },
    { title: "Input tokens", num: true, value: (g) => integer(g.input_tokens) },
    { title: "Output tokens", num: true, value: (g) => integer(g.output_tokens) },
    { title: "Errors", num: true, value: (g) => integer(g.errors) },
  ];

  // --- panels -------------------------------------------------------------------------

  function renderTotals(report) {
    const total = report.total;
    byId("total-cost").textContent = money(total.cost, total.unpriced_requests);
    byId("total-requests").textContent = integer(total.requests);
    byId("total-tokens").textContent = integer(total.input_tokens) + " / " + integer(total.output_tokens);
    byId("total-errors").textContent = integer(total.errors);
    byId("window-text").textContent = report.from + " to " + report.to + " (days in " +
      report.tz + "), source " + report.source + (report.stale ? " (stale)" : "");
  }

  function renderByModel(report) {
    const groups = report.groups;
    table("table-by-model", [
      { title: "Model", value: (g) => label(g.model) },
      { title: "Cost (USD)", num: true, value: (g) => money(g.cost, g.unpriced_requests) },
      { title: "Input cost", num: true, value: (g) => money(g.input_cost, g.unpriced_requests) },
      { title: "Output cost", num: true, value: (g) => money(g.output_cost, g.unpriced_requests) },
      { title: "Requests", num: true, value: (g) => integer(g.requests) },
      { title: "Input tokens", num: true, value: (g) => integer(g.input_tokens) },
      { title: "Output tokens", num: true, value: (g) => integer(g.output_tokens) },
      { title: "Errors", num: true, value: (g) => integer(g.errors) },
    ], groups);
    chart("chart-by-model", groups.length ? [{
      type: "bar",
      x: groups.map((g) => plotText(g.model)),
      y: groups.map((g) => height(g.cost)),
      text: groups.map((g) => money(g.cost, g.unpriced_requests)),
      hovertemplate: "%{x}<br>%{text}<extra></extra>",
      marker: { color: groups.map((g, i) => colour(i)) },
    }] : [], { yaxis: { title: { text: "USD" }, tickprefix: "$" }, xaxis: { type: "category" } });
    const models = byId("known-models");
    const seen = new Set();
    models.replaceChildren();
    for (const g of groups) {
      if (g.model === null || seen.has(g.model)) continue;
      seen.add(g.model);
      const option = document.createElement("option");
      option.value = g.model;
      models.appendChild(option);
    }
  }

  function renderCostByDay(report, group) {
    const groups = report.groups;
    const days = [...new Set(groups.map((g) => g.day))].sort();
    const keys = [...new Set(groups.map((g) => label(g[group])))].sort();
    const traces = keys.map((key, index) => {
      const cost = new Map(groups.filter((g) => label(g[group]) === key).map((g) => [g.day, g]));
      return {
        type: "bar",
        name: plotText(key),
        x: days,
        y: days.map((day) => (cost.has(day) ? height(cost.get(day).cost) : null)),
        text: days.map((day) => (cost.has(day) ? money(cost.get(day).cost, cost.get(day).unpriced_requests) : "")),
        hovertemplate: plotText(key) + "<br>%{x}: %{text}<extra></extra>",
        marker: { color: colour(index), pattern: pattern(index) },
      };
    });
    chart("chart-cost-by-day", traces, {
      barmode: "stack",
      xaxis: { type: "category" },
      yaxis: { title: { text: "USD" }, tickprefix: "$" },
    });
    table("table-cost-by-day", [
      { title: "Day", value: (g) => g.day },
      { title: group[0].toUpperCase() + group.slice(1), value: (g) => label(g[group]) },
      ...costColumns,
    ], groups);
  }

  function renderTop(report, key, chartId, tableId) {
    const top = topByCost(report.groups, key);
    table(tableId, [
      { title: "#", num: true, value: (g) => String(top.indexOf(g) + 1) },
      { title: key === "user" ? "User" : "Session", value: (g) => label(g[key]) },
      ...costColumns,
    ], top);
    const shown = top.slice().reverse(); // plotly draws the first category at the bottom
    chart(chartId, shown.length ? [{
      type: "bar",
      orientation: "h",
      y: shown.map((g) => plotText(g[key])),
      x: shown.map((g) => height(g.cost)),
      text: shown.map((g) => money(g.cost, g.unpriced_requests)),
      hovertemplate: "%{y}<br>%{text}<extra></extra>",
      marker: { color: PALETTE[0] },
    }] : [], {
      margin: { l: 120, r: 10, t: 10, b: 40 },
      yaxis: { type: "category", automargin: true },
      xaxis: { title: { text: "USD" }, tickprefix: "$" },
    });
    if (key === "user") {
      const users = byId("known-users");
      users.replaceChildren();
      for (const g of top) {
        if (g.user === null) continue;
        const option = document.createElement("option");
        option.value = g.user;
        users.appendChild(option);
      }
    }
  }

  function percentileBars(chartId, groups, measure) {
    const shown = groups.filter((g) => g[measure].count > 0);
    chart(chartId, ["p50", "p95", "p99"].map((p, index) => ({
      type: "bar",
      name: p,
      x: shown.map((g) => plotText(g.model)),
      y: shown.map((g) => g[measure][p]),
      marker: { color: colour(index), pattern: { shape: PATTERNS[index + 1] } },
      hovertemplate: "%{x} " + p + ": %{y} ms<extra></extra>",
    })).filter(() => shown.length), {
      barmode: "group",
      xaxis: { type: "category" },
      yaxis: { title: { text: "ms" } },
    });
  }

  function renderLatencyByModel(report) {
    const groups = report.groups;
    table("table-latency-by-model", [
      { title: "Model", value: (g) => label(g.model) },
      { title: "Requests", num: true, value: (g) => integer(g.requests) },
      { title: "Errors", num: true, value: (g) => integer(g.errors) },
      { title: "Error rate", num: true, value: (g) => (g.error_rate === null ? "unknown" : (100 * g.error_rate).toFixed(1) + " %") },
      { title: "p50 ms", num: true, value: (g) => ms(g.latency_ms.p50) },
      { title: "p95 ms", num: true, value: (g) => ms(g.latency_ms.p95) },
      { title: "p99 ms", num: true, value: (g) => ms(g.latency_ms.p99) },
    ], groups);
    percentileBars("chart-latency-by-model", groups, "latency_ms");
    const streamed = groups.filter((g) => g.time_to_first_token_ms.count > 0);
    table("table-ttft", [
      { title: "Model", value: (g) => label(g.model) },
      { title: "Measured", num: true, value: (g) => integer(g.time_to_first_token_ms.count) },
      { title: "p50 ms", num: true, value: (g) => ms(g.time_to_first_token_ms.p50) },
      { title: "p95 ms", num: true, value: (g) => ms(g.time_to_first_token_ms.p95) },
      { title: "p99 ms", num: true, value: (g) => ms(g.time_to_first_token_ms.p99) },
    ], streamed);
    percentileBars("chart-ttft", streamed, "time_to_first_token_ms");
  }

  function renderLatencyOverTime(report) {
    const groups = report.groups;
    const models = [...new Set(groups.map((g) => label(g.model)))].sort();
    const days = [...new Set(groups.map((g) => g.day))].sort();
    const traces = [];
    models.forEach((model, index) => {
      const rows = groups.filter((g) => label(g.model) === model);
      for (const p of ["p50", "p95", "p99"]) {
        traces.push({
          type: "scatter",
          mode: "lines+markers",
          name: plotText(model) + " " + p,
          legendgroup: plotText(model),
          x: rows.map((g) => g.day),
          y: rows.map((g) => g.latency_ms[p]),
          line: { color: colour(index), dash: PERCENTILE_DASH[p] },
          hovertemplate: plotText(model) + " " + p + "<br>%{x}: %{y} ms<extra></extra>",
        });
      }
    });
    chart("chart-latency-over-time", traces, {
      xaxis: { type: "category", categoryorder: "array", categoryarray: days },
      yaxis: { title: { text: "ms" } },
    });
    table("table-latency-over-time", [
      { title: "Day", value: (g) => g.day },
      { title: "Model", value: (g) => label(g.model) },
      { title: "Requests", num: true, value: (g) => integer(g.requests) },
      { title: "p50 ms", num: true, value: (g) => ms(g.latency_ms.p50) },
      { title: "p95 ms", num: true, value: (g) => ms(g.latency_ms.p95) },
      { title: "p99 ms", num: true, value: (g) => ms(g.latency_ms.p99) },
    ], groups);
  }

  /** Scalar fields of a JSON object, flattened to dotted names, as [name, text] rows. */
  function flatten(value, prefix, rows) {
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      for (const [name, inner] of Object.entries(value)) {
        flatten(inner, prefix ? prefix + "." + name : name, rows);
      }
    } else if (Array.isArray(value)) {
      rows.push([prefix, value.map((item) => (typeof item === "object" ? JSON.stringify(item) : String(item))).join("; ")]);
    } else {
      rows.push([prefix, value === null ? "—" : String(value)]);
    }
    return rows;
  }

  function renderHealth(answer) {
    const body = answer.body;
    const status = byId("health-status");
    const reasons = byId("health-reasons");
    reasons.replaceChildren();
    if (!body || typeof body.status !== "string") {
      status.textContent = "unknown";
      status.className = "status unknown";
      const li = document.createElement("li");
      li.textContent = failureText("health", answer);
      reasons.appendChild(li);
      return;
    }
    status.textContent = body.status;
    status.className = "status " + (["healthy", "degraded", "unhealthy"].includes(body.status) ? body.status : "unknown");
    for (const reason of body.reasons || []) {
      const li = document.createElement("li");
      li.textContent = String(reason);
      reasons.appendChild(li);
    }
    const rest = Object.assign({}, body);
    delete rest.status;
    delete rest.reasons;
    table("table-health", [
      { title: "Figure", value: (row) => row[0] },
      { title: "Value", num: true, value: (row) => row[1] },
    ], flatten(rest, "", []));
  }

  // --- budgets ----------------------------------------------------------------------------
  //
  // The answer of GET /api/observability/budgets (otel_gemini.budgets.budget_status, see
  // docs/budgets.md): {generated_at, budgets: [{rule, scope, tag, period, timezone,
  // period_start, period_end, limit_usd, warn_at, scope_values_with_spend,
  // highest_utilization, entries: [{scope_value, spend_usd, limit_usd, utilization,
  // thresholds_crossed, status, requests, unpriced_requests}]}], anomalies: [{rule, scope,
  // ratio, min_requests, entries: [{scope_value, recent_requests, baseline_requests,
  // recent_cost_per_request, baseline_cost_per_request, ratio, status}]}], enforcement}.
  // Money and utilization are exact decimal strings and are shown as such.

  // Status by colour (Okabe & Ito: blue, orange, vermillion) and by bar pattern as well.
  const BUDGET_STATUS = {
    ok: { colour: PALETTE[0], shape: "" },
    warning: { colour: PALETTE[1], shape: "/" },
    exceeded: { colour: PALETTE[5], shape: "x" },
  };
  const LOWER_BOUND = "≥ ";

  /** A non-negative decimal string times 100, exactly ("1.155" -> "115.5 %"). */
  function percent(decimal) {
    if (decimal === null || decimal === undefined) return "—";
    const [whole, fraction = ""] = String(decimal).split(".");
    const padded = fraction.padEnd(2, "0");
    const digits = (whole + padded.slice(0, 2)).replace(/^0+(?=\d)/, "");
    const rest = padded.slice(2).replace(/0+$/, "");
    return (rest ? digits + "." + rest : digits) + " %";
  }

  const windowKey = (rule) => rule.period_start + "/" + rule.period_end;

  /** The budgets answer and, for each rule's period, how many generations the cost store
   * dropped in it (the answer's "dropped": the spend is then a lower bound). */
  async function askBudgets() {
    const answer = await ask("budgets");
    const drops = new Map();
    if (answer.ok && answer.body && Array.isArray(answer.body.budgets)) {
      for (const rule of answer.body.budgets) drops.set(windowKey(rule), Number(rule.dropped || 0));
    }
    return { answer, drops };
  }

  /** One row per rule and scope value the answer lists; a per-value rule with none over a
   * threshold gets one row saying so, with its highest utilization. */
  function budgetRows(budgets, drops) {
    const rows = [];
    for (const rule of budgets) {
      const dropped = drops.get(windowKey(rule));
      const lowerBound = dropped > 0;
      const common = { rule, lowerBound };
      if (rule.entries.length) {
        for (const entry of rule.entries) rows.push(Object.assign({ entry }, common));
      } else {
        rows.push(Object.assign({ entry: null }, common));
      }
    }
    return rows;
  }

  // A total rule's one scope value is "*" in the answer: everything.
  const scopeValue = (rule, entry) => (rule.scope === "total" ? "(all)" : label(entry.scope_value));

  function scopeText(rule) {
    return rule.scope === "tag" ? "tag " + label(rule.tag) : rule.scope;
  }

  function statusText(entry) {
    const crossed = entry.thresholds_crossed.map(percent);
    return crossed.length ? entry.status + " (" + crossed.join(", ") + ")" : entry.status;
  }

  const budgetColumns = [
    { title: "Rule", value: (row) => row.rule.rule },
    { title: "Scope", value: (row) => scopeText(row.rule) },
    {
      title: "Value",
      value: (row) => (row.entry ? scopeValue(row.rule, row.entry) :
        "none over a threshold (" + integer(row.rule.scope_values_with_spend) + " with spend)"),
    },
    { title: "Period", value: (row) => row.rule.period + " (" + row.rule.timezone + ")" },
    { title: "Ends", value: (row) => row.rule.period_end },
    {
      title: "Spend",
      num: true,
      value: (row) => (row.entry ? (row.lowerBound ? LOWER_BOUND : "") +
        money(row.entry.spend_usd, row.entry.unpriced_requests) : "—"),
    },
    { title: "Limit", num: true, value: (row) => money(row.rule.limit_usd) },
    {
      title: "Used",
      num: true,
      value: (row) => (row.entry ? percent(row.entry.utilization) :
        "highest " + percent(row.rule.highest_utilization)),
    },
    { title: "Status", value: (row) => (row.entry ? statusText(row.entry) : "ok") },
    { title: "Requests", num: true, value: (row) => (row.entry ? integer(row.entry.requests) : "—") },
  ];

  function budgetChart(rows) {
    const shown = rows.filter((row) => row.entry).reverse(); // plotly draws bottom-up
    const name = (row) => plotText(row.rule.rule + " · " + scopeValue(row.rule, row.entry));
    const traces = Object.entries(BUDGET_STATUS).map(([status, look]) => {
      const mine = shown.filter((row) => row.entry.status === status);
      return {
        type: "bar",
        orientation: "h",
        name: status,
        y: mine.map(name),
        x: mine.map((row) => 100 * Number(row.entry.utilization)), // bar length only
        text: mine.map((row) => (row.lowerBound ? LOWER_BOUND : "") + percent(row.entry.utilization)),
        textposition: "outside", // beside the bar, in the text colour: readable on any fill
        cliponaxis: false,
        customdata: mine.map((row) => (row.lowerBound ? LOWER_BOUND : "") + money(row.entry.spend_usd,
          row.entry.unpriced_requests) + " of " + money(row.rule.limit_usd)),
        hovertemplate: "%{y}<br>%{text} used: %{customdata}<extra>" + status + "</extra>",
        // The hatching is drawn over the status colour (not instead of it), in white.
        marker: {
          color: look.colour,
          pattern: { shape: look.shape, fillmode: "overlay", fgcolor: "#ffffff", size: 8, solidity: 0.3 },
          line: { color: "#000000", width: 1 },
        },
      };
    }).filter((trace) => trace.y.length);
    const longest = Math.max(100, ...shown.map((row) => 100 * Number(row.entry.utilization)));
    chart("chart-budgets", traces, {
      barmode: "overlay",
      margin: { l: 160, r: 10, t: 10, b: 40 },
      xaxis: { title: { text: "% of the limit used" }, ticksuffix: " %", range: [0, longest * 1.2] },
      yaxis: { type: "category", automargin: true, categoryorder: "array", categoryarray: shown.map(name) },
      shapes: [{ type: "line", xref: "x", yref: "paper", x0: 100, x1: 100, y0: 0, y1: 1,
        line: { color: "#000000", dash: "dash", width: 1 } }],
    });
  }

  const anomalyColumns = [
    { title: "Rule", value: (row) => row.rule.rule },
    { title: "By", value: (row) => row.rule.scope },
    { title: "Value", value: (row) => (row.entry ? label(row.entry.scope_value) : "no requests") },
    {
      title: "Last hour $/request",
      num: true,
      value: (row) => (row.entry && row.entry.recent_cost_per_request !== null ? money(row.entry.recent_cost_per_request) : "—"),
    },
    {
      title: "Previous 7 days $/request",
      num: true,
      value: (row) => (row.entry && row.entry.baseline_cost_per_request !== null ? money(row.entry.baseline_cost_per_request) : "—"),
    },
    { title: "Ratio", num: true, value: (row) => (row.entry && row.entry.ratio !== null ? row.entry.ratio + "×" : "—") },
    { title: "Alerts at", num: true, value: (row) => row.rule.ratio + "×" },
    {
      title: "Requests (hour / 7 days)",
      num: true,
      value: (row) => (row.entry ? integer(row.entry.recent_requests) + " / " + integer(row.entry.baseline_requests) : "—"),
    },
    { title: "Status", value: (row) => (row.entry ? row.entry.status.replace("_", " ") : "no data") },
  ];

  function enforcementText(body) {
    const enforcement = body.enforcement || {};
    const closed = enforcement.exhausted_in_this_process || [];
    let text = "Enforcement " + (enforcement.enabled ? "on" : "off");
    if (closed.length) {
      text += "; closed in this process: " + closed.map((e) => e.rule + " (" + e.scope + " " +
        label(e.scope_value) + ")").join(", ");
    }
    return text + ". As of " + body.generated_at + ".";
  }

  /** The budgets panel: absent when the service has no rules (404), the API's message
   * when it cannot answer (503: no store), else each rule as the API states it. */
  function renderBudgets(asked) {
    const { answer, drops } = asked;
    const panel = byId("panel-budgets");
    if (answer.status === 404) return; // no budget rules here: no panel
    panel.hidden = false;
    const body = answer.body;
    if (!answer.ok || !body || !Array.isArray(body.budgets) || !Array.isArray(body.anomalies)) {
      const text = failureText("budgets", answer);
      notice(text, "error");
      byId("anomalies").hidden = true;
      failedPanel("panel-budgets", text);
      return;
    }
    if (!body.budgets.length && !body.anomalies.length) {
      panel.hidden = true;
      return;
    }
    byId("budgets-enforcement").textContent = enforcementText(body);
    for (const rule of body.budgets) {
      const dropped = drops.get(windowKey(rule));
      if (dropped > 0) {
        notice("⚠ budget " + rule.rule + ": the cost store dropped " + integer(dropped) +
          " generations between " + rule.period_start + " and " + rule.period_end +
          ": its spend (marked ≥) is at least what is shown.");
      }
    }
    const rows = budgetRows(body.budgets, drops);
    byId("budgets-rules").hidden = !rows.length;
    if (rows.length) {
      table("table-budgets", budgetColumns, rows);
      budgetChart(rows);
    }
    const anomalyRows = [];
    for (const rule of body.anomalies) {
      if (rule.entries.length) {
        for (const entry of rule.entries) anomalyRows.push({ rule, entry });
      } else {
        anomalyRows.push({ rule, entry: null });
      }
    }
    byId("anomalies").hidden = !anomalyRows.length;
    if (anomalyRows.length) table("table-anomalies", anomalyColumns, anomalyRows);
  }

  // --- the page -------------------------------------------------------------------------

  /** Every question the page asks, sent at once: name -> promise of the answer. The
   * costliest for the server (ranking every session, latency by day) go out first. */
  function askAll(filters) {
    const common = {};
    for (const name of API_FILTERS) if (filters[name]) common[name] = filters[name];
    const costs = (extra) => ask("costs", Object.assign(extra, common));
    const latency = (extra) => ask("latency", Object.assign(extra, common));
    const sessions = costs({ group_by: "session", top: String(TOP) });
    const latencyByDay = latency({ group_by: "day,model" });
    return {
      byModel: costs({ group_by: "model" }),
      byDay: costs({ group_by: "day," + filters.group }),
      users: costs({ group_by: "user", top: String(TOP) }),
      sessions,
      latencyByModel: latency({ group_by: "model" }),
      latencyByDay,
      health: ask("health"),
      budgets: askBudgets(),
    };
  }

  /** Resolves once the document is parsed and every deferred script (plotly.js) has run. */
  function documentParsed() {
    return new Promise((resolve) => {
      if (document.readyState === "complete" || window.Plotly) {
        resolve();
        return;
      }
      document.addEventListener("DOMContentLoaded", () => resolve(), { once: true });
      window.addEventListener("load", () => resolve(), { once: true });
    });
  }

  /** A performance measure for benchmarks/dashboard.py and devtools; never in the way. */
  function timed(name, started) {
    try {
      performance.measure(name, { start: started });
    } catch (ignored) {
      // an older browser without measure options: nothing to record
    }
  }

  async function main() {
    const filters = readFilters();
    // The questions go out at once; plotly.js (a deferred script after this one) is parsed
    // while they are answered, and each panel is drawn once both are there.
    const asked = askAll(filters);
    await documentParsed();
    setUpForm(filters);
    if (!window.Plotly) {
      notice("Charts need plotly.js, from the plotly package: pip install 'otel-gemini[server]'. " +
        "The tables below show every figure.");
      for (const details of document.querySelectorAll("main details")) details.open = true;
    }
    const group = filters.group;
    const panels = [
      ["byModel", "panel-by-model", "costs by model", (r) => { renderTotals(r); renderByModel(r); }],
      ["byDay", "panel-cost-by-day", "cost per day", (r) => renderCostByDay(r, group)],
      ["users", "panel-top-users", "costs by user", (r) => renderTop(r, "user", "chart-top-users", "table-top-users")],
      ["sessions", "panel-top-sessions", "costs by session", (r) => renderTop(r, "session", "chart-top-sessions", "table-top-sessions")],
      ["latencyByModel", "panel-latency-by-model", "latency by model", renderLatencyByModel],
      ["latencyByDay", "panel-latency-over-time", "latency per day", renderLatencyOverTime],
    ];
    // Each panel is drawn as soon as its answer is in: the browser draws the quick answers
    // while the server still works out the slow ones.
    const drawn = panels.map(([name, panelId, what, render]) => asked[name].then((answer) => {
      const started = performance.now();
      try {
        if (!answer.ok || !answer.body) throw new Error(failureText(what, answer));
        noteAnswer(what, answer.body);
        render(answer.body);
        timed("render " + name, started);
      } catch (error) {
        const text = error instanceof Error ? error.message : String(error);
        notice(text, "error");
        failedPanel(panelId, text);
        if (name === "latencyByModel") failedPanel("panel-ttft", text);
        if (name === "byModel") {
          for (const id of ["total-cost", "total-requests", "total-tokens", "total-errors"]) {
            byId(id).textContent = "—";
          }
          byId("window-text").textContent = "The answers API could not answer: see the notes.";
        }
      }
    }));
    const drawnOrNoted = (what, render) => (answer) => {
      try {
        const started = performance.now();
        render(answer);
        timed("render " + what, started);
      } catch (error) {
        notice(what + ": " + String(error), "error");
      }
    };
    drawn.push(asked.health.then(drawnOrNoted("health", renderHealth)));
    drawn.push(asked.budgets.then(drawnOrNoted("budgets", renderBudgets)));
    await Promise.allSettled(drawn);
    await Promise.allSettled(charts);
    const ready = performance.now();
    document.body.dataset.apiMs = String(Math.round(timing.last - timing.first));
    document.body.dataset.renderMs = String(Math.round(ready - timing.last));
    document.body.dataset.readyMs = String(Math.round(ready));
    document.body.dataset.state = "ready";
  }

  main().catch((error) => {
    notice("The dashboard failed: " + String(error), "error");
    document.body.dataset.state = "failed";
  });
})();
