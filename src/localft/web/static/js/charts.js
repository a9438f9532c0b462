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
        backgroundColor: colorAt(i),
        borderWidth: s.dashed ? 1.5 : 2,
        borderDash: s.dashed ? [6, 4] : [],
        // Batch validation is reported on some steps only: dots keep those sparse points visible.
        pointRadius: s.points ? 3 : s.dashed ? 1.5 : 0,
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
