// The operator console: the repository, live series and workers per version, reports, management, try it.
// Every data call goes to the server's own endpoints; every model-supplied string goes in with textContent.
"use strict";
(function () {
  const { el } = window.TryIt;
  const state = {
    interval: 2, window: 600, since: 0, now: 0,
    index: [], live: new Map(), selected: null, shownKey: "",
    management: { port: null, tokenRequired: false, token: "", base: "", connected: false },
    panels: new Map(), // "model/version" -> {workers, queue, charts: [...]}
  };

  async function api(url, options) {
    const response = await fetch(url, options);
    const text = await response.text();
    let body = {};
    try { body = text ? JSON.parse(text) : {}; } catch (error) { body = { error: text }; }
    if (!response.ok) throw new Error(body.error || body.message || `HTTP ${response.status}`);
    return body;
  }
  const path = (...parts) => parts.map(encodeURIComponent).join("/");
  const cache = new Map();
  function cached(url) {
    if (!cache.has(url)) cache.set(url, api(url).catch((error) => { cache.delete(url); throw error; }));
    return cache.get(url);
  }
  const optional = (promise) => promise.catch(() => null);

  function setStatus(text, bad) {
    const node = document.getElementById("server-status");
    node.textContent = text;
    node.className = bad ? "error" : "muted";
  }

  // ---- live series ----
  function mergeLive(snapshot) {
    state.now = snapshot.now;
    const seen = new Set();
    for (const entry of snapshot.versions) {
      const key = `${entry.model}/${entry.version}`;
      seen.add(key);
      let series = state.live.get(key);
      if (!series) {
        series = { t: [], rate: [], errors: [], p50_ms: [], p99_ms: [], queue: [] };
        state.live.set(key, series);
      }
      for (const column of Object.keys(entry.samples)) series[column].push(...entry.samples[column]);
      const keep = series.t.findIndex((t) => t >= snapshot.now - state.window);
      if (keep > 0) for (const column of Object.keys(series)) if (Array.isArray(series[column])) series[column].splice(0, keep);
      series.status = entry;
      for (const t of entry.samples.t) state.since = Math.max(state.since, t);
    }
    for (const key of [...state.live.keys()]) if (!seen.has(key)) state.live.delete(key);
  }

  // ---- repository table ----
  function renderRepository() {
    const body = document.querySelector("#models tbody");
    const rows = state.index.map((row) => {
      const name = el("button", { type: "button", class: "model", text: row.name, onclick: () => select(row.name) });
      return el(
        "tr",
        { "data-model": row.name, "data-version": row.version || "", class: row.name === state.selected ? "selected" : "" },
        el("td", {}, name),
        el("td", { text: row.version || "–" }),
        el("td", { class: `state state-${row.state}`, text: row.state }),
        el("td", { class: "reason", title: row.reason || "", text: row.reason || "" }),
      );
    });
    body.replaceChildren(...rows);
  }

  function select(name) {
    state.selected = name;
    state.shownKey = "";
    renderRepository();
    renderDetails();
  }

  // ---- details of the selected model ----
  function tensorTable(title, specs) {
    return el(
      "table", { class: "signature" },
      el("tr", {}, el("th", { text: title }), el("th", { text: "datatype" }), el("th", { text: "shape" })),
      ...specs.map((s) => el("tr", {}, el("td", { text: s.name }), el("td", { text: s.datatype }), el("td", { text: `[${s.shape.join(", ")}]` }))),
    );
  }

  // A report's JSON as nested lists; arrays of flat objects (the parity and accuracy tables) as tables.
  function renderJson(value) {
    if (Array.isArray(value)) {
      if (value.length && value.every((v) => v && typeof v === "object" && !Array.isArray(v))) {
        const columns = [...new Set(value.flatMap((v) => Object.keys(v)))];
        return el(
          "table", { class: "report-table" },
          el("tr", {}, ...columns.map((c) => el("th", { text: c }))),
          ...value.map((v) => el("tr", {}, ...columns.map((c) => cell(v[c])))),
        );
      }
      return el("span", { text: value.map((v) => (typeof v === "object" ? JSON.stringify(v) : String(v))).join(", ") });
    }
    if (value && typeof value === "object") {
      const list = el("dl", { class: "report" });
      for (const [key, item] of Object.entries(value)) list.append(el("dt", { text: key }), el("dd", {}, renderJson(item)));
      return list;
    }
    return el("span", { class: typeof value === "boolean" ? `passed-${value}` : "", text: String(value) });
  }
  function cell(value) {
    if (value && typeof value === "object") return el("td", {}, renderJson(value));
    return el("td", { class: typeof value === "boolean" ? `passed-${value}` : "", text: value === undefined ? "" : String(value) });
  }

  function chartFigure(title, unit) {
    const svg = window.LineChart.create();
    const legend = el("div", { class: "legend" });
    return { figure: el("figure", {}, el("figcaption", { text: title }), svg, legend), svg, legend, unit };
  }

  function managementActions(model, version) {
    const box = el("div", { class: "row management-actions" });
    if (!state.management.connected) return box;
    const minimum = el("input", { type: "number", min: "0", value: "1", class: "min-workers", size: "4" });
    const maximum = el("input", { type: "number", min: "0", value: "1", class: "max-workers", size: "4" });
    const note = el("span", { class: "muted" });
    const act = (label, method, url) => el("button", { type: "button", text: label, onclick: async () => {
      note.textContent = `${label}…`;
      try {
        const answer = await manage(method, url());
        note.textContent = answer.status || "done";
      } catch (error) { note.textContent = `${label} failed: ${error.message}`; }
      refresh();
    } });
    if (version) {
      box.append(
        el("label", { text: "workers min " }, minimum), el("label", { text: " max " }, maximum),
        act("Scale", "PUT", () => `/models/${path(model)}?min_worker=${Number(minimum.value)}&max_worker=${Number(maximum.value)}&synchronous=true`),
        act("Unload", "DELETE", () => `/models/${path(model)}`),
      );
    } else {
      box.append(act("Load", "POST", () => `/models?url=${encodeURIComponent(model)}`));
    }
    box.append(note);
    return box;
  }

  async function versionPanel(model, row) {
    const base = `/v2/models/${path(model, "versions", row.version)}`;
    const [metadata, config, reports, labels, vocabulary] = await Promise.all([
      cached(base), cached(`${base}/config`),
      optional(cached(`/console/api/models/${path(model, "versions", row.version)}/reports`)),
      optional(cached(`/console/api/models/${path(model)}/files/labels.txt`)),
      optional(cached(`/console/api/models/${path(model)}/files/vocabulary.json`)),
    ]);
    const provider = ((config.parameters || {}).execution_provider || {}).string_value || "unknown";
    const workers = el("tbody");
    const queue = el("p", { class: "queue" });
    const charts = [chartFigure("requests per second", "req/s"), chartFigure("latency p50 / p99", "ms"), chartFigure("queue depth", "requests")];
    const reportNodes = Object.entries(reports || {}).map(([name, report]) => el("details", { class: "report-file", "data-report": name }, el("summary", { text: name }), renderJson(report)));
    const labelOutputs = new Set((config.output || []).filter((o) => o.label_filename).map((o) => o.name));
    const tryIt = window.TryIt.build({
      model, version: row.version, metadata, labelOutputs,
      labels: labels ? labels.labels : null, vocabulary,
      infer: (body) => api(`${base}/infer`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
    });
    state.panels.set(`${model}/${row.version}`, { workers, queue, charts });
    return el(
      "div", { class: "version", "data-version": row.version },
      el("h3", { text: `${model} · version ${row.version}` }),
      el("p", { class: "provider", text: `execution provider: ${provider} · platform ${metadata.platform}` }),
      tensorTable("input", metadata.inputs), tensorTable("output", metadata.outputs),
      queue,
      el("table", { class: "workers" }, el("thead", {}, el("tr", {}, ...["worker", "kind", "pid", "state", "uptime", "batches"].map((h) => el("th", { text: h })))), workers),
      managementActions(model, row.version),
      el("div", { class: "charts" }, ...charts.map((c) => c.figure)),
      el("h3", { text: "reports" }),
      reportNodes.length ? el("div", {}, ...reportNodes) : el("p", { class: "muted", text: "no conversion or quantization report beside this version" }),
      el("h3", { text: "try it" }), tryIt,
    );
  }

  async function renderDetails() {
    const details = document.getElementById("details");
    const model = state.selected;
    if (!model) return;
    const rows = state.index.filter((r) => r.name === model);
    const ready = rows.filter((r) => r.state === "READY" && r.version);
    const key = `${model}|${ready.map((r) => r.version).join(",")}|${state.management.connected}`;
    if (key === state.shownKey) return;
    state.shownKey = key;
    state.panels.clear();
    const head = [el("h2", { text: model })];
    for (const row of rows.filter((r) => r.state !== "READY")) {
      head.push(el("p", { class: "failure" }, el("strong", { text: `${row.version ? `version ${row.version} ` : ""}${row.state}: ` }), el("span", { class: "reason", text: row.reason || "no reason given" })));
    }
    if (!ready.length) head.push(managementActions(model, ""));
    details.replaceChildren(...head, el("p", { class: "muted", text: "loading…" }));
    try {
      const panels = await Promise.all(ready.map((row) => versionPanel(model, row)));
      if (state.shownKey !== key) return; // another model was chosen meanwhile
      details.replaceChildren(...head, ...panels);
      renderLive();
    } catch (error) {
      details.replaceChildren(...head, el("p", { class: "error", text: `could not read ${model}: ${error.message}` }));
    }
  }

  function renderLive() {
    for (const [key, panel] of state.panels) {
      const series = state.live.get(key);
      if (!series) continue;
      const status = series.status;
      panel.queue.textContent = `queue ${status.queue_depth ?? 0} of ${status.queue_capacity ?? "–"} · batches in flight ${status.batches_in_flight ?? 0} · workers ${status.min_workers ?? 0}–${status.max_workers ?? 0}${status.failure ? ` · FAILED: ${status.failure}` : ""}`;
      panel.workers.replaceChildren(...(status.workers || []).map((w) => el("tr", { "data-worker": w.id }, ...[w.id, w.kind, w.pid || "–", w.state, `${Math.round(w.uptime_s)} s`, w.batches].map((v) => el("td", { text: String(v) })))));
      const common = { times: series.t, now: state.now, window_s: state.window };
      const sets = [
        [{ label: "requests", values: series.rate }, { label: "errors", values: series.errors }],
        [{ label: "p50", values: series.p50_ms }, { label: "p99", values: series.p99_ms }],
        [{ label: "queued", values: series.queue }],
      ];
      panel.charts.forEach((chart, i) => {
        window.LineChart.draw(chart.svg, { ...common, series: sets[i], unit: chart.unit });
        window.LineChart.legend(chart.legend, sets[i], chart.unit);
      });
    }
  }

  // ---- management API: the browser calls it itself, with the operator's token ----
  async function manage(method, url) {
    const headers = state.management.token ? { authorization: `Bearer ${state.management.token}` } : {};
    return api(`${state.management.base}${url}`, { method, headers });
  }

  async function connect(event) {
    event.preventDefault();
    const note = document.getElementById("management-status");
    state.management.token = document.getElementById("management-token").value.trim();
    try {
      await manage("GET", "/models");
      state.management.connected = true;
      note.textContent = "management API connected";
    } catch (error) {
      state.management.connected = false;
      note.textContent = `management API not reachable: ${error.message}`;
    }
    state.shownKey = "";
    renderDetails();
  }

  async function refresh() {
    try {
      const [index, live] = await Promise.all([
        api("/v2/repository/index", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" }),
        api(`/console/api/live?since=${state.since}`),
      ]);
      state.index = index;
      mergeLive(live);
      if (!state.selected && index.length) state.selected = index[0].name;
      renderRepository();
      renderDetails();
      renderLive();
      setStatus(`${index.length} model versions · updated ${new Date(live.now * 1000).toLocaleTimeString()}`);
    } catch (error) {
      setStatus(`server not reachable: ${error.message}`, true);
    }
  }

  async function start() {
    try {
      const server = await api("/console/api/server");
      state.interval = server.interval_s;
      state.window = server.window_s;
      const management = server.management;
      if (management.port) {
        state.management.port = management.port;
        state.management.tokenRequired = management.token_required;
        state.management.base = `${location.protocol}//${location.hostname}:${management.port}`;
        const form = document.getElementById("management-form");
        form.hidden = false;
        if (!management.token_required) document.getElementById("management-token").placeholder = "no token configured";
        form.addEventListener("submit", connect);
      }
    } catch (error) {
      setStatus(`server not reachable: ${error.message}`, true);
    }
    await refresh();
    setInterval(refresh, state.interval * 1000);
  }

  start();
})();
