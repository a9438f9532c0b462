// Models: base models and fine-tuned ones; only fine-tuned models can be deleted (their weights go too).

import { api } from "../api.js";
import { el, errorBox, fmtDate, loading, mount, table } from "../ui.js";

const isFineTuned = (model) => model.id.startsWith("ft:");

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

  const columns = (fineTuned) => [
    { label: "Model", cell: (m) => el("code", { class: "wrap" }, m.id) },
    { label: "Owned by", cell: (m) => m.owned_by || "—" },
    { label: "Created", cell: (m) => fmtDate(m.created) },
    {
      label: "",
      cell: (m) =>
        el(
          "span",
          { class: "row-actions" },
          el("a", { href: `#/playground?model=${encodeURIComponent(m.id)}` }, "Playground"),
          fineTuned
            ? el("button", { type: "button", class: "danger small", "data-delete": m.id, onclick: () => remove(m) }, "Delete")
            : null,
        ),
    },
  ];

  async function load() {
    const { data } = await api("/models");
    const fineTuned = data.filter(isFineTuned).sort((a, b) => b.created - a.created);
    const base = data.filter((m) => !isFineTuned(m));
    mount(
      body,
      el("section", { class: "card" }, el("h2", {}, `Fine-tuned (${fineTuned.length})`),
        table(columns(true), fineTuned, {
          empty: "No fine-tuned models yet: they appear here when a job succeeds.",
          rowAttrs: (m) => ({ "data-model": m.id }),
        })),
      el("section", { class: "card" }, el("h2", {}, `Base models (${base.length})`),
        table(columns(false), base, { rowAttrs: (m) => ({ "data-model": m.id }) })),
    );
  }

  try {
    await load();
  } catch (error) {
    mount(body, errorBox(error, () => render(container, ctx)));
  }
}
