// The live dashboard: a rig's session watched over /ws/sensor-data (docs/websocket.md), with gaps
// filled over REST (`after_seq`), charts drawn by uPlot through static/charts.js.
//
// Data: one chart per sensor and numeric field, each with time-ordered xs/ys/seqs arrays bounded to
// KEEP_SECONDS and MAX_POINTS; a seq is stored once (live frames and REST pages overlap). The live
// feed is thinned by the server (`max_hz`); REST pages are thinned here the same way (each
// interval's extremes), so a backfill at 1 kHz does not flood the charts. Charts redraw in one
// animation frame after data changed, never more often.
(function () {
  "use strict";
  const R = window.RoboCharts;
  const $ = (id) => document.getElementById(id);
  const config = JSON.parse($("dashboard-config").textContent);

  const MAX_HZ = 20;                 // live readings per second per sensor this page asks for
  const KEEP_SECONDS = 600;          // the widest window
  const MAX_POINTS = 12000;          // per chart: KEEP_SECONDS × MAX_HZ
  const PAGE = 5000;                 // readings per REST page when backfilling
  const RETRY_MIN_MS = 500, RETRY_MAX_MS = 10000;
  const TILE_MS = 250;               // tiles and alert rows change at most this often
  const RATE_POLL_MS = 5000;
  const MAX_ALERTS = 200;
  // Results held for the charts' episode marks. At 1 kHz the seed's force spikes open about fifty a
  // second: without a bound, memory and every flush's work would grow for the whole 10-min window.
  const MAX_RESULTS = 2000;
  // The server's thinning sends an interval once a later reading of its sensor shows it is over, so
  // a sensor that goes quiet keeps its last readings back: a sensor quiet this long is read over REST.
  const QUIET_MS = 1500;

  const rigs = new Map(config.rigs.map((rig) => [rig.name, rig]));
  const state = {
    rig: config.rig,
    session: null,            // the watched session: {id, rig, name, status, stopping, verdict, rules, rates, reading_count}
    floorSeq: 0,              // readings of the watched session at or below this are not fetched
    lastSeq: new Map(),       // sensor -> highest seq seen
    charts: new Map(),        // chart key ("sensor" or "sensor.field") -> chart
    tiles: new Map(),         // sensor -> {at, value, rate}: its newest reading and readings per second
    results: new Map(),       // result id -> result
    windowSeconds: 30,
    paused: false,
    frozenRight: null,
    socket: null,
    retryMs: RETRY_MIN_MS,
    live: false,
    syncs: new Map(),         // sensor -> {running, from}
    arrived: new Map(),       // sensor -> performance.now() of its last live reading
    busy: 0,                  // REST backfills in flight
    backfilled: 0,            // readings the charts got from REST and not (yet) from the feed
  };

  // ---------------------------------------------------------------- helpers

  function setPill(id, text, kind) {
    const el = $(id);
    if (!el) return;
    el.textContent = text;
    el.className = "pill" + (kind ? " " + kind : "");
    el.hidden = false;
  }

  function say(text, bad) {
    const el = $("message");
    el.textContent = text || "";
    el.classList.toggle("bad", Boolean(bad));
  }

  async function api(method, path, body) {
    const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method !== "GET") {
      options.headers["Content-Type"] = "application/json";
      options.headers["X-CSRFToken"] = config.csrf_token;
      options.body = JSON.stringify(body || {});
    }
    const response = await fetch(path.startsWith("/") ? path : config.api + path, options);
    const data = await response.json().catch(() => null);
    return { response, data };
  }

  function nextLink(header) {
    const match = /<([^>]+)>;\s*rel="next"/.exec(header || "");
    return match ? match[1] : null;
  }

  function rig() { return rigs.get(state.rig) || null; }
  function sensorInfo(name) { return (rig() ? rig().sensors : []).find((s) => s.name === name) || null; }
  function isRecording(session) { return Boolean(session) && session.status === "recording"; }

  // ---------------------------------------------------------------- session state

  function describeSession(session) {
    if (!session) return ["not recording", ""];
    if (session.status === "recording" && session.stopping) return ["stopping · session " + session.id, "warn"];
    if (session.status === "recording") return ["recording · session " + session.id, "ok"];
    const verdict = session.verdict ? " · verdict " + session.verdict : "";
    const kind = session.status === "aborted" ? "bad" : { pass: "ok", warning: "warn", fail: "bad", error: "bad" }[session.verdict] || "";
    return ["not recording · session " + session.id + " " + session.status + verdict, kind];
  }

  function showSession() {
    const [text, kind] = describeSession(state.session);
    setPill("session", text, kind);
    const link = $("session-link");
    if (state.session) { link.href = "/sessions/" + state.session.id + "/"; link.hidden = false; } else link.hidden = true;
    const recording = isRecording(state.session);
    if ($("start")) {
      $("start").disabled = recording || !rig();
      $("stop").disabled = !recording || state.session.stopping;
      $("reset").disabled = !recording;
    }
    document.body.dataset.sessionStatus = state.session ? state.session.status : "none";
    updatePicker();
  }

  function updatePicker() {
    for (const option of $("rig").options) {
      const r = rigs.get(option.value);
      if (!r) continue;
      option.textContent = r.name + " (" + r.source + ")" + (isRecording(r.session) ? " · recording" : "");
    }
  }

  // A session summary (a status frame, the stop answer) or a session resource, in this page's shape.
  function sessionFrom(data) {
    const id = data.session_id ?? data.id;
    const known = [...rigs.values()].map((r) => r.session).find((s) => s && s.id === id) || {};
    return {
      ...known,
      id,
      rig: data.rig ?? known.rig,
      name: data.name ?? known.name ?? "",
      status: data.status ?? known.status,
      stopping: data.status === "recording" ? Boolean(known.stopping) : false,
      verdict: data.verdict ?? null,
      rules: data.rules ?? known.rules,
      rates: data.rates ?? known.rates,
      reading_count: data.reading_count ?? data.total_readings ?? known.reading_count ?? 0,
    };
  }

  // Record what a rig's latest session is now; the watched one follows.
  function sessionChanged(rigName, session) {
    const r = rigs.get(rigName);
    if (!r) { learnRig(rigName, session); return; }
    const previous = r.session;
    if (previous && session && previous.id > session.id) return;   // an older session's late news
    r.session = session;
    if (rigName !== state.rig) { updatePicker(); return; }
    if (session && state.session && session.id === state.session.id) {
      // The same session moved on: update the object in place (requests in flight hold it).
      const finished = isRecording(state.session) && !isRecording(session);
      for (const [key, value] of Object.entries(session)) if (value !== undefined) state.session[key] = value;
      r.session = state.session;
      showSession();
      // The live feed thins each sensor and holds its last interval: the stored record completes the charts.
      if (finished && session.status === "completed") requestSync();
      if (session.status === "aborted") { clearData(); buildTiles(); }
      return;
    }
    watch(session, { fresh: true });
  }

  // A rig created after the page was rendered: into the picker when its first session starts.
  async function learnRig(name, session) {
    const { response, data } = await api("GET", "rigs/" + encodeURIComponent(name) + "/");
    if (!response.ok || rigs.has(name)) return;
    const sensors = data.sensors.map((s) => ({ name: s.name, sensor_type: s.sensor_type, unit: s.unit || "" }));
    sensors.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    rigs.set(name, { name, source: data.source, description: data.description, sensors, session });
    const option = new Option(name, name);
    const select = $("rig");
    const after = [...select.options].find((o) => o.value > name);
    select.add(option, after || null);
    select.disabled = false;
    updatePicker();
  }

  // Start watching a session (or none): charts, tiles and alerts start over.
  async function watch(session, { fresh = false } = {}) {
    state.session = session;
    clearData();
    if (state.paused) setPaused(false);   // a paused picture of another session would mislead
    buildTiles();
    showSession();
    if (!session) return;
    // A session started while this page watches starts empty; one already recording shows its recent past.
    state.floorSeq = fresh ? 0 : Math.max(0, (session.reading_count || 0) - config.history_readings);
    if (isRecording(session) && !session.rules) {
      const { response, data } = await api("GET", "sessions/" + session.id + "/");
      if (!response.ok || state.session !== session) return;
      session.rules = data.rules;
      session.rates = data.rates;
      applyLimits();
    }
    loadResults(session);
    if (isRecording(session) && state.live) { requestSync(); fetchRates(); }
  }

  function clearData() {
    for (const chart of state.charts.values()) chart.plot.destroy();
    state.charts.clear();
    $("charts").replaceChildren();
    state.lastSeq.clear();
    state.results.clear();
    changedResults.clear();
    alertRows.clear();
    $("alerts").replaceChildren();
    $("no-alerts").hidden = false;
    state.tiles.clear();
    state.syncs.clear();
    state.arrived.clear();
    state.watchedAt = performance.now();
  }

  // ---------------------------------------------------------------- charts

  function chartKey(sensor, field) { return field ? sensor + "." + field : sensor; }

  function sensorGroup(sensor) {
    let group = $("charts").querySelector('[data-sensor-group="' + CSS.escape(sensor) + '"]');
    if (group) return group;
    group = document.createElement("div");
    group.className = "dash-sensor-charts";
    group.dataset.sensorGroup = sensor;
    // Sensors keep the rig's order whatever order their first readings come in.
    const order = (rig() ? rig().sensors : []).map((s) => s.name);
    const position = order.indexOf(sensor);
    const after = [...$("charts").children].find((el) => order.indexOf(el.dataset.sensorGroup) > position);
    $("charts").insertBefore(group, after || null);
    return group;
  }

  function chartFor(sensor, field, sensorType) {
    const key = chartKey(sensor, field);
    let chart = state.charts.get(key);
    if (chart) return chart;
    const info = sensorInfo(sensor) || {};
    const unit = info.unit || "";
    chart = { key, sensor, field, sensorType: sensorType || info.sensor_type || "", unit,
              xs: [], ys: [], seqs: [], seen: new Set(), limits: [], episodes: [], dirty: true, plot: null };
    const figure = document.createElement("figure");
    figure.className = "chart";
    figure.dataset.sensor = sensor;
    figure.dataset.key = key;
    const caption = document.createElement("figcaption");
    caption.textContent = R.axisTitle(sensor, chart.sensorType, field, unit) +
      (chart.sensorType && chart.sensorType !== sensor ? " · " + chart.sensorType : "");
    figure.appendChild(caption);
    chart.figure = figure;
    sensorGroup(sensor).appendChild(figure);
    state.charts.set(key, chart);
    chart.limits = limitsOf(chart);
    chart.episodes = episodesOf(chart);
    describeChart(chart);
    makePlot(chart);
    return chart;
  }

  function plotWidth(chart) { return Math.max(240, chart.figure.clientWidth - 16); }

  function makePlot(chart) {
    const text = R.cssVar("--text"), grid = R.cssVar("--border"), line = R.cssVar("--chart-line");
    const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const unit = chart.unit ? " " + chart.unit : "";
    chart.plot = new uPlot({
      width: plotWidth(chart),
      height: 210,
      scales: { x: { time: true }, y: { range: R.rangeWithLimits(() => chart.limits) } },
      axes: [
        { ...axis, label: "time", labelSize: 18 },
        { ...axis, label: R.axisTitle(chart.sensor, chart.sensorType, chart.field, chart.unit), labelSize: 18, size: 56 },
      ],
      series: [
        { label: "time", value: (u, v) => (v == null ? "–" : R.fmtTime(v)) },
        { label: chart.field || chart.sensor, stroke: line, width: 1.25, points: { show: false },
          value: (u, v) => (v == null ? "–" : R.fmtNumber(v) + unit) },
      ],
      plugins: [R.episodesPlugin(() => chart.episodes), R.limitsPlugin(() => chart.limits)],
      cursor: { drag: { x: false, y: false } },
    }, [chart.xs, chart.ys], chart.figure);
    chart.dirty = true;
  }

  // What the page knows about a chart, for people (aria) and tests (data attributes).
  function describeChart(chart) {
    const figure = chart.figure;
    figure.dataset.limits = chart.limits.map((l) => l.severity + ":" + l.value).join(",");
    figure.dataset.episodes = String(chart.episodes.length);
    const limits = chart.limits.length ? "limits " + chart.limits.map((l) => l.label).join("; ") : "no limits";
    const episodes = chart.episodes.length ? chart.episodes.length + " validation episode(s)" : "no validation episodes";
    figure.setAttribute("aria-label", "Chart of " + R.axisTitle(chart.sensor, chart.sensorType, chart.field, chart.unit) +
      " over time; " + limits + "; " + episodes);
  }

  function limitsOf(chart) {
    const session = state.session;
    return R.limitsFor(session && session.rules, { sensor: chart.sensor, sensor_type: chart.sensorType, field: chart.field });
  }

  function episodesOf(chart) {
    const episodes = [];
    for (const result of state.results.values()) {
      if (result.sensor === chart.sensor && ((result.details && result.details.field) || "") === chart.field) episodes.push(result);
    }
    return episodes;
  }

  function applyLimits() {
    for (const chart of state.charts.values()) {
      chart.limits = limitsOf(chart);
      describeChart(chart);
      chart.dirty = true;
    }
    scheduleDraw();
  }

  // A REST page thinned as the server thins the feed (sessions/live/decimation.py): each interval's
  // lowest and highest reading, in their order.
  function thin(points) {
    const width = 2 / MAX_HZ;
    const out = [];
    let bucket = null, low = null, high = null;
    const flush = () => {
      if (!low) return;
      if (low === high) out.push(low);
      else if (low.seq < high.seq) out.push(low, high);
      else out.push(high, low);
    };
    for (const p of points) {
      const b = Math.floor(p.x / width);
      if (b !== bucket) { flush(); bucket = b; low = high = p; continue; }
      if (p.y < low.y) low = p;
      if (p.y > high.y) high = p;
    }
    flush();
    return out;
  }

  // Readings from the feed or a REST page: the watched session's only, each seq once per chart.
  function addReadings(readings, { backfill = false } = {}) {
    const session = state.session;
    if (!session) return;
    const fresh = new Map();   // chart -> [{x, y, seq}]
    const now = performance.now();
    for (const reading of readings) {
      if (reading.session_id !== session.id) continue;
      if (!backfill) state.arrived.set(reading.sensor, now);
      const last = state.lastSeq.get(reading.sensor) || 0;
      if (reading.seq > last) state.lastSeq.set(reading.sensor, reading.seq);
      noteTile(reading);
      let counted = !backfill;
      for (const field of R.numericFields(reading.value)) {
        const chart = chartFor(reading.sensor, field, reading.sensor_type);
        if (chart.seen.has(reading.seq)) continue;
        if (!counted) { state.backfilled++; counted = true; }
        let list = fresh.get(chart);
        if (!list) fresh.set(chart, (list = []));
        list.push({ x: reading.timestamp, y: R.fieldValue(reading.value, field), seq: reading.seq });
      }
    }
    for (const [chart, list] of fresh) {
      list.sort((a, b) => a.x - b.x || a.seq - b.seq);
      insert(chart, backfill ? thin(list) : list);
    }
    if (fresh.size) scheduleDraw();
  }

  function insert(chart, points) {
    if (!points.length) return;
    const { xs, ys, seqs, seen } = chart;
    if (!xs.length || points[0].x >= xs[xs.length - 1]) {
      for (const p of points) { xs.push(p.x); ys.push(p.y); seqs.push(p.seq); seen.add(p.seq); }
    } else {
      // Merge two time-ordered runs (a backfill lands before live points already drawn).
      const mx = [], my = [], ms = [];
      let i = 0, j = 0;
      while (i < xs.length || j < points.length) {
        if (j >= points.length || (i < xs.length && xs[i] <= points[j].x)) { mx.push(xs[i]); my.push(ys[i]); ms.push(seqs[i]); i++; }
        else { const p = points[j++]; mx.push(p.x); my.push(p.y); ms.push(p.seq); seen.add(p.seq); }
      }
      chart.xs = mx; chart.ys = my; chart.seqs = ms;
    }
    trim(chart);
    chart.dirty = true;
  }

  function trim(chart) {
    const { xs } = chart;
    const horizon = xs[xs.length - 1] - KEEP_SECONDS;
    let drop = 0;
    while (drop < xs.length && xs[drop] < horizon) drop++;
    drop = Math.max(drop, xs.length - MAX_POINTS);
    if (drop <= 0) return;
    for (let k = 0; k < drop; k++) chart.seen.delete(chart.seqs[k]);
    chart.xs.splice(0, drop); chart.ys.splice(0, drop); chart.seqs.splice(0, drop);
  }

  function rightEdge() {
    let right = -Infinity;
    for (const chart of state.charts.values()) if (chart.xs.length) right = Math.max(right, chart.xs[chart.xs.length - 1]);
    return right;
  }

  let drawPending = false;
  function scheduleDraw() {
    if (drawPending) return;
    drawPending = true;
    window.requestAnimationFrame(draw);
  }

  function draw() {
    drawPending = false;
    drawSlow();
    const right = state.paused ? state.frozenRight : rightEdge();
    for (const chart of state.charts.values()) {
      if (!chart.dirty) continue;
      chart.dirty = false;
      const data = state.paused ? chart.frozen || [[], []] : [chart.xs, chart.ys];
      chart.plot.batch(() => {
        chart.plot.setData(data, false);
        if (Number.isFinite(right)) chart.plot.setScale("x", { min: right - state.windowSeconds, max: right });
      });
    }
  }

  function markAll() {
    for (const chart of state.charts.values()) chart.dirty = true;
    scheduleDraw();
  }

  function setWindow(seconds) {
    state.windowSeconds = seconds;
    for (const button of document.querySelectorAll("[data-window]")) {
      button.setAttribute("aria-pressed", String(Number(button.dataset.window) === seconds));
    }
    markAll();
  }

  function setPaused(paused) {
    state.paused = paused;
    if (paused) {
      state.frozenRight = rightEdge();
      for (const chart of state.charts.values()) chart.frozen = [chart.xs.slice(), chart.ys.slice()];
    }
    $("pause").setAttribute("aria-pressed", String(paused));
    $("pause").textContent = paused ? "Resume" : "Pause";
    $("paused").hidden = !paused;
    markAll();
  }

  // ---------------------------------------------------------------- sensor tiles

  function buildTiles() {
    const list = $("tiles");
    list.replaceChildren();
    for (const sensor of rig() ? rig().sensors : []) {
      const li = document.createElement("li");
      li.className = "card dash-tile";
      li.dataset.sensor = sensor.name;
      li.innerHTML = '<div class="dash-tile-top"><span><span class="dash-tile-name"></span> <span class="muted dash-tile-type"></span></span>' +
        '<span class="badge dash-tile-status"></span></div><div class="dash-tile-value">–</div>' +
        '<div class="muted dash-tile-rate">– readings/s</div>';
      li.querySelector(".dash-tile-name").textContent = sensor.name;
      li.querySelector(".dash-tile-type").textContent = sensor.sensor_type + (sensor.unit ? " · " + sensor.unit : "");
      list.appendChild(li);
    }
    tilesDirty = true;
    drawSlow(true);
  }

  function noteTile(reading) {
    const tile = state.tiles.get(reading.sensor) || {};
    if (!tile.at || reading.timestamp >= tile.at) { tile.at = reading.timestamp; tile.value = reading.value; }
    state.tiles.set(reading.sensor, tile);
    tilesDirty = true;
  }

  function sensorStatus(sensor) {
    let worst = "ok";
    for (const result of state.results.values()) {
      if (result.sensor !== sensor || !result.open) continue;
      if (result.status === "error") return "error";
      worst = "warning";
    }
    return worst;
  }

  function valueText(value, unit) {
    if (typeof value === "number") return R.fmtNumber(value) + (unit ? " " + unit : "");
    const fields = R.numericFields(value);
    if (fields.length) return fields.map((f) => f + " " + R.fmtNumber(value[f])).join(" · ");
    return value === undefined ? "–" : JSON.stringify(value);
  }

  // Tiles, alert rows and episodes: at most every TILE_MS (or `now`).
  let tilesDirty = false, slowAt = 0, slowTimer = null;
  const changedResults = new Set();
  function drawSlow(now) {
    if (!tilesDirty && !changedResults.size) return;
    if (!now && performance.now() - slowAt < TILE_MS) {
      if (!slowTimer) slowTimer = window.setTimeout(() => { slowTimer = null; scheduleDraw(); }, TILE_MS);
      return;
    }
    slowAt = performance.now();
    if (changedResults.size) flushResults();
    if (tilesDirty) drawTiles();
  }

  function drawTiles() {
    tilesDirty = false;
    for (const li of $("tiles").children) {
      const sensor = li.dataset.sensor;
      const tile = state.tiles.get(sensor) || {};
      const info = sensorInfo(sensor) || {};
      const status = tile.at === undefined ? "waiting" : sensorStatus(sensor);
      const badge = li.querySelector(".dash-tile-status");
      badge.textContent = status;
      badge.className = "badge dash-tile-status " + (status === "waiting" ? "" : status);
      li.dataset.status = status;
      li.querySelector(".dash-tile-value").textContent = tile.at === undefined ? "no reading yet"
        : valueText(tile.value, info.unit);
      li.querySelector(".dash-tile-value").title = tile.at === undefined ? "" : "at " + R.fmtTime(tile.at);
      li.querySelector(".dash-tile-rate").textContent =
        (tile.rate === undefined ? "–" : R.fmtNumber(tile.rate)) + " readings/s";
    }
  }

  // Readings per second, as the server counts them (the feed this page gets is thinned).
  async function fetchRates() {
    const session = state.session;
    if (state.live && isRecording(session) && !document.hidden) {
      const { response, data } = await api("GET", "sensors/status").catch(() => ({ response: { ok: false } }));
      if (response.ok && state.session === session) {
        for (const [key, info] of Object.entries(data.sensors || {})) {
          if (info.session_id !== session.id) continue;
          const name = key.includes(".") && key.startsWith(info.rig + ".") ? key.slice(info.rig.length + 1) : key;
          const tile = state.tiles.get(name) || {};
          tile.rate = info.readings_per_minute / 60;
          state.tiles.set(name, tile);
        }
        tilesDirty = true;
        scheduleDraw();
      }
    }
  }

  function pollRates() {
    fetchRates().finally(() => window.setTimeout(pollRates, RATE_POLL_MS));
  }

  // ---------------------------------------------------------------- alerts

  const alertRows = new Map();   // result id -> tr

  async function loadResults(session) {
    const { response, data } = await api("GET", "results/?session=" + session.id + "&page_size=" + MAX_ALERTS + "&ordering=-id");
    if (!response.ok || state.session !== session) return;
    for (const result of data.results.slice().reverse()) addResult(result);
  }

  function addResult(result) {
    if (!state.session || result.session_id !== state.session.id) return;
    const old = state.results.get(result.id);
    let merged = result;
    if (old) {
      // A page of results may arrive after a newer live update; each keeps what it knows best.
      const newer = (result.count || 0) >= (old.count || 0) ? result : old;
      const acked = result.acknowledged ? result : old.acknowledged ? old : newer;
      merged = { ...newer, acknowledged: acked.acknowledged, acknowledged_by: acked.acknowledged_by,
                 acknowledged_at: acked.acknowledged_at, acknowledge_comment: acked.acknowledge_comment };
    }
    state.results.set(result.id, merged);
    // Rows, episodes and tiles follow at most every TILE_MS: at 1 kHz a spiky sensor sends
    // a hundred validation frames a second.
    changedResults.add(result.id);
    tilesDirty = true;
    scheduleDraw();
  }

  // The results' rows and the charts' episodes, for what changed since the last time.
  function flushResults() {
    const horizon = rightEdge() - KEEP_SECONDS;
    for (const [id, result] of state.results) {
      // Out of every window and off the table: nothing shows it any more.
      if (!result.open && result.last_timestamp < horizon && !alertRows.has(id)) state.results.delete(id);
    }
    // Past MAX_RESULTS the oldest closed results not in the table go first (a Map iterates in arrival order).
    let excess = state.results.size - MAX_RESULTS;
    for (const [id, result] of state.results) {
      if (excess <= 0) break;
      if (!result.open && !alertRows.has(id)) { state.results.delete(id); excess--; }
    }
    for (const id of changedResults) if (state.results.has(id)) drawAlert(state.results.get(id));
    changedResults.clear();
    const byChart = new Map();
    for (const result of state.results.values()) {
      const key = chartKey(result.sensor, (result.details && result.details.field) || "");
      if (!byChart.has(key)) byChart.set(key, []);
      byChart.get(key).push(result);
    }
    for (const chart of state.charts.values()) {
      const episodes = byChart.get(chart.key) || [];
      if (episodes.length === chart.episodes.length && episodes.every((e, i) => e === chart.episodes[i])) continue;
      chart.episodes = episodes;
      describeChart(chart);
      chart.dirty = true;
    }
  }

  // [class, label]: the label heads a cell where a narrow screen shows rows as blocks.
  const ALERT_CELLS = [["dash-time", "time"], ["", "sensor"], ["", "severity"], ["", "rule"], ["num", "readings"],
                       ["num", "peak"], ["dash-ack", "acknowledgement"]];

  // A row's cells are made once and then updated in place: a result grows while it is open, and a
  // keyboard user on its Acknowledge button keeps the focus.
  function drawAlert(result) {
    const body = $("alerts");
    let row = alertRows.get(result.id);
    if (!row) {
      row = document.createElement("tr");
      row.dataset.result = String(result.id);
      for (const [className, label] of ALERT_CELLS) {
        const td = document.createElement("td");
        if (className) td.className = className;
        td.dataset.label = label;
        row.appendChild(td);
      }
      const badge = document.createElement("span");
      row.cells[2].appendChild(badge);
      alertRows.set(result.id, row);
      const after = [...body.children].find((tr) => Number(tr.dataset.result) < result.id);
      body.insertBefore(row, after || null);
      while (body.children.length > MAX_ALERTS) {
        const last = body.lastElementChild;
        alertRows.delete(Number(last.dataset.result));
        last.remove();
      }
    }
    $("no-alerts").hidden = true;
    row.dataset.status = result.status;
    const cells = row.cells;
    cells[0].textContent = result.count > 1
      ? R.fmtTime(result.first_timestamp) + " – " + R.fmtTime(result.last_timestamp) : R.fmtTime(result.first_timestamp);
    cells[1].textContent = result.sensor;
    const badge = cells[2].firstChild;
    badge.className = "badge " + (result.status === "error" ? "error" : "warning");
    badge.textContent = result.status + (result.open ? " · open" : "");
    cells[3].textContent = result.rule + ": " + result.message;
    cells[4].textContent = String(result.count);
    cells[5].textContent = R.fmtNumber(result.peak);
    const label = "Acknowledge " + result.status + " on " + result.sensor + " (" + result.rule + ")";
    const ack = cells[6];
    if (row.dataset.acknowledged === String(Boolean(result.acknowledged))) {
      const button = ack.querySelector("button");
      if (button) button.setAttribute("aria-label", label);
      return;
    }
    row.dataset.acknowledged = String(Boolean(result.acknowledged));
    ack.replaceChildren();
    if (result.acknowledged) {
      ack.textContent = "✓ acknowledged by " + (result.acknowledged_by || "a deleted user") + " at " +
        R.fmtTime(result.acknowledged_at) + (result.acknowledge_comment ? ": “" + result.acknowledge_comment + "”" : "");
    } else if (config.can_operate) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "secondary dash-ack-button";
      button.textContent = "Acknowledge";
      button.setAttribute("aria-label", label);
      button.addEventListener("click", () => askAcknowledge(result.id, button));
      ack.appendChild(button);
    } else {
      ack.textContent = "not acknowledged";
    }
  }

  function askAcknowledge(id, opener) {
    const result = state.results.get(id);
    const dialog = $("ack-dialog");
    $("ack-text").textContent = result.status + " on " + result.sensor + ": " + result.message;
    $("ack-comment").value = "";
    dialog.returnValue = "";
    dialog.onclose = async () => {
      opener.focus();
      if (dialog.returnValue !== "ack") return;
      const { response, data } = await api("POST", "results/" + id + "/acknowledge/", { comment: $("ack-comment").value });
      if (response.ok) { addResult(data); say("Alert acknowledged."); }
      else if (response.status === 409 && data && data.result) { addResult(data.result); say(data.detail, true); }
      else say((data && data.detail) || "Acknowledging failed (" + response.status + ")", true);
      drawSlow(true);
      // The button is gone with the row's old cells: keep the keyboard where the answer is.
      const row = alertRows.get(id);
      const where = row && row.querySelector(".dash-ack");
      if (where && !where.querySelector("button")) { where.tabIndex = -1; where.focus(); }
    };
    dialog.showModal();
    $("ack-comment").focus();
  }

  // ---------------------------------------------------------------- backfill over REST

  // Fetch each sensor's readings after the last one seen (or the session's floor), following Link.
  // `positions` (default: now) is where each sensor's record is known up to; a reconnection passes
  // the positions of the moment the socket opened, before frames of the new connection moved them on.
  function requestSync(names, positions = state.lastSeq) {
    const session = state.session;
    if (!session || !rig()) return;
    for (const sensor of rig().sensors) {
      if (names && !names.includes(sensor.name)) continue;
      const from = positions.has(sensor.name) ? positions.get(sensor.name) : state.floorSeq;
      const sync = state.syncs.get(sensor.name) || { running: false, from: null };
      sync.from = sync.from === null ? from : Math.min(sync.from, from);
      state.syncs.set(sensor.name, sync);
      if (!sync.running) runSync(session, sensor.name, sync);
    }
  }

  // One sensor's readings after `sync.from`, page by page. A failed page keeps its place in
  // `sync.from`, so the next sync (the next connection, or a quiet sensor's) starts there.
  async function runSync(session, sensor, sync) {
    sync.running = true;
    state.busy++;
    try {
      while (sync.from !== null && state.session === session) {
        let position = sync.from;
        sync.from = null;
        let url = config.api + "sensors/readings?" + new URLSearchParams({
          session: session.id, sensor, after_seq: position, limit: PAGE });
        while (url && state.session === session) {
          const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
            .catch(() => null);
          if (!response || response.status >= 500) {
            sync.from = sync.from === null ? position : Math.min(sync.from, position);
            return;
          }
          if (!response.ok) break;   // the session is gone, or this user may not read it
          const rows = await response.json();
          addReadings(rows, { backfill: true });
          if (rows.length) position = rows[rows.length - 1].seq;
          url = nextLink(response.headers.get("Link"));
        }
      }
    } finally {
      sync.running = false;
      state.busy--;
    }
  }

  function syncQuiet() {
    if (state.live && isRecording(state.session)) {
      const now = performance.now();
      const quiet = rig().sensors.map((s) => s.name).filter((name) => {
        const sync = state.syncs.get(name);
        return !(sync && sync.running) && now - (state.arrived.get(name) ?? state.watchedAt) > QUIET_MS;
      });
      if (quiet.length) requestSync(quiet);
    }
    window.setTimeout(syncQuiet, QUIET_MS);
  }

  // The layer lost readings on their way here: fetch exactly that range.
  async function fetchRange(sessionId, fromSeq, toSeq) {
    const session = state.session;
    if (!session || session.id !== sessionId) return;
    state.busy++;
    try {
      let url = config.api + "sensors/readings?" + new URLSearchParams({ session: sessionId, after_seq: fromSeq - 1, limit: PAGE });
      while (url && state.session === session) {
        const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (!response.ok) break;
        const rows = await response.json();
        addReadings(rows, { backfill: true });
        if (!rows.length || rows[rows.length - 1].seq >= toSeq) break;
        url = nextLink(response.headers.get("Link"));
      }
    } catch (error) {
      // As above: a later connection syncs.
    } finally {
      state.busy--;
    }
  }

  // ---------------------------------------------------------------- the live feed

  let positionsAtOpen = new Map();
  function connect() {
    setPill("connection", state.socket ? "reconnecting…" : "connecting…", "warn");
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + window.location.host + config.ws_path);
    state.socket = socket;
    socket.onopen = () => {
      positionsAtOpen = new Map(state.lastSeq);
      socket.send(JSON.stringify({ type: "subscribe", data: { batch: true, max_hz: MAX_HZ } }));
      socket.send(JSON.stringify({ type: "get_status" }));
    };
    socket.onmessage = (message) => {
      const frame = JSON.parse(message.data);
      switch (frame.type) {
        case "connection_established":
          state.retryMs = RETRY_MIN_MS;
          break;
        case "subscription_confirmed":
          // From here on every reading comes live; what came before (or while away) comes over REST.
          state.live = true;
          setPill("connection", "live", "ok");
          requestSync(null, positionsAtOpen);
          break;
        case "sensor_data_batch": addReadings(frame.data); break;
        case "sensor_data": addReadings([frame.data]); break;
        case "validation": addResult(frame.data); break;
        case "system_status": onStatus(frame.data); break;
        case "lag": onLag(frame.data); break;
        case "error": if (frame.message) say(frame.message, true); break;
      }
    };
    socket.onclose = (event) => {
      state.live = false;
      if (socket !== state.socket) return;
      if (event.code === 4401) { setPill("connection", "log in to watch", "bad"); return; }
      if (event.code === 4403) { setPill("connection", "origin refused", "bad"); return; }
      const delay = state.retryMs;
      state.retryMs = Math.min(RETRY_MAX_MS, state.retryMs * 2);
      setPill("connection", "reconnecting in " + R.fmtNumber(delay / 1000) + " s…", "warn");
      window.setTimeout(connect, delay);
    };
  }

  function onStatus(data) {
    if (Array.isArray(data.sessions)) {
      // The answer to get_status: what records now, on every rig.
      const recording = new Map(data.sessions.map((s) => [s.rig, s]));
      for (const r of rigs.values()) {
        const now = recording.get(r.name);
        if (now && (!r.session || r.session.id !== now.session_id)) {
          sessionChanged(r.name, sessionFrom({ session_id: now.session_id, rig: r.name, status: "recording" }));
        } else if (!now && isRecording(r.session)) {
          refreshSession(r.name, r.session.id);   // it ended while this page was away
        }
      }
      return;
    }
    if (data.session_id && data.rig) sessionChanged(data.rig, sessionFrom(data));
  }

  async function refreshSession(rigName, id) {
    const { response, data } = await api("GET", "sessions/" + id + "/");
    if (response.ok) sessionChanged(rigName, sessionFrom({ ...data, rig: rigName }));
  }

  let lagTimer = null;
  function onLag(data) {
    window.clearTimeout(lagTimer);
    lagTimer = window.setTimeout(() => { $("lag").hidden = true; }, 15000);
    if (data.missed_readings) {
      setPill("lag", data.missed_readings + " readings missed on the way: fetched from the record", "warn");
      fetchRange(data.session_id, data.from_seq, data.to_seq);
    } else if (data.dropped) {
      setPill("lag", data.dropped + " live frames dropped (slow connection): fetched from the record", "warn");
      requestSync();
    }
  }

  // ---------------------------------------------------------------- controls

  async function start(event) {
    event.preventDefault();
    if (!rig()) return;
    $("start").disabled = true;
    const body = { rig: state.rig, name: $("session-name").value.trim(), description: $("session-description").value.trim() };
    const { response, data } = await api("POST", "sessions/start", body);
    if (response.ok) {
      say("Recording session " + data.session_id + " on " + data.rig + ".");
      sessionChanged(data.rig, sessionFrom({ ...data, rig: data.rig, reading_count: 0 }));
    } else {
      say((data && data.detail) || "Starting failed (" + response.status + ")", true);
    }
    showSession();
  }

  async function stop() {
    const session = state.session;
    if (!isRecording(session)) return;
    session.stopping = true;
    showSession();
    const { response, data } = await api("POST", "sessions/stop", { session_id: session.id });
    if (response.ok) {
      say("Session " + data.session_id + " completed" + (data.verdict ? ", verdict " + data.verdict : "") + ".");
      sessionChanged(data.rig, sessionFrom(data));
    } else {
      session.stopping = false;
      say((data && data.detail) || "Stopping failed (" + response.status + ")", true);
      showSession();
    }
  }

  function askReset() {
    const session = state.session;
    if (!isRecording(session)) return;
    const dialog = $("reset-dialog");
    $("reset-text").textContent = "This aborts session " + session.id + " on rig " + state.rig +
      " and deletes its " + "readings. It cannot be undone.";
    dialog.returnValue = "";
    dialog.onclose = async () => {
      $("reset").focus();
      if (dialog.returnValue !== "reset") return;
      const { response, data } = await api("POST", "sessions/reset", { rig: state.rig });
      if (!response.ok) { say((data && data.detail) || "Reset failed (" + response.status + ")", true); return; }
      say(data.message + ".");
      if (data.reset) sessionChanged(data.rig, sessionFrom({ session_id: data.session_id, rig: data.rig, status: "aborted" }));
    };
    dialog.showModal();
  }

  function pickRig() {
    state.rig = $("rig").value;
    const url = new URL(window.location.href);
    url.searchParams.set("rig", state.rig);
    window.history.replaceState(null, "", url);
    say("");
    watch(rig() ? rig().session : null);
  }

  function rebuildPlots() {
    // Light/dark changed: the axes' colours are set when a plot is built.
    for (const chart of state.charts.values()) { chart.plot.destroy(); makePlot(chart); }
    markAll();
  }

  // ---------------------------------------------------------------- start

  $("rig").addEventListener("change", pickRig);
  if ($("session-form")) {
    $("session-form").addEventListener("submit", start);
    $("stop").addEventListener("click", stop);
    $("reset").addEventListener("click", askReset);
  }
  for (const button of document.querySelectorAll("[data-window]")) {
    button.addEventListener("click", () => setWindow(Number(button.dataset.window)));
  }
  $("pause").addEventListener("click", () => setPaused(!state.paused));
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", rebuildPlots);
  new ResizeObserver(() => {
    for (const chart of state.charts.values()) chart.plot.setSize({ width: plotWidth(chart), height: 210 });
  }).observe($("charts"));

  window.robotestDashboard = {
    points: () => Object.fromEntries([...state.charts].map(([key, c]) => [key, c.xs.length])),
    seqs: () => Object.fromEntries([...state.charts].map(([key, c]) => [key, c.seqs.slice()])),
    limits: () => Object.fromEntries([...state.charts].map(([key, c]) => [key, c.limits.map((l) => ({ ...l }))])),
    episodes: () => Object.fromEntries([...state.charts].map(([key, c]) => [key, c.episodes.map((e) => e.id)])),
    session: () => (state.session ? { ...state.session } : null),
    syncing: () => state.busy,
    backfilled: () => state.backfilled,
    live: () => state.live,
    window: () => state.windowSeconds,
    paused: () => state.paused,
    xRange: (key) => { const c = state.charts.get(key); return c ? [c.plot.scales.x.min, c.plot.scales.x.max] : null; },
  };

  watch(rig() ? rig().session : null);
  if (config.logged_in || config.rigs.length) connect();
  else setPill("connection", "log in to watch", "bad");
  window.setTimeout(pollRates, 1000);
  window.setTimeout(syncQuiet, QUIET_MS);
})();
