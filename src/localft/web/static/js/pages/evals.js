// Evaluation reports saved on the server by `localft eval` / `localft compare` (JSON files with purpose "evals"),
// drawn as tables and charts. Two shapes exist (localft.eval.report and localft.eval.compare): one model scored
// on a test set (`object: "localft.eval_report"`) and several models side by side (`"localft.comparison"`).

import { api, listAll } from "../api.js";
import { barChart } from "../charts.js";
import { loadReports, reportTitle } from "../reports.js";
import { el, errorBox, facts, fmtDate, fmtDuration, fmtInt, fmtNum, fmtPct, loading, mount, table } from "../ui.js";

const seconds = (value) => (value === null || value === undefined ? "—" : `${fmtNum(value, 3)} s`);

function kpis(pairs) {
  return el(
    "div",
    { class: "kpis" },
    pairs.map(([label, value]) => el("div", { class: "kpi" }, el("span", {}, label), el("strong", {}, value))),
  );
}

function confusionView(metrics) {
  const matrix = metrics.confusion;
  if (!Array.isArray(matrix) || !matrix.length) return null;
  const columns = metrics.confusion_columns || metrics.labels;
  const peak = Math.max(1, ...matrix.flat());
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      { class: "confusion", id: "confusion-matrix" },
      el("caption", {}, "Confusion matrix (rows: gold, columns: predicted)"),
      el("thead", {}, el("tr", {}, el("th", {}, ""), columns.map((c) => el("th", { scope: "col" }, c)))),
      el(
        "tbody",
        {},
        matrix.map((row, i) =>
          el(
            "tr",
            {},
            el("th", { scope: "row" }, metrics.labels[i]),
            row.map((count, j) =>
              el(
                "td",
                {
                  class: `num${i === j ? " diagonal" : ""}`,
                  style: `--heat: ${(count / peak).toFixed(3)}`,
                  title: `${metrics.labels[i]} → ${columns[j]}: ${count}`,
                },
                fmtInt(count),
              ),
            ),
          ),
        ),
      ),
    ),
  );
}

/** One model on one test set: headline scores, per-class table and F1 chart, confusion matrix, speed. */
function reportView(report, charts) {
  const metrics = report.metrics || {};
  const multi = report.task === "multi_label";
  const scores = (multi ? metrics.per_label : metrics.per_class) || {};
  const rows = Object.entries(scores).map(([label, s]) => ({ label, ...s }));
  const canvas = el("canvas", { "aria-label": "F1 per class" });
  charts.push(() => barChart(canvas, { title: "F1 per class", entries: rows.map((r) => ({ label: r.label, value: r.f1 })) }));
  const outOfSet = Object.entries(metrics.out_of_set || {});
  return [
    el(
      "section",
      { class: "card eval-result" },
      el("h2", { class: "wrap" }, report.model),
      kpis([
        ...(multi
          ? [["micro F1", fmtPct(metrics.micro_f1)], ["macro F1", fmtPct(metrics.macro_f1)], ["exact match", fmtPct(metrics.exact_match)], ["Hamming loss", fmtNum(metrics.hamming_loss, 3)]]
          : [["accuracy", fmtPct(metrics.accuracy)], ["macro F1", fmtPct(metrics.macro_f1)], ["weighted F1", fmtPct(metrics.weighted_f1)]]),
        ["examples", fmtInt(report.n)],
        ["outside label set", fmtInt(metrics.n_out_of_set ?? 0)],
        ["failed requests", fmtInt(report.failures ?? 0)],
      ]),
      el(
        "div",
        { class: "eval-grid" },
        table(
          [
            { label: "Label", cell: (r) => el("code", {}, r.label) },
            { label: "Precision", class: "num", cell: (r) => fmtNum(r.precision, 3) },
            { label: "Recall", class: "num", cell: (r) => fmtNum(r.recall, 3) },
            { label: "F1", class: "num", cell: (r) => fmtNum(r.f1, 3) },
            { label: "Support", class: "num", cell: (r) => fmtInt(r.support) },
          ],
          rows,
        ),
        el("div", { class: "chart-box", style: `height: ${Math.max(180, rows.length * 22 + 60)}px` }, canvas),
      ),
      confusionView(metrics),
      outOfSet.length
        ? el("p", { class: "muted" }, "Answers outside the label set: ", outOfSet.map(([a, n]) => `“${a}” ×${n}`).join(", "))
        : null,
    ),
    el(
      "section",
      { class: "card" },
      el("h2", {}, "Speed and cost"),
      facts([
        ["Latency p50", seconds(report.latency?.p50_s)],
        ["Latency p95", seconds(report.latency?.p95_s)],
        ["Throughput", report.latency?.throughput_per_s ? `${fmtNum(report.latency.throughput_per_s, 2)} /s` : "—"],
        ["Wall time", fmtDuration(report.wall_s)],
        ["CPU s per 1,000", fmtNum(report.cpu_s_per_1k, 1)],
        ["Peak memory", report.peak_rss_mb ? `${fmtInt(Math.round(report.peak_rss_mb))} MB` : "—"],
      ]),
    ),
  ];
}

