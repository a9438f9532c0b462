// New job: pick or upload a training file, see its validation report, choose a base model and hyperparameters.

import { ApiError, api, listAll } from "../api.js";
import { el, errorBox, fmtBytes, fmtInt, loading, mount, table } from "../ui.js";

// The server's report (`GET /v1/files/{id}/validation`): the same checks `localft validate` and job creation run.
function reportView(report, file, pending) {
  const tokens = report.tokens_per_example;
  const summary = el(
    "p",
    { class: report.ok ? "ok-line" : "error-line" },
    report.ok ? "✓ Ready to train: " : "✗ This file would fail: ",
    `${fmtInt(report.n_examples)} examples`,
    report.n_examples !== report.n_lines ? ` (of ${fmtInt(report.n_lines)} lines)` : "",
    report.format ? `, ${report.format.replace("_", "/")} format` : "",
    report.ok ? `, n_epochs "auto" would be ${report.n_epochs} (${report.n_epochs_rule})` : "",
    ".",
  );
  // Past 50 problems of one code the server only counts them: say how many the table leaves out.
  const problems = (list, kind) => {
    if (list.length === 0) return null;
    const codes = new Set(list.map((p) => p.code));
    const total = [...codes].reduce((sum, code) => sum + (report.problem_counts[code] || 0), 0);
    return el(
      "div",
      { class: `problems ${kind}` },
      el("h4", {}, `${kind === "errors" ? "Errors" : "Warnings"} (${fmtInt(total)})`),
      table(
        [
          { label: "Line", class: "num", cell: (p) => (p.line ? fmtInt(p.line) : "—") },
          { label: "Code", cell: (p) => el("code", {}, p.code) },
          { label: "Field", cell: (p) => (p.field ? el("code", {}, p.field) : "—") },
          { label: "Problem", cell: (p) => p.message },
          { label: "Fix", cell: (p) => p.fix },
        ],
        list,
      ),
      total > list.length ? el("p", { class: "muted small" }, `${fmtInt(total - list.length)} more not listed.`) : null,
    );
  };
  const counts = report.labels && report.labels.is_classification ? Object.entries(report.labels.counts) : [];
  const total = counts.reduce((sum, [, n]) => sum + n, 0);
  const labels =
    counts.length === 0
      ? null
      : el(
          "div",
          {},
          el("h4", {}, `Labels (${counts.length})`),
          table(
            [
              { label: "Label", cell: ([label]) => el("code", {}, label) },
              { label: "Examples", class: "num", cell: ([, n]) => fmtInt(n) },
              { label: "Share", class: "num", cell: ([, n]) => `${((100 * n) / total).toFixed(1)}%` },
            ],
            counts.slice(0, 30),
          ),
        );
  const tokenLine =
    report.n_examples === 0
      ? null
      : el(
          "p",
          { class: "tokens" },
          `Tokens per example: median ${fmtInt(Math.round(tokens.median))}, max ${fmtInt(tokens.max)}`,
          report.max_tokens ? ` (limit ${fmtInt(report.max_tokens)})` : "",
          report.ok ? `; about ${fmtInt(report.trained_tokens)} trained tokens with the auto epochs` : "",
          `. Counted by ${report.tokenizer}.`,
          pending ? el("span", { class: "muted", id: "tokens-pending" }, ` ${pending}`) : null,
        );
  return el(
    "section",
    {
      class: "card validation",
      id: "validation-report",
      "data-ok": String(report.ok),
      "data-tokenizer": report.tokenizer,
      "data-pending": String(Boolean(pending)),
    },
    el("h3", {}, `Validation of ${file.filename}`),
    summary,
    problems(report.errors, "errors"),
    problems(report.warnings, "warnings"),
    labels,
    tokenLine,
    el("p", { class: "muted small" }, "Checked by the server with the same rules it applies when the job starts."),
  );
}

