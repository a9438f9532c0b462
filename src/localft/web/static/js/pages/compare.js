// Compare runs: several jobs' loss and validation-metric curves overlaid on shared axes, with a smoothing slider
// (TensorBoard's debiased moving average), and a table of each run's settings and final scores. Smoothing applies
// to per-step curves only: epoch-end metrics are a few exact measurements, and averaging them would understate
// the final score.

import { api, listAll } from "../api.js";
import { overlayChart } from "../charts.js";
import { extraKeys, finalScore, pretty, progressOf, smooth, startedAt, stepRows } from "../metrics.js";
import { el, errorBox, fmtDuration, fmtInt, fmtNum, fmtPct, loading, mount, statusBadge, table } from "../ui.js";

const DEFAULT_SMOOTHING = 0.6;
// Losses first, then whatever classification metrics the runs reported at epoch ends.
const LOSS_KEYS = [
  { key: "full_valid_loss", label: "valid loss (full)" },
  { key: "valid_loss", label: "valid loss (batch)", perStep: true },
];

/** A short, distinct name per run: its suffix where it has one (and that is unique), else its job id. */
function runLabel(job, jobs) {
  const suffix = job.user_provided_suffix;
  const unique = suffix && jobs.filter((j) => j.user_provided_suffix === suffix).length === 1;
  return unique ? `${suffix} (${job.id.slice(-6)})` : job.id;
}

function curve(rows, key) {
  return rows.filter((r) => typeof r[key] === "number" && Number.isFinite(r[key])).map((r) => ({ x: r.step, y: r[key] }));
}

function smoothed(points, weight) {
  const ys = smooth(
    points.map((p) => p.y),
    weight,
  );
  return points.map((p, i) => ({ x: p.x, y: ys[i] }));
}

function hyperparameters(job) {
  const hp = job.method?.supervised?.hyperparameters || job.hyperparameters || {};
  return `${hp.n_epochs ?? "—"} epochs, batch ${hp.batch_size ?? "—"}, LR ×${hp.learning_rate_multiplier ?? "—"}`;
}

export async function render(container, ctx) {
  const ids = (ctx.query.get("jobs") || "").split(",").filter(Boolean);
  const back = el("p", { class: "crumbs" }, el("a", { href: `#/jobs?selected=${ids.join(",")}` }, "Jobs"), " / Compare");
  if (ids.length === 0) {
    mount(container, back, el("h1", {}, "Compare runs"), el("p", { class: "muted empty" }, "Select jobs on the Jobs page, then “Compare selected”."));
    return;
  }
  mount(container, back, el("h1", {}, "Compare runs"), loading(`Loading ${ids.length} jobs…`));
  const runs = await Promise.all(
    ids.map(async (id) => {
      const [job, events] = await Promise.all([
        api(`/fine_tuning/jobs/${encodeURIComponent(id)}`),
        listAll(`/fine_tuning/jobs/${encodeURIComponent(id)}/events`, { pageSize: 1000 }),
      ]);
      return { job, rows: stepRows(events), started: startedAt(events) };
    }),
  );
  const jobs = runs.map((r) => r.job);
  for (const run of runs) run.label = runLabel(run.job, jobs);

  const metricKeys = [...new Set(runs.flatMap((r) => extraKeys(r.rows)))];
  const choices = [...metricKeys.map((key) => ({ key, label: `valid ${pretty(key)}`, ratio: true })), ...LOSS_KEYS].filter(
    (c) => runs.some((r) => curve(r.rows, c.key).length),
  );
  const metricSelect = el(
    "select",
    { id: "compare-metric", "aria-label": "Validation metric" },
    choices.map((c) => el("option", { value: c.key }, c.label)),
  );
  const slider = el("input", {
    id: "smoothing",
    type: "range",
    min: 0,
    max: 0.99,
    step: 0.01,
    value: ctx.query.get("smoothing") ?? DEFAULT_SMOOTHING,
    "aria-label": "Smoothing",
  });
  const sliderValue = el("output", { for: "smoothing", id: "smoothing-value" });
  const lossCanvas = el("canvas", { id: "compare-loss", "aria-label": "Training loss of each run" });
  const metricCanvas = el("canvas", { id: "compare-metric-chart", "aria-label": "Validation metric of each run" });

  const summary = table(
    [
      { label: "Run", cell: (r) => el("a", { href: `#/jobs/${r.job.id}`, class: "mono" }, r.label) },
      { label: "Status", cell: (r) => statusBadge(r.job.status) },
      { label: "Base model", cell: (r) => el("span", { class: "mono wrap" }, r.job.model) },
      { label: "Hyperparameters", cell: (r) => hyperparameters(r.job) },
      {
        label: "Steps",
        class: "num",
        cell: (r) => {
          const p = progressOf(r.rows);
          return p ? `${fmtInt(p.step)} / ${fmtInt(p.total)}` : "—";
        },
      },
      {
        label: "Training time",
        class: "num",
        cell: (r) => (r.job.finished_at && r.started ? fmtDuration(r.job.finished_at - r.started) : "—"),
      },
      { label: "Final train loss", class: "num", cell: (r) => fmtNum(curve(r.rows, "train_loss").at(-1)?.y) },
      {
        label: "Final validation",
        class: "num",
        cell: (r) => {
          const score = finalScore(r.rows);
          return score ? `${fmtPct(score.value)} ${pretty(score.key)}` : "—";
        },
      },
    ],
    runs,
    { rowAttrs: (r) => ({ "data-job-id": r.job.id }) },
  );

  mount(
    container,
    back,
    el("h1", {}, `Compare ${runs.length} runs`),
    el("section", { class: "card", id: "compare-runs" }, summary),
    el(
      "section",
      { class: "card" },
      el(
        "div",
        { class: "filters" },
        el("label", { class: "inline" }, "Smoothing ", slider, " ", sliderValue),
        choices.length ? el("label", { class: "inline" }, "Validation metric ", metricSelect) : null,
      ),
      el(
        "div",
        { class: "charts" },
        el("div", { class: "chart-box" }, lossCanvas),
        el("div", { class: "chart-box" }, metricCanvas),
      ),
      choices.length ? null : el("p", { class: "muted" }, "None of these runs had a validation file: only training loss is shown."),
    ),
  );

  const lossChart = overlayChart(lossCanvas, { title: "Training loss", yTitle: "train loss" });
  const metricChart = overlayChart(metricCanvas, { title: "Validation" });
  ctx.onLeave(() => {
    lossChart.destroy();
    metricChart.destroy();
  });

  function draw() {
    const weight = Number(slider.value);
    sliderValue.textContent = weight.toFixed(2);
    const lines = (key, perStep) =>
      runs.map((run) => {
        const raw = curve(run.rows, key);
        if (!perStep) return { label: run.label, points: raw, raw: null };
        return { label: run.label, points: smoothed(raw, weight), raw: weight > 0 ? raw : null };
      });
    lossChart.update(lines("train_loss", true));
    const choice = choices.find((c) => c.key === metricSelect.value);
    if (choice) {
      metricChart.chart.options.scales.y.min = choice.ratio ? 0 : undefined;
      metricChart.chart.options.scales.y.max = choice.ratio ? 1 : undefined;
      metricChart.update(lines(choice.key, Boolean(choice.perStep)), { yTitle: choice.label });
    }
    container.dataset.smoothing = String(weight);
  }
  slider.addEventListener("input", draw);
  metricSelect.addEventListener("change", draw);
  try {
    draw();
  } catch (error) {
    mount(container, errorBox(error));
  }
}