/**
 * Several models on one test set: the comparison table and a bar chart of the headline metric, then each model's
 * own report when the comparison carries them (`localft compare --save-to-server` does).
 */
function comparisonView(report, charts) {
  const rows = report.rows || [];
  const details = rows
    .filter((r) => r.report?.object === "localft.eval_report")
    .flatMap((r) => reportView(r.report, charts));
  const canvas = el("canvas", { "aria-label": "Models compared" });
  charts.push(() =>
    barChart(canvas, { title: report.metric, entries: rows.map((r) => ({ label: r.name, value: r.headline })) }),
  );
  return [
    el(
      "section",
      { class: "card", id: "comparison" },
      el("h2", {}, "Models compared"),
      table(
        [
          { label: "Model", cell: (r) => el("span", { class: "wrap" }, r.name) },
          { label: "Kind", cell: (r) => r.kind },
          { label: report.metric, class: "num", cell: (r) => fmtPct(r.headline) },
          { label: "macro F1", class: "num", cell: (r) => fmtPct(r.macro_f1) },
          { label: "Outside set", class: "num", cell: (r) => fmtInt(r.n_out_of_set) },
          { label: "Train time", class: "num", cell: (r) => fmtDuration(r.train_s) },
          { label: "CPU s/1k", class: "num", cell: (r) => fmtNum(r.cpu_s_per_1k, 1) },
          { label: "p50", class: "num", cell: (r) => seconds(r.latency_p50_s) },
          { label: "Peak MB", class: "num", cell: (r) => (r.peak_rss_mb ? fmtInt(Math.round(r.peak_rss_mb)) : "—") },
        ],
        rows,
      ),
      el("div", { class: "chart-box", style: `height: ${Math.max(160, rows.length * 36 + 60)}px` }, canvas),
    ),
    details,
  ];
}

/** Draws one report file into `slot`; returns its charts so the caller can destroy them. */
async function showReport(slot, file) {
  mount(slot, loading(`Loading ${file.filename}…`));
  let report;
  try {
    report = JSON.parse(await api(`/files/${file.id}/content`, { as: "text" }));
  } catch (error) {
    mount(slot, errorBox(error instanceof SyntaxError ? { message: `${file.filename} is not JSON.` } : error));
    return [];
  }
  const charts = [];
  let body;
  if (report.object === "localft.eval_report") body = reportView(report, charts);
  else if (report.object === "localft.comparison") body = comparisonView(report, charts);
  else {
    mount(slot, errorBox({ message: `${file.filename} is not a localft evaluation report (object: ${report.object}).` }));
    return [];
  }
  mount(
    slot,
    el(
      "section",
      { class: "card", id: "eval-report", "data-file": file.id },
      el("h2", { class: "wrap", id: "eval-title" }, reportTitle(report)),
      facts([
        ["Test set", el("span", { class: "wrap" }, report.testset)],
        ["Task", (report.task || "").replace("_", "-")],
        ["Examples", fmtInt(report.n)],
        ["Evaluated", fmtDate(report.created || file.created_at)],
        ["File", el("span", {}, el("code", {}, file.id), ` (${file.filename})`)],
      ]),
    ),
    body,
  );
  // Charts need their canvases in the document to size themselves.
  return charts.map((draw) => draw());
}

export async function render(container, ctx) {
  mount(container, el("h1", {}, "Evaluation reports"), loading());
  const files = await listAll("/files", { query: { purpose: "evals" } });
  const reports = files.filter((f) => f.filename.endsWith(".json"));
  const slot = el("div", { id: "eval-slot" });
  const picker = el(
    "select",
    { id: "eval-picker", "aria-label": "Report" },
    reports.map((f) => el("option", { value: f.id }, `${f.filename} (${fmtDate(f.created_at)})`)),
  );
  let drawn = [];
  const show = async (file) => {
    drawn.forEach((chart) => chart.destroy());
    drawn = await showReport(slot, file);
  };
  ctx.onLeave(() => drawn.forEach((chart) => chart.destroy()));
  picker.addEventListener("change", () => {
    const file = reports.find((f) => f.id === picker.value);
    history.replaceState(null, "", `#/evals?file=${file.id}`);
    show(file);
  });
  mount(
    container,
    el("div", { class: "page-head" }, el("h1", {}, "Evaluation reports"), reports.length ? picker : null),
    reports.length
      ? slot
      : el(
          "p",
          { class: "muted empty" },
          "No reports yet. Reports that ",
          el("code", {}, "localft eval"),
          " or ",
          el("code", {}, "localft compare"),
          " save on this server (JSON files with purpose ",
          el("code", {}, "evals"),
          ") appear here.",
        ),
  );
  if (reports.length) {
    // Options start as file names and take their reports' own titles once read: reports saved by the CLI are
    // named by test set and a timestamp, which says nothing of the models they scored.
    loadReports()
      .then((entries) => {
        for (const { file, report } of entries) {
          const option = [...picker.options].find((o) => o.value === file.id);
          if (option) option.textContent = `${reportTitle(report)} (${fmtDate(report.created || file.created_at)})`;
        }
      })
      .catch(() => {}); // the file names stay: still a usable list
    await show(reports.find((f) => f.id === ctx.query.get("file")) || reports[0]);
  }
}
