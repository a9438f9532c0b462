// Jobs: every fine-tuning job, newest first, refreshed while any is still moving, with each job's progress,
// duration and final validation score; filters by status, base model and suffix; a selection of jobs opens the
// compare page. Below, the live workers.

import { api, TERMINAL_STATUSES } from "../api.js";
import { finalScore, pretty, progressOf, stepRows } from "../metrics.js";
import { el, errorBox, fmtDate, fmtDuration, fmtInt, fmtPct, loading, mount, statusBadge, table } from "../ui.js";

const PAGE_SIZE = 50;
// The newest events of a job hold its last step and, at the end of a run, its last epoch's validation metrics.
const SUMMARY_EVENTS = 100;

function durationOf(job) {
  if (job.status === "validating_files" || job.status === "queued") return "—";
  return fmtDuration((job.finished_at || Date.now() / 1000) - job.created_at);
}

function progressCell(summary) {
  const progress = summary && progressOf(summary.rows);
  if (!progress) return "—";
  return el(
    "span",
    { class: "progress compact", "data-step": progress.step, "data-total": progress.total },
    el("progress", { max: progress.total, value: progress.step }),
    el("span", {}, `${fmtInt(progress.step)} / ${fmtInt(progress.total)}`),
  );
}

function scoreCell(summary) {
  const score = summary && finalScore(summary.rows);
  if (!score) return "—";
  return el("span", { class: "score", title: `validation ${pretty(score.key)}` }, `${fmtPct(score.value)} ${pretty(score.key)}`);
}

function jobsTable(list, summaries, selected, onSelect) {
  return table(
    [
      {
        label: "",
        cell: (j) =>
          el("input", {
            type: "checkbox",
            "aria-label": `Select ${j.id} to compare`,
            "data-select": j.id,
            checked: selected.has(j.id),
            onchange: (event) => onSelect(j.id, event.target.checked),
          }),
      },
      { label: "Job", cell: (j) => el("a", { href: `#/jobs/${j.id}`, class: "mono" }, j.id) },
      { label: "Status", cell: (j) => statusBadge(j.status) },
      { label: "Base model", cell: (j) => el("span", { class: "mono wrap" }, j.model) },
      { label: "Suffix", cell: (j) => j.user_provided_suffix || "—" },
      { label: "Progress", class: "progress-cell", cell: (j) => progressCell(summaries.get(j.id)) },
      { label: "Duration", class: "num", cell: (j) => el("span", { title: "From creation to finish, queue included" }, durationOf(j)) },
      { label: "Validation", class: "num", cell: (j) => scoreCell(summaries.get(j.id)) },
      { label: "Created", cell: (j) => fmtDate(j.created_at) },
      { label: "Fine-tuned model", cell: (j) => el("span", { class: "mono wrap" }, j.fine_tuned_model || "—") },
    ],
    list,
    { empty: "No fine-tuning jobs yet. Start one with “New job”.", rowAttrs: (j) => ({ "data-job-id": j.id }) },
  );
}

function workersTable(list) {
  return table(
    [
      { label: "Worker", cell: (w) => el("span", { class: "mono wrap" }, w.id) },
      {
        label: "Running",
        cell: (w) => (w.job_id ? el("a", { href: `#/jobs/${w.job_id}`, class: "mono" }, w.job_id) : "idle"),
      },
      { label: "Started", cell: (w) => fmtDate(w.started_at) },
      { label: "Last seen", cell: (w) => fmtDate(w.last_seen_at) },
    ],
    list,
    { empty: "No live workers: jobs wait in the queue until a server with its worker or `localft worker` runs." },
  );
}

/** A <select> of "" (any) and `values`, keeping the current choice when the values change. */
function fillSelect(select, anyLabel, values) {
  // Rebuilt only when the values change: rebuilding would close a list the user has open while jobs poll.
  if (select.dataset.values === values.join("\n")) return;
  select.dataset.values = values.join("\n");
  const current = select.value;
  mount(select, el("option", { value: "" }, anyLabel), values.map((v) => el("option", { value: v }, v.replaceAll("_", " "))));
  select.value = values.includes(current) ? current : "";
}

