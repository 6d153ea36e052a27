// RoboCharts: the chart helpers the dashboard and the session pages share (uPlot, no build step).
//
// Load after static/vendor/uplot/uPlot.iife.min.js; defines window.RoboCharts:
//   cssVar(name)                      a :root custom property ("--chart-error"), so charts follow light/dark
//   numericFields(value)              [""] for a number; an object value's numeric keys (stable order; not
//                                     identifiers: "id", "*_id", so a camera charts brightness and exposure); [] otherwise
//   fieldValue(value, field)          the number charted for that field, or null
//   limitsFor(rules, {sensor, sensor_type, field})
//                                     the range rules' bounds that apply, as [{value, severity, label, code}]
//   limitsPlugin(getLimits)           uPlot plugin: a horizontal line per limit (error solid, warning dashed)
//   rangeWithLimits(limits)           a scales.y.range function covering the data and the limits (an array,
//                                     or a function returning one); the plugin only draws: pass this as the
//                                     y range to keep limits in view
//   episodesPlugin(getEpisodes)       uPlot plugin: shades each {first_timestamp, last_timestamp, status}
//                                     (Unix seconds) on the x axis and marks its start, so a one-reading
//                                     episode is still visible
//   fmtTime(unixSeconds)              "HH:MM:SS.mmm" (local time)
//   fmtNumber(x)                      a number with a sensible precision
//   axisTitle(sensor, sensor_type, field, unit)
//                                     "force (N)", "camera · brightness" (unit added when given)
// A getter is called at every draw, so the caller changes limits or episodes and calls plot.redraw().
(function () {
  "use strict";

  // Object values chart these first, then any other numeric key in alphabetical order.
  const PREFERRED_FIELDS = ["brightness", "exposure", "fz", "fx", "fy", "value"];

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function numericFields(value) {
    if (typeof value === "number") return Number.isFinite(value) ? [""] : [];
    if (!value || typeof value !== "object" || Array.isArray(value)) return [];
    const keys = Object.keys(value).filter(
      (key) => typeof value[key] === "number" && key !== "id" && !key.endsWith("_id"));
    const preferred = PREFERRED_FIELDS.filter((key) => keys.includes(key));
    const rest = keys.filter((key) => !PREFERRED_FIELDS.includes(key)).sort();
    return preferred.concat(rest);
  }

  function fieldValue(value, field) {
    const x = field ? (value && typeof value === "object" ? value[field] : undefined) : value;
    return typeof x === "number" && Number.isFinite(x) ? x : null;
  }

  const BOUNDS = [
    ["error_low", "error", "≥"], ["warning_low", "warning", "≥"],
    ["warning_high", "warning", "≤"], ["error_high", "error", "≤"],
  ];

  function limitsFor(rules, target) {
    const field = target.field || "";
    const limits = [];
    for (const rule of rules || []) {
      if (rule.kind !== "range") continue;
      const applies = rule.sensor ? rule.sensor === target.sensor : rule.sensor_type === target.sensor_type;
      if (!applies || (rule.field || "") !== field) continue;
      for (const [key, severity, sign] of BOUNDS) {
        const value = rule[key];
        if (value === null || value === undefined) continue;
        limits.push({ value: Number(value), severity, code: rule.code,
                      label: rule.code + " " + severity + " " + sign + " " + fmtNumber(Number(value)) });
      }
    }
    return limits;
  }

  // Paints each item inside the plot area (clipped), in canvas pixels; nothing when there are none.
  // `color(status)` is the severity's colour, read from the stylesheet once per paint: a style read
  // per item costs a style recalculation each, and a busy chart has thousands of episodes.
  function paintEach(u, items, paint) {
    if (!items || !items.length) return;
    const ctx = u.ctx;
    const box = u.bbox;
    const ratio = window.devicePixelRatio || 1;
    const colors = { error: cssVar("--chart-error"), warning: cssVar("--chart-warn") };
    const color = (status) => (status === "error" ? colors.error : colors.warning);
    ctx.save();
    ctx.beginPath();
    ctx.rect(box.left, box.top, box.width, box.height);
    ctx.clip();
    for (const item of items) paint(ctx, item, box, ratio, color);
    ctx.restore();
  }

  function limitsPlugin(getLimits) {
    return {
      hooks: {
        draw: [(u) => paintEach(u, getLimits(), (ctx, limit, box, ratio, color) => {
          const y = Math.round(u.valToPos(limit.value, "y", true)) + 0.5;
          if (!Number.isFinite(y)) return;
          ctx.lineWidth = 1.5 * ratio;
          ctx.strokeStyle = color(limit.severity);
          ctx.setLineDash(limit.severity === "error" ? [] : [6 * ratio, 4 * ratio]);
          ctx.beginPath();
          ctx.moveTo(box.left, y);
          ctx.lineTo(box.left + box.width, y);
          ctx.stroke();
        })],
      },
    };
  }

  function rangeWithLimits(limits) {
    const getLimits = typeof limits === "function" ? limits : () => limits;
    return (u, dataMin, dataMax) => {
      let min = dataMin, max = dataMax;
      for (const limit of (getLimits() || [])) {
        if (min === null || min === undefined || limit.value < min) min = limit.value;
        if (max === null || max === undefined || limit.value > max) max = limit.value;
      }
      if (min === null || min === undefined || max === null || max === undefined) return [0, 1];
      if (min === max) { const pad = Math.abs(min) * 0.1 || 1; return [min - pad, max + pad]; }
      const pad = (max - min) * 0.06;
      return [min - pad, max + pad];
    };
  }

  function withAlpha(color, alpha) {
    // "#rrggbb" → rgba(); anything else is used as is under globalAlpha.
    const hex = /^#([0-9a-f]{6})$/i.exec(color);
    if (!hex) return color;
    const n = parseInt(hex[1], 16);
    return "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + alpha + ")";
  }

  // Episodes closer than a pixel column (shading) or two pixels (markers) are drawn once: a spiky
  // sensor at 1 kHz has tens of thousands in a 10-minute window, and painting each is what costs.
  // Errors are painted after warnings, so where both mark one instant the error shows.
  function episodesPlugin(getEpisodes) {
    const ordered = () => {
      const episodes = getEpisodes() || [];
      return episodes.filter((e) => e.status !== "error").concat(episodes.filter((e) => e.status === "error"));
    };
    return {
      hooks: {
        // Under the series: shade each episode's span.
        drawClear: [(u) => {
          const done = new Set();
          paintEach(u, ordered(), (ctx, episode, box, ratio, color) => {
            const x0 = u.valToPos(episode.first_timestamp, "x", true);
            const x1 = u.valToPos(episode.last_timestamp ?? episode.first_timestamp, "x", true);
            if (!Number.isFinite(x0) || !Number.isFinite(x1) || x1 < box.left || x0 > box.left + box.width) return;
            if (x1 - x0 < 1) {
              const key = episode.status + Math.floor(x0);
              if (done.has(key)) return;
              done.add(key);
            }
            ctx.fillStyle = withAlpha(color(episode.status), 0.16);
            ctx.fillRect(x0, box.top, Math.max(x1 - x0, 1), box.height);
          });
        }],
        // Over the series: a start marker (a dotted line and a triangle on the top edge).
        draw: [(u) => {
          const done = new Set();
          paintEach(u, ordered(), (ctx, episode, box, ratio, color) => {
            const x = Math.round(u.valToPos(episode.first_timestamp, "x", true)) + 0.5;
            if (!Number.isFinite(x) || x < box.left || x > box.left + box.width) return;
            const key = episode.status + Math.round(x / (2 * ratio));
            if (done.has(key)) return;
            done.add(key);
            ctx.strokeStyle = color(episode.status);
            ctx.fillStyle = ctx.strokeStyle;
            ctx.lineWidth = ratio;
            ctx.setLineDash([2 * ratio, 3 * ratio]);
            ctx.beginPath();
            ctx.moveTo(x, box.top);
            ctx.lineTo(x, box.top + box.height);
            ctx.stroke();
            ctx.setLineDash([]);
            const s = 5 * ratio;
            ctx.beginPath();
            ctx.moveTo(x - s, box.top);
            ctx.lineTo(x + s, box.top);
            ctx.lineTo(x, box.top + 1.6 * s);
            ctx.closePath();
            ctx.fill();
          });
        }],
      },
    };
  }

  function pad(n, width) { return String(n).padStart(width, "0"); }

  function fmtTime(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
    const date = new Date(seconds * 1000);
    return pad(date.getHours(), 2) + ":" + pad(date.getMinutes(), 2) + ":" + pad(date.getSeconds(), 2) +
      "." + pad(date.getMilliseconds(), 3);
  }

  function fmtNumber(x) {
    if (x === null || x === undefined || typeof x !== "number" || !Number.isFinite(x)) return "–";
    const abs = Math.abs(x);
    if (abs !== 0 && (abs >= 1e6 || abs < 1e-3)) return x.toExponential(2);
    if (Number.isInteger(x)) return String(x);
    const digits = abs >= 100 ? 1 : abs >= 1 ? 2 : 3;
    return String(Number(x.toFixed(digits)));
  }

  function axisTitle(sensor, sensorType, field, unit) {
    let title = sensor || sensorType || "";
    if (field) title += " · " + field;
    if (unit) title += " (" + unit + ")";
    return title;
  }

  window.RoboCharts = {
    cssVar, numericFields, fieldValue, limitsFor, limitsPlugin, rangeWithLimits, episodesPlugin,
    fmtTime, fmtNumber, axisTitle,
  };
})();
