// Jobs: every fine-tuning job, newest first, refreshed while any is still moving; below, the live workers.

import { api, TERMINAL_STATUSES } from "../api.js";
import { el, errorBox, fmtDate, fmtInt, loading, mount, statusBadge, table } from "../ui.js";

const PAGE_SIZE = 50;

function jobsTable(list) {
  return table(
    [
      { label: "Job", cell: (j) => el("a", { href: `#/jobs/${j.id}`, class: "mono" }, j.id) },
      { label: "Status", cell: (j) => statusBadge(j.status) },
      { label: "Base model", cell: (j) => el("span", { class: "mono wrap" }, j.model) },
      { label: "Suffix", cell: (j) => j.user_provided_suffix || "—" },
      { label: "Created", cell: (j) => fmtDate(j.created_at) },
      { label: "Finished", cell: (j) => fmtDate(j.finished_at) },
      { label: "Trained tokens", class: "num", cell: (j) => fmtInt(j.trained_tokens) },
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

export async function render(container, ctx) {
  const body = el("div", {}, loading());
  const more = el("div", { class: "actions" });
  const workers = el("div", { id: "workers" });
  mount(
    container,
    el(
      "div",
      { class: "page-head" },
      el("h1", {}, "Fine-tuning jobs"),
      el("a", { href: "#/jobs/new", class: "button primary", id: "new-job" }, "New job"),
    ),
    body,
    more,
    el("h2", {}, "Workers"),
    workers,
  );

  // Pages already loaded with "Load more" are kept; only the first page is refreshed by polling.
  let jobs = [];
  let hasMore = false;

  const draw = () => {
    mount(body, jobsTable(jobs));
    mount(more, hasMore ? el("button", { type: "button", onclick: loadMore }, "Load more") : null);
  };

  async function loadMore() {
    const page = await api("/fine_tuning/jobs", { query: { limit: PAGE_SIZE, after: jobs.at(-1)?.id } });
    jobs = jobs.concat(page.data);
    hasMore = page.has_more;
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
