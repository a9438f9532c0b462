// Line and bar charts on the vendored Chart.js (window.Chart, loaded by index.html; no CDN).

const PALETTE = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777"];

function colorAt(i) {
  return PALETTE[i % PALETTE.length];
}

/** Chart.js is loaded with `defer`; modules run after deferred scripts, but guard against a failed load. */
function chartLib() {
  if (!window.Chart) throw new Error("The chart library did not load (static/vendor/chart.umd.min.js).");
  return window.Chart;
}

/**
 * A metric-over-steps line chart. `series` is [{key, label}]; `update(rows)` takes rows with `step` and those keys
 * and redraws without animation, so polling does not make the chart jump.
 */
export function stepChart(canvas, { title, series, yMin, yMax }) {
  const Chart = chartLib();
  const chart = new Chart(canvas, {
    type: "line",
    data: {
      datasets: series.map((s, i) => ({
        label: s.label,
        data: [],
        borderColor: colorAt(i),
        // A series with its own marker shape is drawn hollow, so a marker under it still shows through.
        backgroundColor: s.pointStyle ? "transparent" : colorAt(i),
        borderWidth: s.dashed ? 1.5 : 2,
        borderDash: s.dash ?? (s.dashed ? [6, 4] : []),
        // Batch validation is reported on some steps only: dots keep those sparse points visible.
        pointRadius: s.radius ?? (s.points ? 3 : s.dashed ? 1.5 : 0),
        pointStyle: s.pointStyle ?? "circle",
        pointBorderWidth: s.pointStyle ? 2 : 1,
        order: s.order ?? 0,
        tension: 0.15,
        spanGaps: true,
      })),
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: "nearest", axis: "x", intersect: false },
      plugins: {
        title: { display: true, text: title },
        // Series with no point yet (no validation file, say) stay out of the legend.
        legend: {
          position: "bottom",
          labels: { boxWidth: 12, filter: (item, data) => data.datasets[item.datasetIndex].data.length > 0 },
        },
      },
      scales: {
        x: { type: "linear", title: { display: true, text: "step" }, ticks: { precision: 0 } },
        y: { min: yMin, max: yMax },
      },
    },
  });
  return {
    chart,
    update(rows) {
      series.forEach((s, i) => {
        chart.data.datasets[i].data = rows
          .filter((r) => typeof r[s.key] === "number" && Number.isFinite(r[s.key]))
          .map((r) => ({ x: r.step, y: r[s.key] }));
      });
      chart.update("none");
    },
    destroy() {
      chart.destroy();
    },
  };
}

/** A horizontal or vertical bar chart of [{label, value}] (per-class F1, model comparison). */
export function barChart(canvas, { title, entries, max = 1, horizontal = true, seriesLabel = title }) {
  const Chart = chartLib();
  return new Chart(canvas, {
    type: "bar",
    data: {
      labels: entries.map((e) => e.label),
      datasets: [{ label: seriesLabel, data: entries.map((e) => e.value), backgroundColor: colorAt(0) }],
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      indexAxis: horizontal ? "y" : "x",
      plugins: { title: { display: Boolean(title), text: title }, legend: { display: false } },
      scales: { [horizontal ? "x" : "y"]: { min: 0, max } },
    },
  });
}

/**
 * Several runs' curves on one chart, one colour per run (the compare page). `update(runs)` takes
 * [{label, points: [{x, y}], raw: [{x, y}]}]: `points` are drawn as the run's line and `raw`, when smoothing made
 * `points` differ, as a faint line behind it, so smoothing never hides what was measured.
 */
export function overlayChart(canvas, { title, yTitle, yMin, yMax }) {
  const Chart = chartLib();
  const chart = new Chart(canvas, {
    type: "line",
    data: { datasets: [] },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: "nearest", axis: "x", intersect: false },
      plugins: {
        title: { display: true, text: title },
        legend: { position: "bottom", labels: { boxWidth: 12, filter: (item) => !item.text.endsWith(" (raw)") } },
      },
      scales: {
        x: { type: "linear", title: { display: true, text: "step" }, ticks: { precision: 0 } },
        y: { min: yMin, max: yMax, title: { display: Boolean(yTitle), text: yTitle } },
      },
    },
  });
  return {
    chart,
    update(runs, { yTitle: newTitle } = {}) {
      chart.data.datasets = runs.flatMap((run, i) => {
        const line = {
          label: run.label,
          data: run.points,
          borderColor: colorAt(i),
          backgroundColor: colorAt(i),
          borderWidth: 2,
          pointRadius: run.points.length < 30 ? 3 : 0,
          tension: 0.15,
          order: 0,
        };
        if (!run.raw) return [line];
        const faint = `${colorAt(i)}40`; // the run's colour at a quarter opacity
        const raw = { ...line, label: `${run.label} (raw)`, data: run.raw, borderColor: faint, pointRadius: 0, order: 1 };
        return [line, raw];
      });
      if (newTitle !== undefined) chart.options.scales.y.title = { display: true, text: newTitle };
      chart.update("none");
    },
    destroy() {
      chart.destroy();
    },
  };
}
