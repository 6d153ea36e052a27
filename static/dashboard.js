// The live dashboard: one WebSocket to /ws/sensor-data, uPlot charts of the last 30 s per sensor.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("dashboard-config").textContent);
  const WINDOW_SECONDS = 30;
  const charts = {};   // sensor name -> {plot, xs, ys, field}
  const $ = (id) => document.getElementById(id);

  function setPill(id, text, kind) {
    const el = $(id);
    el.textContent = text;
    el.className = "pill" + (kind ? " " + kind : "");
    el.hidden = false;
  }

  function numericSeries(reading) {
    // Scalars chart as they are; an object value charts its first numeric field (camera: brightness).
    if (typeof reading.value === "number") return { field: "", value: reading.value };
    if (reading.value && typeof reading.value === "object") {
      for (const key of ["brightness", "fz", ...Object.keys(reading.value)]) {
        if (typeof reading.value[key] === "number") return { field: key, value: reading.value[key] };
      }
    }
    return null;
  }

  function chartFor(reading, field) {
    let chart = charts[reading.sensor];
    if (chart) return chart;
    const box = document.createElement("div");
    box.className = "chart";
    box.dataset.sensor = reading.sensor;
    const title = document.createElement("h3");
    title.textContent = reading.sensor + (field ? " · " + field : "") + " (" + reading.sensor_type + ")";
    box.appendChild(title);
    $("charts").appendChild(box);
    chart = { xs: [], ys: [], field };
    chart.plot = new uPlot(
      { width: Math.min(560, window.innerWidth - 40), height: 200, scales: { x: { time: true } },
        series: [{}, { label: field || reading.sensor, stroke: "#1f5fbf", width: 1 }] },
      [chart.xs, chart.ys], box);
    charts[reading.sensor] = chart;
    return chart;
  }

  function addReadings(readings) {
    const touched = new Set();
    for (const reading of readings) {
      const point = numericSeries(reading);
      if (!point) continue;
      const chart = chartFor(reading, point.field);
      chart.xs.push(reading.timestamp);
      chart.ys.push(point.value);
      touched.add(chart);
    }
    for (const chart of touched) {
      const horizon = chart.xs[chart.xs.length - 1] - WINDOW_SECONDS;
      let drop = 0;
      while (drop < chart.xs.length && chart.xs[drop] < horizon) drop++;
      if (drop) { chart.xs.splice(0, drop); chart.ys.splice(0, drop); }
    }
  }

  function redraw() {
    for (const chart of Object.values(charts)) chart.plot.setData([chart.xs, chart.ys]);
    window.requestAnimationFrame(redraw);
  }

  const alertRows = new Map();  // result id -> row: a result is sent when opened and again when it grows or closes

  function addAlert(result) {
    let row = alertRows.get(result.id);
    const body = $("alerts");
    if (!row) {
      row = document.createElement("tr");
      alertRows.set(result.id, row);
      body.insertBefore(row, body.firstChild);
    }
    row.replaceChildren();
    const cells = [new Date(result.last_timestamp * 1000).toLocaleTimeString(), result.sensor, result.status,
                   String(result.count), result.message];
    for (const text of cells) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.appendChild(cell);
    }
    row.className = "status-" + result.status;
    while (body.children.length > 25) {
      const last = body.lastChild;
      for (const [id, r] of alertRows) if (r === last) alertRows.delete(id);
      body.removeChild(last);
    }
  }

  function showStatus(data) {
    if (data.status === "recording") setPill("session", "recording · session " + data.session_id, "ok");
    else if (data.status) setPill("session", "session " + data.session_id + " " + data.status + (data.verdict ? " · " + data.verdict : ""));
    else if (data.recording === false) setPill("session", "not recording");
    else if (data.recording) setPill("session", "recording", "ok");
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + window.location.host + config.ws_path);
    socket.onopen = () => {
      setPill("connection", "live", "ok");
      // The browser charts at most 50 readings a second per sensor; spikes are kept (max_hz keeps extremes).
      socket.send(JSON.stringify({ type: "subscribe", data: { batch: true, max_hz: 50 } }));
      socket.send(JSON.stringify({ type: "get_status" }));
    };
    socket.onmessage = (message) => {
      const frame = JSON.parse(message.data);
      switch (frame.type) {
        case "sensor_data_batch": addReadings(frame.data); break;
        case "sensor_data": addReadings([frame.data]); break;
        case "validation": addAlert(frame.data); break;
        case "system_status": showStatus(frame.data); break;
        case "lag":
          setPill("lag", frame.data.missed_readings
            ? frame.data.missed_readings + " readings missed on the way (reload to see them)"
            : frame.data.dropped + " frames dropped (slow connection)", "warn");
          break;
        case "error": $("message").textContent = frame.message; break;
      }
    };
    socket.onclose = (event) => {
      if (event.code === 4401) { setPill("connection", "log in to watch", "bad"); return; }
      if (event.code === 4403) { setPill("connection", "origin refused", "bad"); return; }
      setPill("connection", "reconnecting…", "warn");
      window.setTimeout(connect, 2000);
    };
  }

  async function post(path) {
    const response = await fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: { "X-CSRFToken": config.csrf_token, "Content-Type": "application/json" }, body: "{}",
    });
    const body = await response.json().catch(() => ({}));
    $("message").textContent = response.ok ? "" : (body.detail || response.statusText);
  }

  if ($("start")) $("start").onclick = () => post(config.start_url);
  if ($("stop")) $("stop").onclick = () => post(config.stop_url);
  connect();
  window.requestAnimationFrame(redraw);
})();
