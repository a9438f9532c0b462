// DOM building and formatting. Text always goes in as text nodes, so nothing from the API is parsed as HTML.

/**
 * el("td", {class: "num", onclick: fn}, "text", child, [more children]) -> HTMLElement.
 * Attributes starting with "on" become listeners; null/false attributes and children are skipped.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the children of `node`. */
export function mount(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

const numberFormat = new Intl.NumberFormat();
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

export function fmtInt(value) {
  return value === null || value === undefined ? "—" : numberFormat.format(value);
}

/** A metric with `digits` significant decimals; "—" when absent. */
export function fmtNum(value, digits = 4) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  return Number(value).toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function fmtPct(value, digits = 1) {
  if (value === null || value === undefined) return "—";
  return `${(value * 100).toFixed(digits)}%`;
}

/** Unix seconds -> local date and time. */
export function fmtDate(seconds) {
  return seconds ? dateFormat.format(new Date(seconds * 1000)) : "—";
}

export function fmtTime(seconds) {
  return seconds ? timeFormat.format(new Date(seconds * 1000)) : "—";
}

export function fmtBytes(bytes) {
  if (bytes === null || bytes === undefined) return "—";
  const units = ["B", "KB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || seconds < 0) return "—";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

/** A coloured pill for a job status (`status-running`, ...). */
export function statusBadge(status) {
  return el("span", { class: `badge status-${status}`, "data-status": status }, status.replaceAll("_", " "));
}

export function loading(text = "Loading…") {
  return el("p", { class: "muted loading" }, text);
}

/** An error box showing the API's message (and the field it names), with an optional retry button. */
export function errorBox(error, retry) {
  const param = error?.param ? ` (field: ${error.param})` : "";
  return el(
    "div",
    { class: "error-box", role: "alert" },
    el("strong", {}, error?.status ? `Error ${error.status}: ` : "Error: "),
    `${error?.message || error}${param}`,
    retry ? el("button", { type: "button", onclick: retry }, "Retry") : null,
  );
}

/** A table whose columns are [{label, cell(row) -> node|string, class}] with a message when empty. */
export function table(columns, rows, { empty = "Nothing here yet.", rowAttrs } = {}) {
  if (rows.length === 0) return el("p", { class: "muted empty" }, empty);
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      {},
      el("thead", {}, el("tr", {}, columns.map((c) => el("th", { class: c.class, scope: "col" }, c.label)))),
      el(
        "tbody",
        {},
        rows.map((row) =>
          el(
            "tr",
            rowAttrs ? rowAttrs(row) : {},
            columns.map((c) => el("td", { class: c.class, "data-label": c.label }, c.cell(row))),
          ),
        ),
      ),
    ),
  );
}

/** A <dl> of [term, value] pairs; values may be nodes. */
export function facts(pairs) {
  return el(
    "dl",
    { class: "facts" },
    pairs.filter(Boolean).map(([term, value]) => el("div", {}, el("dt", {}, term), el("dd", {}, value ?? "—"))),
  );
}

/** A button that copies `text()` to the clipboard and says so. */
export function copyButton(text, label = "Copy") {
  const button = el("button", { type: "button", class: "copy" }, label);
  button.addEventListener("click", async () => {
    const value = typeof text === "function" ? text() : text;
    try {
      await navigator.clipboard.writeText(value);
    } catch {
      // Clipboard API needs a secure context (http://127.0.0.1 is one; a LAN address is not): fall back.
      const area = el("textarea", { class: "offscreen" }, value);
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    button.textContent = "Copied";
    setTimeout(() => {
      button.textContent = label;
    }, 1500);
  });
  return button;
}

/** Saves `blob` under `filename` through a temporary link. */
export function download(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: filename, class: "offscreen" });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** Horizontal probability bars: [{label, value}] sorted by value, the top one highlighted. */
export function probabilityBars(entries) {
  const sorted = [...entries].sort((a, b) => b.value - a.value);
  return el(
    "div",
    { class: "prob-bars" },
    sorted.map((entry, i) =>
      el(
        "div",
        { class: `prob-row${i === 0 ? " top" : ""}`, "data-label": entry.label },
        el("span", { class: "prob-label", title: entry.label }, entry.label),
        el(
          "span",
          { class: "prob-track" },
          el("span", { class: "prob-fill", style: `width: ${Math.max(0, Math.min(1, entry.value)) * 100}%` }),
        ),
        el("span", { class: "prob-value" }, fmtPct(entry.value)),
      ),
    ),
  );
}
