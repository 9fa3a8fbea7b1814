// The dashboards' charts: uPlot (bundled from npm by `npm run build`, no CDN) behind two calls.
//
//   AGCharts.timeseries(el, data, series, opts)  data: {t: [unix s], key: [value|null], ...}
//   AGCharts.bars(el, labels, values, opts)      one bar per label (e.g. GPU-hours per day)
//
// opts.format: "percent" (0-1 values), "units", "bytes", "count", "rate" (bytes/s); opts.height.
import uPlot from "uplot";

const PALETTE = ["#4f46e5", "#d97706", "#067647", "#a61b1b", "#0e7490", "#7c3aed", "#64748b"];

function fmt(kind, v) {
  if (v == null || Number.isNaN(v)) return "–";
  switch (kind) {
    case "percent": return (v * 100).toFixed(0) + "%";
    case "bytes": case "rate": {
      const units = ["B", "KiB", "MiB", "GiB", "TiB"];
      let i = 0, x = Math.abs(v);
      while (x >= 1024 && i < units.length - 1) { x /= 1024; i++; }
      return (v < 0 ? "-" : "") + x.toFixed(x < 10 && i ? 1 : 0) + " " + units[i] + (kind === "rate" ? "/s" : "");
    }
    case "count": return Math.round(v).toString();
    default: return (Math.round(v * 100) / 100).toString();
  }
}

const COUNT_INCRS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 100000, 1000000];

function yAxis(kind) {
  const axis = {stroke: "#5b6475", grid: {stroke: "#eef0f4"}, size: kind === "bytes" || kind === "rate" ? 84 : 64,
                values: (u, vals) => vals.map(v => fmt(kind, v))};
  if (kind === "count") axis.incrs = COUNT_INCRS;  // whole numbers only
  return axis;
}

function width(el) {
  return Math.max(240, Math.floor(el.clientWidth || el.parentElement.clientWidth || 600));
}

function fitWidth(el, plot, height) {
  if (typeof ResizeObserver === "undefined") return;
  new ResizeObserver(() => plot.setSize({width: width(el), height})).observe(el);
}

function timeseries(el, data, series, opts = {}) {
  const height = opts.height || 220;
  const kind = opts.format || "units";
  const t = data.t || [];
  el.classList.add("ag-chart");
  if (t.length < 2) {
    el.innerHTML = '<div class="ag-chart-empty">Not enough samples yet: the chart fills in as the monitor ' +
      "takes its rounds.</div>";
    return null;
  }
  const scaleY = {auto: true};
  if (kind === "percent") scaleY.range = [0, 1];
  else scaleY.range = (u, min, max) => [0, Math.max(max * 1.1, opts.minMax || 1)];
  const plot = new uPlot({
    width: width(el), height,
    legend: {show: true},
    cursor: {drag: {x: true, y: false}},
    scales: {x: {time: true}, y: scaleY},
    axes: [{stroke: "#5b6475", grid: {stroke: "#eef0f4"}}, yAxis(kind)],
    series: [{}].concat(series.map((s, i) => ({
      label: s.label, stroke: s.color || PALETTE[i % PALETTE.length], width: 2, spanGaps: false,
      fill: s.fill ? (s.color || PALETTE[i % PALETTE.length]) + "22" : undefined,
      value: (u, v) => fmt(kind, v),
    }))),
  }, [t].concat(series.map(s => data[s.key] || t.map(() => null))), el);
  fitWidth(el, plot, height);
  return plot;
}

function bars(el, labels, values, opts = {}) {
  const height = opts.height || 200;
  const kind = opts.format || "units";
  const color = opts.color || PALETTE[0];
  el.classList.add("ag-chart");
  const xs = labels.map((_, i) => i);
  const plot = new uPlot({
    width: width(el), height,
    legend: {show: true},
    scales: {x: {time: false, range: [-0.5, Math.max(labels.length - 0.5, 0.5)]},
             y: {range: (u, min, max) => [0, Math.max(max * 1.15, opts.minMax || 1)]}},
    axes: [{stroke: "#5b6475", grid: {show: false}, splits: () => xs,
            values: (u, splits) => splits.map(i => (labels.length <= 8 || i % 2 === 0) ? (labels[i] || "") : "")},
           yAxis(kind)],
    series: [{value: (u, i) => labels[i] || ""},
             {label: opts.label || "", stroke: color, fill: color + "cc", width: 1,
              paths: uPlot.paths.bars({size: [0.7, 64]}), points: {show: false}, value: (u, v) => fmt(kind, v)}],
  }, [xs, values], el);
  fitWidth(el, plot, height);
  return plot;
}

window.AGCharts = {timeseries, bars, fmt, uPlot};
