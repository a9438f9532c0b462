// Models: fine-tuned models (with the evaluation reports that scored them) and base models (family, size, whether
// installed here). Only fine-tuned models can be deleted (their weights go too). A base encoder has no chat of its
// own, so it is offered for fine-tuning rather than for the playground.

import { api } from "../api.js";
import { loadReports, reportLinks } from "../reports.js";
import { el, errorBox, fmtDate, loading, mount, table } from "../ui.js";

const isFineTuned = (model) => model.id.startsWith("ft:");
const FAMILIES = { causal_lm: "LLM", encoder: "encoder" };

function playgroundLink(model) {
  return el("a", { href: `#/playground?model=${encodeURIComponent(model.id)}`, "data-playground": model.id }, "Playground");
}

function fineTuneLink(model) {
  return el("a", { href: `#/jobs/new?model=${encodeURIComponent(model.id)}`, "data-fine-tune": model.id }, "Fine-tune");
}

function installedCell(model) {
  if (model.installed === false) {
    return el("span", { class: "muted" }, "not installed: ", el("code", {}, `localft models pull ${model.id}`));
  }
  return model.created ? `yes, ${fmtDate(model.created)}` : "yes";
}

export async function render(container, ctx) {
  const body = el("div", {}, loading());
  const notice = el("div");
  mount(container, el("h1", {}, "Models"), notice, body);

  async function remove(model) {
    if (!window.confirm(`Delete ${model.id}? Its weights are removed from disk.`)) return;
    mount(notice);
    try {
      await api(`/models/${encodeURIComponent(model.id)}`, { method: "DELETE" });
      await load();
      mount(notice, el("p", { class: "ok-line", role: "status" }, `Deleted ${model.id}.`));
    } catch (error) {
      mount(notice, errorBox(error));
    }
  }

  const fineTunedColumns = (reports) => [
    { label: "Model", cell: (m) => el("code", { class: "wrap" }, m.id) },
    { label: "Owned by", cell: (m) => m.owned_by || "—" },
    { label: "Created", cell: (m) => fmtDate(m.created) },
    { label: "Evaluations", cell: (m) => reportLinks(reports, [m.id]) || "—" },
    {
      label: "",
      cell: (m) =>
        el(
          "span",
          { class: "row-actions" },
          playgroundLink(m),
          el("button", { type: "button", class: "danger small", "data-delete": m.id, onclick: () => remove(m) }, "Delete"),
        ),
    },
  ];

  const baseColumns = [
    { label: "Model", cell: (m) => el("code", { class: "wrap" }, m.id) },
    { label: "Family", cell: (m) => FAMILIES[m.family] || "—" },
    { label: "Size", class: "num", cell: (m) => m.params || "—" },
    { label: "Installed", cell: installedCell },
    { label: "Description", cell: (m) => m.description || "—" },
    {
      label: "",
      cell: (m) =>
        el(
          "span",
          { class: "row-actions" },
          m.installed === false ? null : fineTuneLink(m),
          m.installed !== false && m.family !== "encoder" ? playgroundLink(m) : null,
        ),
    },
  ];

  async function load() {
    const [{ data }, reports] = await Promise.all([api("/models"), loadReports().catch(() => [])]);
    const fineTuned = data.filter(isFineTuned).sort((a, b) => b.created - a.created);
    const base = data.filter((m) => !isFineTuned(m));
    mount(
      body,
      el("section", { class: "card" }, el("h2", {}, `Fine-tuned (${fineTuned.length})`),
        table(fineTunedColumns(reports), fineTuned, {
          empty: "No fine-tuned models yet: they appear here when a job succeeds.",
          rowAttrs: (m) => ({ "data-model": m.id }),
        })),
      el("section", { class: "card" }, el("h2", {}, `Base models (${base.length})`),
        el("p", { class: "muted small" }, "Encoders classify once fine-tuned: try them in the playground after a job."),
        table(baseColumns, base, { rowAttrs: (m) => ({ "data-model": m.id, "data-family": m.family || "" }) })),
    );
  }

  try {
    await load();
  } catch (error) {
    mount(body, errorBox(error, () => render(container, ctx)));
  }
}