export async function render(container, ctx) {
  const body = el("div", {}, loading());
  const more = el("div", { class: "actions" });
  const workers = el("div", { id: "workers" });
  const statusFilter = el("select", { id: "filter-status", "aria-label": "Status" });
  const modelFilter = el("select", { id: "filter-model", "aria-label": "Base model" });
  const suffixFilter = el("input", { id: "filter-suffix", type: "search", placeholder: "Suffix contains…", "aria-label": "Suffix" });
  const compare = el("a", { class: "button", id: "compare-selected", href: "#/compare" });
  mount(
    container,
    el(
      "div",
      { class: "page-head" },
      el("h1", {}, "Fine-tuning jobs"),
      el("div", { class: "actions" }, compare, el("a", { href: "#/jobs/new", class: "button primary", id: "new-job" }, "New job")),
    ),
    el("div", { class: "filters", id: "job-filters" }, statusFilter, modelFilter, suffixFilter),
    body,
    more,
    el("h2", {}, "Workers"),
    workers,
  );

  // Pages already loaded with "Load more" are kept; only the first page is refreshed by polling.
  let jobs = [];
  let hasMore = false;
  // Per job: {rows, final}, its metrics rows from the newest events; a finished job's never change, so they are
  // not fetched again.
  const summaries = new Map();
  const selected = new Set(ctx.query.get("selected")?.split(",").filter(Boolean) || []);

  const matches = (j) =>
    (!statusFilter.value || j.status === statusFilter.value) &&
    (!modelFilter.value || j.model === modelFilter.value) &&
    (j.user_provided_suffix || "").toLowerCase().includes(suffixFilter.value.trim().toLowerCase());

  const drawCompare = () => {
    const ids = [...selected];
    compare.textContent = `Compare selected (${ids.length})`;
    compare.setAttribute("href", `#/compare?jobs=${ids.map(encodeURIComponent).join(",")}`);
    compare.classList.toggle("disabled", ids.length === 0);
    compare.setAttribute("aria-disabled", String(ids.length === 0));
  };

  drawCompare();

  const onSelect = (id, on) => {
    if (on) selected.add(id);
    else selected.delete(id);
    drawCompare();
  };

  const draw = () => {
    fillSelect(statusFilter, "Any status", [...new Set(jobs.map((j) => j.status))].sort());
    fillSelect(modelFilter, "Any base model", [...new Set(jobs.map((j) => j.model))].sort());
    const shown = jobs.filter(matches);
    const hidden = jobs.length - shown.length;
    mount(
      body,
      jobsTable(shown, summaries, selected, onSelect),
      hidden ? el("p", { class: "muted small", id: "filtered-out" }, `${fmtInt(hidden)} jobs hidden by the filters.`) : null,
    );
    mount(more, hasMore ? el("button", { type: "button", onclick: loadMore }, "Load more") : null);
    drawCompare();
  };
  for (const input of [statusFilter, modelFilter]) input.addEventListener("change", draw);
  suffixFilter.addEventListener("input", draw);

  async function summarize(list) {
    const stale = list.filter((j) => !summaries.get(j.id)?.final);
    await Promise.all(
      stale.map(async (j) => {
        try {
          const page = await api(`/fine_tuning/jobs/${j.id}/events`, { query: { limit: SUMMARY_EVENTS } });
          summaries.set(j.id, { rows: stepRows(page.data), final: TERMINAL_STATUSES.has(j.status) });
        } catch {
          // A job deleted meanwhile, or a failed request: its cells stay "—" until the next refresh.
        }
      }),
    );
  }

  async function loadMore() {
    const page = await api("/fine_tuning/jobs", { query: { limit: PAGE_SIZE, after: jobs.at(-1)?.id } });
    jobs = jobs.concat(page.data);
    hasMore = page.has_more;
    await summarize(page.data);
    draw();
  }

  async function refresh() {
    const live = await api("/workers");
    mount(workers, workersTable(live.data));
    const page = await api("/fine_tuning/jobs", { query: { limit: PAGE_SIZE } });
    const fresh = new Map(page.data.map((j) => [j.id, j]));
    const older = jobs.filter((j) => !fresh.has(j.id) && jobs.indexOf(j) >= PAGE_SIZE);
    jobs = page.data.concat(older);
    if (older.length === 0) hasMore = page.has_more;
    await summarize(page.data);
    draw();
  }

  try {
    await refresh();
  } catch (error) {
    mount(body, errorBox(error, () => render(container, ctx)));
    return;
  }
  // Fast while something is moving, slower otherwise (jobs started from the CLI still show up).
  let idleTicks = 0;
  ctx.every(2000, async () => {
    const moving = jobs.some((j) => !TERMINAL_STATUSES.has(j.status));
    idleTicks = moving ? 0 : idleTicks + 1;
    if (!moving && idleTicks % 5 !== 0) return;
    try {
      await refresh();
    } catch {
      // A failed background refresh keeps the last good table; the next tick tries again.
    }
  });
}