// The report counts with the chosen base model's tokenizer and gives its family's auto epochs (encoders run more
// than OpenAI's rule on small files). A model the server cannot load (a typo, say) gets the estimate.
async function validation(fileId, model) {
  const path = `/files/${encodeURIComponent(fileId)}/validation`;
  if (!model) return api(path);
  try {
    return await api(path, { query: { model } });
  } catch (error) {
    if (error instanceof ApiError && error.param === "model") return api(path);
    throw error;
  }
}

function optionalNumber(form, name, parse) {
  const raw = form.elements[name].value.trim();
  return raw === "" ? "auto" : parse(raw);
}

export async function render(container, ctx) {
  mount(container, el("h1", {}, "New fine-tuning job"), loading());
  const [fileList, modelList] = await Promise.all([
    listAll("/files", { query: { purpose: "fine-tune" } }),
    api("/models"),
  ]);
  // Only base models are offered: the API refuses to train an ft: model further (start from its base model).
  const baseModels = modelList.data.map((m) => m.id).filter((id) => !id.startsWith("ft:"));

  const trainingSelect = el("select", { name: "training_file", id: "training-file", required: true });
  const validationSelect = el("select", { name: "validation_file", id: "validation-file" });
  const fillSelects = (selected) => {
    mount(
      trainingSelect,
      el("option", { value: "" }, fileList.length ? "Choose a file…" : "No files yet: upload one"),
      fileList.map((f) => el("option", { value: f.id }, `${f.filename} (${f.id}, ${fmtBytes(f.bytes)})`)),
    );
    mount(
      validationSelect,
      el("option", { value: "" }, "None"),
      fileList.map((f) => el("option", { value: f.id }, `${f.filename} (${f.id})`)),
    );
    if (selected) trainingSelect.value = selected;
  };
  fillSelects();

  const reportSlot = el("div", { id: "validation-slot" });
  const submitError = el("div");
  // "Fine-tune" on the Models page opens this page with its model.
  const defaultModel = ctx.query.get("model") || baseModels[0] || "";
  const modelInput = el("input", {
    name: "model",
    id: "base-model",
    list: "base-models",
    value: defaultModel,
    required: true,
  });
  // The report always counts with the model in the box, the preselected default included: the estimate is only
  // the fallback for a model the server cannot load.
  const chosenModel = () => modelInput.value.trim();
  let report = null;

  // The estimate answers at once; the chosen model's own count replaces it when its tokenizer has loaded (the
  // first use of a built-in LLM converts its weights, which can take a minute).
  async function checkFile(fileId) {
    report = null;
    if (!fileId) return mount(reportSlot);
    const file = fileList.find((f) => f.id === fileId);
    const model = chosenModel();
    const current = () => trainingSelect.value === fileId && chosenModel() === model;
    const show = (checked, pending) => {
      report = checked;
      mount(reportSlot, reportView(report, file, pending));
      epochs.placeholder = report.ok ? `auto (${report.n_epochs})` : "auto";
    };
    mount(reportSlot, loading("Checking the file…"));
    try {
      const estimate = await api(`/files/${encodeURIComponent(fileId)}/validation`);
      // A slow check must not overwrite the report of a file or model chosen since.
      if (!current()) return;
      if (!model) return show(estimate, null);
      show(estimate, `Counting tokens with ${model}'s tokenizer…`);
      const counted = await validation(fileId, model);
      if (current()) show(counted, null);
    } catch (error) {
      if (current()) mount(reportSlot, errorBox(error));
    }
  }
  trainingSelect.addEventListener("change", () => checkFile(trainingSelect.value));
  modelInput.addEventListener("change", () => checkFile(trainingSelect.value));

  const upload = el("input", { type: "file", name: "upload", id: "upload-training", accept: ".jsonl,.json,.txt" });
  upload.addEventListener("change", async () => {
    if (!upload.files.length) return;
    const form = new FormData();
    form.append("purpose", "fine-tune");
    form.append("file", upload.files[0]);
    mount(reportSlot, loading(`Uploading ${upload.files[0].name}…`));
    try {
      const created = await api("/files", { method: "POST", form });
      fileList.unshift(created);
      fillSelects(created.id);
      upload.value = "";
      await checkFile(created.id);
    } catch (error) {
      mount(reportSlot, errorBox(error));
    }
  });

  const epochs = el("input", { name: "n_epochs", type: "number", min: 1, max: 50, step: 1, placeholder: "auto" });
  const form = el(
    "form",
    { class: "card form", id: "new-job-form", novalidate: true },
    el(
      "fieldset",
      {},
      el("legend", {}, "Data"),
      el("label", {}, "Training file", trainingSelect),
      el("label", {}, "…or upload a JSONL file", upload),
      el("label", {}, "Validation file (optional)", validationSelect),
    ),
    reportSlot,
    el(
      "fieldset",
      {},
      el("legend", {}, "Model"),
      el(
        "label",
        {},
        "Base model",
        modelInput,
        el("datalist", { id: "base-models" }, baseModels.map((id) => el("option", { value: id }))),
        el("span", { class: "hint" }, "A listed base model, an OpenAI alias (gpt-4o-mini) or a local Hugging Face folder. A fine-tuned ft: model cannot be trained further: start from its base model."),
      ),
      el(
        "label",
        {},
        "Suffix (optional)",
        el("input", { name: "suffix", id: "suffix", maxlength: 64, placeholder: "e.g. airline-sentiment" }),
      ),
    ),
    el(
      "fieldset",
      { class: "grid3" },
      el("legend", {}, "Hyperparameters (blank = auto)"),
      el("label", {}, "Epochs", epochs),
      el("label", {}, "Batch size", el("input", { name: "batch_size", type: "number", min: 1, max: 256, placeholder: "auto" })),
      el(
        "label",
        {},
        "Learning rate multiplier",
        el("input", { name: "learning_rate_multiplier", type: "number", min: 0, step: "any", placeholder: "auto" }),
      ),
      el(
        "label",
        {},
        "Max length (tokens)",
        el("input", { name: "max_length", type: "number", min: 16, max: 32768, step: 1, placeholder: "auto" }),
      ),
      el("label", {}, "Seed", el("input", { name: "seed", type: "number", min: 0, step: 1, placeholder: "random" })),
    ),
    submitError,
    el("div", { class: "actions" }, el("button", { type: "submit", class: "primary", id: "create-job" }, "Create job")),
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    mount(submitError);
    if (!trainingSelect.value) {
      return mount(submitError, errorBox({ message: "Choose or upload a training file.", param: "training_file" }));
    }
    if (report && !report.ok) {
      return mount(submitError, errorBox({ message: "Fix the file's errors above first.", param: "training_file" }));
    }
    const seed = form.elements.seed.value.trim();
    const body = {
      model: form.elements.model.value.trim(),
      training_file: trainingSelect.value,
      validation_file: validationSelect.value || null,
      suffix: form.elements.suffix.value.trim() || null,
      seed: seed === "" ? null : Number.parseInt(seed, 10),
      method: {
        type: "supervised",
        supervised: {
          hyperparameters: {
            n_epochs: optionalNumber(form, "n_epochs", (v) => Number.parseInt(v, 10)),
            batch_size: optionalNumber(form, "batch_size", (v) => Number.parseInt(v, 10)),
            learning_rate_multiplier: optionalNumber(form, "learning_rate_multiplier", Number.parseFloat),
            max_length: optionalNumber(form, "max_length", (v) => Number.parseInt(v, 10)),
          },
        },
      },
    };
    const button = form.querySelector("#create-job");
    button.disabled = true;
    try {
      const job = await api("/fine_tuning/jobs", { method: "POST", json: body });
      location.hash = `#/jobs/${job.id}`;
    } catch (error) {
      mount(submitError, errorBox(error));
    } finally {
      button.disabled = false;
    }
  });

  mount(
    container,
    el("p", { class: "crumbs" }, el("a", { href: "#/jobs" }, "Jobs"), " / New job"),
    el("h1", {}, "New fine-tuning job"),
    form,
  );
}
