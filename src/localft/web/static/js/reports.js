// Evaluation reports as the other pages see them: a title from what was evaluated (not the file name), the
// models a report scored, and links to the reports that scored given models.

import { api, listAll } from "./api.js";
import { el, fmtDate } from "./ui.js";

/** "ft:…:airline:ab12 on airline_test.jsonl", or "3 models compared on airline_test.jsonl". */
export function reportTitle(report) {
  const on = report.testset ? ` on ${report.testset}` : "";
  if (report.object === "localft.comparison") return `${report.rows?.length ?? 0} models compared${on}`;
  return `${report.model || "Unknown model"}${on}`;
}

/** The model ids a report scored: its model, or each compared row's model (rows also carry a display name). */
export function reportModels(report) {
  if (report.object === "localft.comparison") {
    return (report.rows || []).flatMap((row) => [row.report?.model, row.name]).filter(Boolean);
  }
  return report.model ? [report.model] : [];
}

/** Every readable report saved on the server, newest first: [{file, report}]. Unreadable files are skipped. */
export async function loadReports() {
  const files = await listAll("/files", { query: { purpose: "evals" } });
  const loaded = await Promise.all(
    files
      .filter((f) => f.filename.endsWith(".json"))
      .map(async (file) => {
        try {
          return { file, report: JSON.parse(await api(`/files/${file.id}/content`, { as: "text" })) };
        } catch {
          return null; // Not JSON or gone since listing: the Evaluations page says so; here it is just not linked.
        }
      }),
  );
  return loaded.filter((entry) => entry && String(entry.report?.object).startsWith("localft."));
}

/** Links to the reports that scored any of `modelIds` (a job's model and its checkpoints), or null if none. */
export function reportLinks(reports, modelIds) {
  const wanted = new Set(modelIds.filter(Boolean));
  const matching = reports.filter(({ report }) => reportModels(report).some((id) => wanted.has(id)));
  if (matching.length === 0) return null;
  return el(
    "ul",
    { class: "report-links" },
    matching.map(({ file, report }) =>
      el(
        "li",
        {},
        el("a", { href: `#/evals?file=${encodeURIComponent(file.id)}`, "data-report": file.id }, reportTitle(report)),
        el("span", { class: "muted" }, ` (${fmtDate(report.created || file.created_at)})`),
      ),
    ),
  );
}
