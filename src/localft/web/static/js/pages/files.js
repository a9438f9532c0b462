// Files: upload, list (by purpose), preview of the first examples, download and delete.

import { api, decodeResultFile, listAll } from "../api.js";
import { download, el, errorBox, fmtBytes, fmtDate, loading, mount, table } from "../ui.js";

const PURPOSES = ["fine-tune", "evals", "fine-tune-results", "user_data", "batch"];
const PREVIEW_EXAMPLES = 5;
const PREVIEW_MAX_BYTES = 50 * 1024 * 1024;

function messageView(message) {
  return el(
    "div",
    { class: `message role-${message?.role}` },
    el("span", { class: "role" }, message?.role ?? "?"),
    el("span", { class: "content" }, typeof message?.content === "string" ? message.content : JSON.stringify(message?.content)),
  );
}

/** The first examples of a JSONL file as chat bubbles; other text as its first lines. */
function previewView(file, text) {
  const lines = text.split(/\r?\n/).filter((line) => line.trim());
  const examples = [];
  for (const line of lines.slice(0, PREVIEW_EXAMPLES)) {
    try {
      examples.push(JSON.parse(line));
    } catch {
      examples.length = 0;
      break;
    }
  }
  const body =
    examples.length > 0
      ? examples.map((example, i) =>
          el(
            "div",
            { class: "example" },
            el("div", { class: "muted small" }, `Example ${i + 1}`),
            Array.isArray(example.messages)
              ? example.messages.map(messageView)
              : el("pre", { class: "code" }, JSON.stringify(example, null, 2)),
          ),
        )
      : el("pre", { class: "code" }, lines.slice(0, 20).join("\n"));
  return el(
    "section",
    { class: "card preview", id: "file-preview" },
    el("h2", {}, `Preview of ${file.filename}`),
    el("p", { class: "muted" }, `${lines.length.toLocaleString()} lines; first ${Math.min(PREVIEW_EXAMPLES, lines.length)} shown.`),
    body,
  );
}

export async function render(container, ctx) {
  const purposeFilter = el(
    "select",
    { id: "purpose-filter", "aria-label": "Purpose" },
    el("option", { value: "" }, "All purposes"),
    PURPOSES.map((p) => el("option", { value: p }, p)),
  );
  const fileInput = el("input", { type: "file", name: "file", id: "file-input", required: true });
  const purposeInput = el("select", { name: "purpose", id: "upload-purpose" }, PURPOSES.slice(0, 2).map((p) => el("option", { value: p }, p)));
  const notice = el("div");
  const body = el("div", {}, loading());
  const previewSlot = el("div");

  const uploadForm = el(
    "form",
    { class: "card form inline-form", id: "upload-form" },
    el("label", {}, "File", fileInput),
    el("label", {}, "Purpose", purposeInput),
    el("button", { type: "submit", class: "primary" }, "Upload"),
  );
  uploadForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!fileInput.files.length) return mount(notice, errorBox({ message: "Choose a file to upload.", param: "file" }));
    const form = new FormData();
    form.append("purpose", purposeInput.value);
    form.append("file", fileInput.files[0]);
    mount(notice, loading(`Uploading ${fileInput.files[0].name}…`));
    try {
      const created = await api("/files", { method: "POST", form });
      uploadForm.reset();
      await load();
      mount(notice, el("p", { class: "ok-line", role: "status" }, `Uploaded ${created.filename} as ${created.id}.`));
    } catch (error) {
      mount(notice, errorBox(error));
    }
  });

  async function preview(file) {
    if (file.bytes > PREVIEW_MAX_BYTES) {
      return mount(previewSlot, el("p", { class: "muted" }, "Too large to preview in the browser; download it instead."));
    }
    mount(previewSlot, loading("Loading preview…"));
    try {
      let text = await api(`/files/${file.id}/content`, { as: "text" });
      if (file.purpose === "fine-tune-results") text = decodeResultFile(text);
      mount(previewSlot, previewView(file, text));
      previewSlot.scrollIntoView({ behavior: "smooth", block: "start" });
    } catch (error) {
      mount(previewSlot, errorBox(error));
    }
  }

  async function save(file) {
    try {
      download(await api(`/files/${file.id}/content`, { as: "blob" }), file.filename);
    } catch (error) {
      mount(notice, errorBox(error));
    }
  }

  async function remove(file) {
    if (!window.confirm(`Delete ${file.filename} (${file.id})?`)) return;
    try {
      await api(`/files/${file.id}`, { method: "DELETE" });
      mount(previewSlot);
      await load();
      mount(notice, el("p", { class: "ok-line", role: "status" }, `Deleted ${file.filename}.`));
    } catch (error) {
      mount(notice, errorBox(error));
    }
  }

  async function load() {
    const files = await listAll("/files", { query: { purpose: purposeFilter.value || undefined } });
    mount(
      body,
      table(
        [
          { label: "File", cell: (f) => el("code", {}, f.id) },
          { label: "Name", cell: (f) => el("span", { class: "wrap" }, f.filename) },
          { label: "Purpose", cell: (f) => f.purpose },
          { label: "Size", class: "num", cell: (f) => fmtBytes(f.bytes) },
          { label: "Created", cell: (f) => fmtDate(f.created_at) },
          {
            label: "",
            cell: (f) =>
              el(
                "span",
                { class: "row-actions" },
                el("button", { type: "button", class: "small", "data-preview": f.id, onclick: () => preview(f) }, "Preview"),
                el("button", { type: "button", class: "small", onclick: () => save(f) }, "Download"),
                el("button", { type: "button", class: "small danger", "data-delete": f.id, onclick: () => remove(f) }, "Delete"),
              ),
          },
        ],
        files,
        { empty: "No files. Upload a JSONL training file above.", rowAttrs: (f) => ({ "data-file-id": f.id }) },
      ),
    );
  }
  purposeFilter.addEventListener("change", () => load().catch((error) => mount(body, errorBox(error))));

  mount(
    container,
    el("div", { class: "page-head" }, el("h1", {}, "Files"), purposeFilter),
    uploadForm,
    notice,
    body,
    previewSlot,
  );
  try {
    await load();
  } catch (error) {
    mount(body, errorBox(error, () => render(container, ctx)));
  }
}
