// The session page (/sessions/<id>/): one chart per sensor (per numeric field of object values) over
// the whole session, as a min/max band with the mean line, from the aggregated-readings endpoint;
// drag to zoom re-queries the range at a finer interval, down to the raw readings; a recording
// session's page follows the live feed (docs/websocket.md).
//
// window.robotestReview = {ready, lastZoom: {requested_at, drawn_at, interval_seconds | raw}}
// (performance.now() milliseconds) is read by the browser tests and benchmarks/pages.py.
(function () {
  "use strict";
  const RC = window.RoboCharts;
  const config = JSON.parse(document.getElementById("review-config").textContent);
  const $ = (id) => document.getElementById(id);
  const review = window.robotestReview = { ready: false, lastZoom: null };
  const API = "/api/v1/sensors/readings";
  // A zoomed range expected to hold at most this many readings is drawn reading by reading.
  const RAW_MAX = 2000;
  // A zoomed range expected to hold more than this many readings is aggregated over whole seconds.
  const BIN_MAX = 20000;
  const LIVE_HZ = 20;
  const HEIGHT = 220;
  const charts = [];

  function isMeasurement(field) { return field !== "id" && !field.endsWith("_id"); }

  // ------------------------------------------------------------------ data

  // Columns [x, min, max, mean] plus counts (for merging live readings into buckets).
  function emptyData() { return { xs: [], mins: [], maxs: [], means: [], counts: [] }; }

  function fromBuckets(answer) {
    const data = emptyData();
    for (const b of answer.data) {
      data.xs.push((b.interval_start + b.interval_end) / 2);
      data.mins.push(b.min);
      data.maxs.push(b.max);
      data.means.push(b.average);
      data.counts.push(b.count);
    }
    return data;
  }

  function fromReadings(rows, field) {
    const data = emptyData();
    for (const row of rows) {
      const v = RC.fieldValue(row.value, field);
      if (v === null) continue;
      data.xs.push(row.timestamp);
      data.mins.push(v); data.maxs.push(v); data.means.push(v); data.counts.push(1);
    }
    return data;
  }

  function columns(data) { return [data.xs, data.mins, data.maxs, data.means]; }

  function query(params) {
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) {
      if (value !== "" && value !== null && value !== undefined) search.set(key, value);
    }
    return search.toString();
  }

  async function getJson(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(response.status + " " + (body.detail || JSON.stringify(body)));
    }
    return { data: await response.json(), more: /rel="next"/.test(response.headers.get("Link") || "") };
  }

  // `points` buckets over the range (null: whole seconds, read from the per-second rollups).
  function aggregated(chart, points, range) {
    const params = { session: config.session, sensor: chart.sensor, field: chart.field };
    if (points) params.max_points = points; else params.interval_seconds = 1;
    if (range) { params.start_time = range[0].toFixed(6); params.end_time = range[1].toFixed(6); }
    return getJson(API + "/aggregated?" + query(params)).then(({ data }) => ({
      data: fromBuckets(data), interval: data.interval_seconds, raw: false,
    }));
  }

  // The range's readings, or null when there are more than RAW_MAX (the caller aggregates instead).
  async function raw(chart, range) {
    const params = { session: config.session, sensor: chart.sensor, start_time: range[0].toFixed(6),
                     end_time: range[1].toFixed(6), limit: RAW_MAX };
    const { data, more } = await getJson(API + "?" + query(params));
    return more ? null : { data: fromReadings(data, chart.field), interval: null, raw: true };
  }

  // What to ask for a zoomed range. Few enough readings (by the sensor's rate or, when it is
  // unknown, buckets shorter than a second): the readings themselves. Buckets shorter than a
  // second are binned from the readings, which costs in proportion to them: past BIN_MAX, whole
  // seconds from the rollups instead (fewer points, but as fast as the first draw).
  async function fetchRange(chart, range) {
    const span = range[1] - range[0];
    const points = pointsFor(chart);
    const expected = chart.rate ? chart.rate * span : null;
    const subSecond = span / points < 1;
    if (expected !== null ? expected <= RAW_MAX : subSecond) {
      const readings = await raw(chart, range);
      if (readings) return readings;
    }
    if (subSecond && (expected === null || expected > BIN_MAX)) return aggregated(chart, null, range);
    return aggregated(chart, points, range);
  }

  function pointsFor(chart) {
    return Math.max(50, Math.min(config.max_points, Math.round(chart.box.clientWidth || 600)));
  }

  // ------------------------------------------------------------------ charts

  function width(chart) { return Math.max(260, chart.box.clientWidth - 4); }

  function makePlot(chart) {
    const line = RC.cssVar("--chart-line");
    const band = RC.cssVar("--chart-band");
    const label = chart.field || chart.sensor;
    const opts = {
      width: width(chart), height: HEIGHT,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
      scales: { x: { time: true }, y: { range: RC.rangeWithLimits(() => chart.limits) } },
      axes: [
        { stroke: RC.cssVar("--muted"), grid: { stroke: RC.cssVar("--border"), width: 1 } },
        { stroke: RC.cssVar("--muted"), grid: { stroke: RC.cssVar("--border"), width: 1 }, size: 60,
          label: chart.unit || undefined, values: (u, ticks) => ticks.map(RC.fmtNumber) },
      ],
      series: [
        { label: "time (UTC)", value: (u, v) => (v === null || v === undefined ? "–" : utcTime(v)) },
        { label: "min", stroke: band, width: 1, value: (u, v) => RC.fmtNumber(v) },
        { label: "max", stroke: band, width: 1, value: (u, v) => RC.fmtNumber(v) },
        { label: "mean " + label, stroke: line, width: 1.5, value: (u, v) => RC.fmtNumber(v) },
      ],
      bands: [{ series: [2, 1], fill: band }],
      cursor: { drag: { x: true, y: false, setScale: false } },
      plugins: [RC.limitsPlugin(() => chart.limits), RC.episodesPlugin(() => chart.episodes)],
      hooks: { setSelect: [(u) => onSelect(chart, u)] },
    };
    chart.box.replaceChildren();
    chart.plot = new uPlot(opts, columns(chart.shown), chart.box);
  }

  function newChart(spec, figure) {
    const chart = {
      sensor: spec.sensor, sensor_type: spec.sensor_type, unit: spec.unit, field: spec.field, rate: spec.rate_hz,
      figure, box: figure.querySelector(".review-plot"), resolution: figure.querySelector(".review-resolution"),
      reset: figure.querySelector(".review-reset"), plot: null, full: emptyData(), shown: null, interval: null,
      zoom: null, zoomToken: 0, backlog: [],
    };
    chart.limits = RC.limitsFor(config.rules, chart);
    chart.episodes = episodesFor(chart);
    chart.reset.addEventListener("click", () => resetZoom(chart));
    if (!chart.box.firstChild) {
      chart.box.append(Object.assign(document.createElement("p"), { className: "muted", textContent: "Loading…" }));
    }
    charts.push(chart);
    return chart;
  }

  function episodesFor(chart) {
    return config.episodes.filter((e) => e.sensor === chart.sensor && (e.field || "") === chart.field);
  }

  function describe(chart, result) {
    const n = result.data.xs.length;
    chart.resolution.textContent = result.raw
      ? n + " readings, each drawn"
      : n ? n + " intervals of " + seconds(result.interval)
        : config.status === "recording" ? "no readings yet" : "no readings";
  }

  // Grouped as the server groups them (12,600).
  function count(n) { return Number(n).toLocaleString("en-US"); }

  function utcTime(unix) { return new Date(unix * 1000).toISOString().slice(11, 23); }

  // As the server writes it (sessions/pages/review.py duration_text).
  function durationText(s) {
    if (s < 60) return s.toFixed(1) + " s";
    const minutes = Math.floor(s / 60) % 60, hours = Math.floor(s / 3600), secs = Math.floor(s) % 60;
    const two = (n) => String(n).padStart(2, "0");
    return hours ? hours + " h " + two(minutes) + " min" : minutes + " min " + two(secs) + " s";
  }

  function seconds(s) {
    if (s === null || s === undefined) return "–";
    return s >= 1 ? RC.fmtNumber(s) + " s" : RC.fmtNumber(s * 1000) + " ms";
  }

  function draw(chart, result) {
    chart.shown = result.data;
    describe(chart, result);
    if (!chart.plot) makePlot(chart);
    else chart.plot.setData(columns(chart.shown));
  }

  async function loadWhole(chart) {
    const result = await aggregated(chart, pointsFor(chart), null);
    chart.full = result.data;
    chart.interval = result.interval;
    draw(chart, result);
    for (const [t, v] of chart.backlog.splice(0)) append(chart, t, v);
  }

  // ------------------------------------------------------------------ zoom

  function onSelect(chart, u) {
    if (u.select.width < 3) return;
    const range = [u.posToVal(u.select.left, "x"), u.posToVal(u.select.left + u.select.width, "x")];
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    zoom(chart, range);
  }

  async function zoom(chart, range) {
    const requested = performance.now();
    const token = ++chart.zoomToken;
    chart.zoom = range;
    chart.reset.hidden = false;
    chart.figure.classList.add("zoomed");
    let result;
    try {
      result = await fetchRange(chart, range);
    } catch (error) {
      chart.resolution.textContent = "could not load this range: " + error.message;
      return;
    }
    if (token !== chart.zoomToken) return;  // a later zoom or a reset replaced this one
    chart.shown = result.data;
    describe(chart, result);
    chart.plot.batch(() => {
      chart.plot.setData(columns(chart.shown), false);
      chart.plot.setScale("x", { min: range[0], max: range[1] });
    });
    requestAnimationFrame(() => {
      review.lastZoom = { requested_at: requested, drawn_at: performance.now(), sensor: chart.sensor,
                          field: chart.field, start_time: range[0], end_time: range[1],
                          ...(result.raw ? { raw: true } : { interval_seconds: result.interval }) };
    });
  }

  function resetZoom(chart) {
    chart.zoomToken++;
    chart.zoom = null;
    chart.reset.hidden = true;
    chart.figure.classList.remove("zoomed");
    chart.shown = chart.full;
    describe(chart, { data: chart.full, interval: chart.interval, raw: false });
    chart.plot.setData(columns(chart.full), true);
    chart.figure.querySelector("h3").focus();  // the button that had the focus is gone
  }

  // An alert's "Show on chart": its run of readings with as much again either side (a keyboard way to zoom).
  function showAlert(button) {
    const from = Number(button.dataset.from), to = Number(button.dataset.to);
    const pad = Math.max((to - from) * 1.5, 0.5);
    const targets = charts.filter((c) => c.sensor === button.dataset.sensor && c.field === button.dataset.field);
    for (const chart of targets) if (chart.plot) zoom(chart, [from - pad, to + pad]);
    if (targets.length) {
      targets[0].figure.scrollIntoView({ block: "center" });
      targets[0].figure.querySelector("h3").focus({ preventScroll: true });
    }
  }

  // ------------------------------------------------------------------ live

  const pending = new Set();
  let frameAsked = false;

  function redrawSoon(chart) {
    pending.add(chart);
    if (frameAsked) return;
    frameAsked = true;
    requestAnimationFrame(() => {
      frameAsked = false;
      for (const c of pending) {
        if (!c.plot || c.zoom) continue;
        c.plot.setData(columns(c.full), true);
        c.resolution.textContent = "live: " + c.full.xs.length + " intervals of " + seconds(c.interval);
      }
      pending.clear();
    });
  }

  // Adds one reading to the last interval (or a new one); halves the resolution when the chart grows too long.
  function append(chart, t, v) {
    if (!chart.plot) { chart.backlog.push([t, v]); return; }  // the whole session's answer is still coming
    const d = chart.full;
    const step = Math.max(chart.interval || 0, 1 / LIVE_HZ);
    chart.interval = step;
    const start = Math.floor(t / step) * step;
    const x = start + step / 2;
    const last = d.xs.length - 1;
    if (last >= 0 && Math.abs(d.xs[last] - x) < step / 2) {
      d.mins[last] = Math.min(d.mins[last], v);
      d.maxs[last] = Math.max(d.maxs[last], v);
      d.means[last] += (v - d.means[last]) / ++d.counts[last];
    } else if (last < 0 || x > d.xs[last]) {
      d.xs.push(x); d.mins.push(v); d.maxs.push(v); d.means.push(v); d.counts.push(1);
      if (d.xs.length > 2 * config.max_points) coarsen(chart);
    } else {
      return;  // older than what the chart holds already (it came with the first load)
    }
    redrawSoon(chart);
  }

  function coarsen(chart) {
    const d = chart.full;
    const step = chart.interval * 2;
    const out = emptyData();
    for (let i = 0; i < d.xs.length; i++) {
      const x = Math.floor(d.xs[i] / step) * step + step / 2;
      const j = out.xs.length - 1;
      if (j >= 0 && out.xs[j] === x) {
        out.mins[j] = Math.min(out.mins[j], d.mins[i]);
        out.maxs[j] = Math.max(out.maxs[j], d.maxs[i]);
        out.means[j] = (out.means[j] * out.counts[j] + d.means[i] * d.counts[i]) / (out.counts[j] + d.counts[i]);
        out.counts[j] += d.counts[i];
      } else {
        out.xs.push(x); out.mins.push(d.mins[i]); out.maxs.push(d.maxs[i]);
        out.means.push(d.means[i]); out.counts.push(d.counts[i]);
      }
    }
    chart.full = out;
    chart.interval = step;
    if (!chart.zoom) chart.shown = out;
  }

  // A sensor first seen live with object values: its placeholder chart becomes one chart per numeric field.
  function splitByField(chart, value) {
    const fields = RC.numericFields(value).filter((f) => f && isMeasurement(f));
    if (!fields.length) return [];
    const index = charts.indexOf(chart);
    charts.splice(index, 1);
    const made = fields.map((field) => {
      const figure = chart.figure.cloneNode(true);
      figure.dataset.field = field;
      figure.querySelector("h3").firstChild.textContent = chart.sensor + " · " + field + " ";
      chart.figure.before(figure);
      const c = newChart({ ...chart, rate_hz: chart.rate, field }, figure);
      c.interval = chart.interval;
      draw(c, { data: c.full, interval: c.interval, raw: false });
      return c;
    });
    chart.figure.remove();
    return made;
  }

  function onReadings(readings) {
    let last = null;
    for (const reading of readings) {
      if (reading.session_id !== config.session) continue;
      if (!last || reading.seq > last.seq) last = reading;
      for (let chart of charts.filter((c) => c.sensor === reading.sensor)) {
        if (!chart.field && reading.value && typeof reading.value === "object") {
          for (const c of splitByField(chart, reading.value)) {
            const v = RC.fieldValue(reading.value, c.field);
            if (v !== null) append(c, reading.timestamp, v);
          }
          continue;
        }
        const v = RC.fieldValue(reading.value, chart.field);
        if (v !== null) append(chart, reading.timestamp, v);
      }
    }
    if (last) {
      $("review-readings").textContent = count(last.seq);
      $("review-duration").textContent = durationText(Date.now() / 1000 - config.started_at);
    }
  }

  function onValidation(result) {
    if (result.session_id !== config.session) return;
    const episode = { sensor: result.sensor, field: (result.details && result.details.field) || "", status: result.status,
                      first_timestamp: result.first_timestamp, last_timestamp: result.last_timestamp, id: result.id };
    const known = config.episodes.find((e) => e.id === result.id);
    if (known) Object.assign(known, episode); else config.episodes.push(episode);
    $("review-alerts").textContent = count(config.episodes.length);
    for (const chart of charts) {
      if (chart.sensor !== result.sensor) continue;
      chart.episodes = episodesFor(chart);
      if (chart.plot) chart.plot.redraw(false);
    }
  }

  const VERDICT_CLASS = { pass: "ok", warning: "warning", fail: "fail", error: "error" };

  function onStatus(summary) {
    if (summary.session_id !== config.session) return;
    $("review-status").textContent = summary.status;
    if (summary.status === "recording") {
      $("review-status").innerHTML = '<span class="pill info">● recording</span>';
    }
    const verdict = $("review-verdict");
    if (summary.verdict) {
      const badge = document.createElement("span");
      badge.className = "badge " + (VERDICT_CLASS[summary.verdict] || "");
      badge.textContent = summary.verdict;
      verdict.replaceChildren(badge);
    }
    if (summary.stopped_at) {
      const at = new Date(summary.stopped_at);
      $("review-stopped").textContent = at.toISOString().replace("T", " ").slice(0, 23) + " UTC";
    }
    if (summary.total_readings !== undefined) $("review-readings").textContent = count(summary.total_readings);
    if (summary.validation_alerts !== undefined) $("review-alerts").textContent = count(summary.validation_alerts);
    if (summary.session_duration !== undefined) $("review-duration").textContent = durationText(summary.session_duration);
    const live = $("review-live");
    if (summary.status !== "recording") {
      live.textContent = "Recording ended (" + summary.status + "): reload for the final statistics and alerts.";
      if (socket) socket.close(1000);
    }
  }

  let socket = null;

  function goLive() {
    const live = $("review-live");
    live.hidden = false;
    live.textContent = "Connecting to the live feed…";
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + config.ws_path);
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ type: "subscribe", data: { session: config.session, batch: true, max_hz: LIVE_HZ } }));
    });
    socket.addEventListener("message", (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === "sensor_data_batch") onReadings(frame.data);
      else if (frame.type === "sensor_data") onReadings([frame.data]);
      else if (frame.type === "validation") onValidation(frame.data);
      else if (frame.type === "system_status" && frame.data && frame.data.session_id !== undefined) onStatus(frame.data);
      else if (frame.type === "subscription_confirmed") {
        live.textContent = "Live: new readings are added as they are stored.";
      }
      else if (frame.type === "error") live.textContent = "Live feed: " + frame.message;
    });
    socket.addEventListener("close", (event) => {
      if (event.code !== 1000) live.textContent = "The live feed closed (" + event.code + "); reload to resume.";
    });
  }

  // ------------------------------------------------------------------ start

  function resize() {
    for (const chart of charts) if (chart.plot) chart.plot.setSize({ width: width(chart), height: HEIGHT });
  }

  async function start() {
    const figures = [...document.querySelectorAll("#review-charts figure.review-chart")];
    for (let i = 0; i < figures.length; i++) newChart(config.charts[i], figures[i]);
    // One aggregated request per chart, all at once; each chart draws when its answer comes.
    const loads = charts.slice().map((chart) => loadWhole(chart).catch((error) => {
      chart.box.replaceChildren(Object.assign(document.createElement("p"),
        { className: "muted", textContent: "Could not load the readings: " + error.message }));
    }));
    if (config.status === "recording") goLive();
    await Promise.all(loads);
    for (const button of document.querySelectorAll("button.review-show")) {
      if (!charts.some((c) => c.sensor === button.dataset.sensor && c.field === button.dataset.field)) continue;
      button.hidden = false;
      button.addEventListener("click", () => showAlert(button));
    }
    requestAnimationFrame(() => { review.ready = true; document.body.dataset.reviewReady = "true"; });
    let pendingResize = null;
    window.addEventListener("resize", () => {
      clearTimeout(pendingResize);
      pendingResize = setTimeout(resize, 150);
    });
  }

  start();
})();
