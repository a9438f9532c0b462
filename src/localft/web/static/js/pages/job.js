// Job detail: status and controls, live loss/accuracy charts from the job's metrics events, per-epoch
// classification metrics, checkpoints, result file, the Python snippet for the model, and the event log.

import { api, decodeResultFile, listAll, TERMINAL_STATUSES } from "../api.js";
import { stepChart } from "../charts.js";
import { ACCURACIES, extraKeys, LOSSES, pretty, stepRows } from "../metrics.js";
import { loadReports, reportLinks } from "../reports.js";
import { firstExample, pythonSnippet } from "../usage.js";
import {
  copyButton,
  download,
  el,
  errorBox,
  facts,
  fmtDate,
  fmtDuration,
  fmtInt,
  fmtNum,
  fmtTime,
  loading,
  mount,
  statusBadge,
  table,
} from "../ui.js";

const POLL_MS = 2000;
const LOG_ROWS = 100;
// Epoch-end classification metrics are close to each other (accuracy and weighted F1 often coincide): each gets
// its own marker shape, size and dash, the larger hollow markers drawn below the smaller, so none hides another.
const EXTRA_STYLES = [
  { pointStyle: "circle", radius: 7, dash: [] },
  { pointStyle: "rect", radius: 5, dash: [8, 4] },
  { pointStyle: "triangle", radius: 4, dash: [3, 3] },
  { pointStyle: "rectRot", radius: 3, dash: [10, 3, 2, 3] },
];

function hyperparametersOf(job) {
  return job.method?.supervised?.hyperparameters || job.hyperparameters || {};
}

export async function render(container, ctx) {
  const id = ctx.params.id;
  mount(container, loading());
  let job = await api(`/fine_tuning/jobs/${id}`);
  let events = await listAll(`/fine_tuning/jobs/${id}/events`, { pageSize: 100 });
  let checkpoints = [];
  let showAllEvents = false;
  let showStepEvents = false;

  const head = el("div", { class: "page-head" });
  const errorSlot = el("div");
  const factsSlot = el("section", { class: "card" });
  const progressSlot = el("div", { class: "progress-slot" });
  const lossCanvas = el("canvas", { id: "loss-chart", "aria-label": "Training and validation loss" });
  const accCanvas = el("canvas", { id: "accuracy-chart", "aria-label": "Training and validation accuracy" });
  const epochSlot = el("div", { id: "epoch-metrics" });
  const checkpointSlot = el("div", { id: "checkpoints" });
  const resultSlot = el("div", { id: "result-files" });
  const snippetSlot = el("section", { class: "card", id: "snippet" });
  const eventsSlot = el("div", { id: "events" });
  const reportsSlot = el("div", { id: "job-reports" });
  const actionError = el("div");

  mount(
    container,
    el("p", { class: "crumbs" }, el("a", { href: "#/jobs" }, "Jobs"), ` / ${id}`),
    head,
    actionError,
    errorSlot,
    factsSlot,
    el(
      "section",
      { class: "card" },
      el("h2", {}, "Training metrics"),
      progressSlot,
      el(
        "div",
        { class: "charts" },
        el("div", { class: "chart-box" }, lossCanvas),
        el("div", { class: "chart-box" }, accCanvas),
      ),
      epochSlot,
    ),
    el("section", { class: "card" }, el("h2", {}, "Checkpoints"), checkpointSlot),
    el("section", { class: "card" }, el("h2", {}, "Result files"), resultSlot),
    snippetSlot,
    el("section", { class: "card" }, el("h2", {}, "Evaluations"), reportsSlot),
    el("section", { class: "card" }, el("h2", {}, "Events"), eventsSlot),
  );

  const lossChart = stepChart(lossCanvas, { title: "Loss", series: LOSSES });
  let accChart = null;
  let accKeys = "";
  ctx.onLeave(() => {
    lossChart.destroy();
    accChart?.destroy();
  });

  async function act(verb) {
    mount(actionError);
    try {
      job = await api(`/fine_tuning/jobs/${id}/${verb}`, { method: "POST" });
      drawHead();
      drawFacts();
    } catch (error) {
      mount(actionError, errorBox(error));
    }
  }

  function drawHead() {
    const terminal = TERMINAL_STATUSES.has(job.status);
    mount(
      head,
      el("h1", { class: "mono wrap" }, job.id, " ", statusBadge(job.status)),
      el(
        "div",
        { class: "actions" },
        ["queued", "running"].includes(job.status)
          ? el("button", { type: "button", id: "pause", onclick: () => act("pause") }, "Pause")
          : null,
        job.status === "paused" ? el("button", { type: "button", id: "resume", onclick: () => act("resume") }, "Resume") : null,
        terminal
          ? null
          : el("button", { type: "button", class: "danger", id: "cancel", onclick: () => act("cancel") }, "Cancel"),
      ),
    );
    mount(
      errorSlot,
      job.error?.message
        ? errorBox({ message: job.error.message, param: job.error.param, status: job.error.code || "failed" })
        : null,
    );
  }

  function drawFacts() {
    const hp = hyperparametersOf(job);
    const model = job.fine_tuned_model;
    const now = Date.now() / 1000;
    mount(
      factsSlot,
      facts([
        ["Base model", el("span", { class: "mono wrap" }, job.model)],
        [
          "Fine-tuned model",
          model
            ? el("span", { class: "model-id" }, el("code", { id: "fine-tuned-model" }, model), copyButton(model))
            : "—",
        ],
        ["Training file", el("code", {}, job.training_file)],
        ["Validation file", job.validation_file ? el("code", {}, job.validation_file) : "—"],
        ["Suffix", job.user_provided_suffix || "—"],
        ["Created", fmtDate(job.created_at)],
        ["Finished", fmtDate(job.finished_at)],
        job.estimated_finish && !TERMINAL_STATUSES.has(job.status)
          ? ["Estimated finish", `${fmtTime(job.estimated_finish)} (in ${fmtDuration(job.estimated_finish - now)})`]
          : null,
        ["Trained tokens", fmtInt(job.trained_tokens)],
        ["Epochs", String(hp.n_epochs ?? "—")],
        ["Batch size", String(hp.batch_size ?? "—")],
        ["LR multiplier", String(hp.learning_rate_multiplier ?? "—")],
        hp.max_length !== undefined ? ["Max length", `${hp.max_length} tokens`] : null,
        ["Seed", job.seed ?? "—"],
        ["Worker", job.worker_id ? el("code", { id: "job-worker" }, job.worker_id) : "—"],
      ]),
    );
  }

  function drawMetrics() {
    const rows = stepRows(events);
    const extras = extraKeys(rows);
    // The accuracy chart's series depend on which extra metrics the server reported: rebuild when they change.
    if (extras.join() !== accKeys || !accChart) {
      accKeys = extras.join();
      accChart?.destroy();
      const ratioExtras = extras.filter((k) => rows.every((r) => r[k] === undefined || (r[k] >= 0 && r[k] <= 1)));
      accChart = stepChart(accCanvas, {
        title: "Accuracy",
        series: [
          ...ACCURACIES,
          ...ratioExtras.map((key, i) => ({
            key,
            label: `valid ${pretty(key)}`,
            points: true,
            ...EXTRA_STYLES[i % EXTRA_STYLES.length],
            order: -i, // later (smaller) markers on top
          })),
        ],
        yMin: 0,
        yMax: 1,
      });
    }
    lossChart.update(rows);
    accChart.update(rows);
    lossCanvas.dataset.points = String(rows.filter((r) => typeof r.train_loss === "number").length);

    const last = rows.at(-1);
    mount(
      progressSlot,
      last?.total_steps
        ? el(
            "div",
            { class: "progress", id: "progress" },
            el("progress", { max: last.total_steps, value: last.step }),
            el("span", {}, `step ${fmtInt(last.step)} / ${fmtInt(last.total_steps)}`),
            typeof last.train_loss === "number" ? el("span", {}, `train loss ${fmtNum(last.train_loss)}`) : null,
          )
        : el("p", { class: "muted" }, TERMINAL_STATUSES.has(job.status) ? "No metrics were reported." : "Waiting for the first step…"),
    );
    const epochRows = rows.filter((r) => extras.some((k) => r[k] !== undefined));
    mount(
      epochSlot,
      epochRows.length === 0
        ? null
        : [
            el("h3", {}, "Classification metrics on the validation file"),
            table(
              [
                { label: "Epoch", class: "num", cell: (r) => (r.epoch !== undefined ? fmtInt(r.epoch) : "—") },
                { label: "Step", class: "num", cell: (r) => fmtInt(r.step) },
                ...extras.map((key) => ({ label: pretty(key), class: "num", cell: (r) => fmtNum(r[key]) })),
                { label: "full valid loss", class: "num", cell: (r) => fmtNum(r.full_valid_loss) },
              ],
              epochRows,
            ),
          ],
    );
  }

  function drawCheckpoints() {
    mount(
      checkpointSlot,
      table(
        [
          { label: "Step", class: "num", cell: (c) => fmtInt(c.step_number) },
          {
            label: "Checkpoint model",
            cell: (c) =>
              el(
                "span",
                { class: "model-id" },
                el("code", {}, c.fine_tuned_model_checkpoint),
                copyButton(c.fine_tuned_model_checkpoint),
              ),
          },
          { label: "Train loss", class: "num", cell: (c) => fmtNum(c.metrics?.train_loss) },
          { label: "Valid loss", class: "num", cell: (c) => fmtNum(c.metrics?.full_valid_loss ?? c.metrics?.valid_loss) },
          { label: "Created", cell: (c) => fmtDate(c.created_at) },
          {
            label: "",
            cell: (c) =>
              el("a", { href: `#/playground?model=${encodeURIComponent(c.fine_tuned_model_checkpoint)}` }, "Try it"),
          },
        ],
        checkpoints,
        { empty: "No checkpoints yet: one is saved at the end of each epoch." },
      ),
    );
  }

  function drawResults() {
    const ids = job.result_files || [];
    mount(
      resultSlot,
      ids.length === 0
        ? el("p", { class: "muted" }, "The result file (per-step metrics as CSV) appears when the job ends.")
        : ids.map((fileId) =>
            el(
              "p",
              {},
              el("code", {}, fileId),
              " ",
              el(
                "button",
                {
                  type: "button",
                  class: "download-result",
                  onclick: async () => {
                    try {
                      const text = await api(`/files/${fileId}/content`, { as: "text" });
                      download(new Blob([decodeResultFile(text)], { type: "text/csv" }), `${job.id}-results.csv`);
                    } catch (error) {
                      mount(actionError, errorBox(error));
                    }
                  },
                },
                "Download CSV",
              ),
            ),
          ),
    );
  }

  let example = null;
  async function drawSnippet() {
    const model = job.fine_tuned_model;
    if (!model) {
      mount(snippetSlot, el("h2", {}, "Use the model"), el("p", { class: "muted" }, "Available once the job succeeds."));
      return;
    }
    example ??= await firstExample(job.training_file);
    const code = pythonSnippet(model, example.system, example.user || "Your text here");
    mount(
      snippetSlot,
      el("div", { class: "page-head" }, el("h2", {}, "Use the model"), copyButton(code, "Copy code")),
      el("pre", { class: "code", id: "python-snippet" }, el("code", {}, code)),
      el("p", {}, el("a", { href: `#/playground?model=${encodeURIComponent(model)}` }, "Open in the playground →")),
    );
  }

  // One metrics event per step would make a finished page thousands of pixels tall: they are folded into one
  // line (the charts above already show them) and listed on demand.
  function drawEvents() {
    const stepEvents = events.filter((e) => e.type === "metrics");
    const visible = showStepEvents ? events : events.filter((e) => e.type !== "metrics");
    const shown = showAllEvents ? visible : visible.slice(0, LOG_ROWS);
    const redraw = (change) => () => {
      change();
      drawEvents();
    };
    mount(
      eventsSlot,
      stepEvents.length
        ? el(
            "p",
            { class: "muted small", id: "step-events" },
            showStepEvents
              ? `Including ${fmtInt(stepEvents.length)} step events. `
              : `${fmtInt(stepEvents.length)} step events folded. `,
            el(
              "button",
              {
                type: "button",
                class: "small",
                id: "toggle-step-events",
                onclick: redraw(() => {
                  showStepEvents = !showStepEvents;
                }),
              },
              showStepEvents ? "Hide step events" : "Show step events",
            ),
          )
        : null,
      table(
        [
          { label: "Time", class: "time", cell: (e) => fmtTime(e.created_at) },
          { label: "Level", cell: (e) => el("span", { class: `level-${e.level}` }, e.level) },
          { label: "Message", cell: (e) => e.message },
        ],
        shown,
        { empty: "No events yet.", rowAttrs: (e) => ({ "data-type": e.type }) },
      ),
      visible.length > shown.length
        ? el(
            "button",
            {
              type: "button",
              onclick: redraw(() => {
                showAllEvents = true;
              }),
            },
            `Show all ${fmtInt(visible.length)} events`,
          )
        : null,
    );
  }

  // Evaluation reports saved on the server that scored this job's model or one of its checkpoints.
  async function drawReports() {
    const models = [job.fine_tuned_model, ...checkpoints.map((c) => c.fine_tuned_model_checkpoint)];
    if (!models.some(Boolean)) return mount(reportsSlot, el("p", { class: "muted" }, "None yet."));
    let links = null;
    try {
      links = reportLinks(await loadReports(), models);
    } catch {
      // The reports are an extra: the job page stands without them.
    }
    mount(
      reportsSlot,
      links ||
        el(
          "p",
          { class: "muted" },
          "None yet. ",
          el("code", {}, `localft eval TEST.jsonl -m ${models.find(Boolean)} --save-to-server`),
          " saves one here.",
        ),
    );
  }

  async function loadCheckpoints() {
    checkpoints = await listAll(`/fine_tuning/jobs/${id}/checkpoints`, { pageSize: 100 });
    drawCheckpoints();
  }

  /** New events since the newest one we have: pages from the top until a known id shows up. */
  async function newEvents() {
    const known = new Set(events.map((e) => e.id));
    const fresh = [];
    let after;
    for (;;) {
      const page = await api(`/fine_tuning/jobs/${id}/events`, { query: { limit: 100, after } });
      const unseen = page.data.filter((e) => !known.has(e.id));
      fresh.push(...unseen);
      if (unseen.length < page.data.length || !page.has_more || page.data.length === 0) break;
      after = page.data.at(-1).id;
    }
    return fresh;
  }

  drawHead();
  drawFacts();
  drawMetrics();
  drawResults();
  drawEvents();
  await Promise.all([loadCheckpoints(), drawSnippet()]);
  await drawReports();

  let finished = TERMINAL_STATUSES.has(job.status);
  ctx.every(POLL_MS, async () => {
    if (finished) return;
    try {
      const [latest, fresh] = await Promise.all([api(`/fine_tuning/jobs/${id}`), newEvents()]);
      const statusChanged = latest.status !== job.status;
      job = latest;
      finished = TERMINAL_STATUSES.has(job.status);
      if (fresh.length) {
        events = fresh.concat(events);
        drawMetrics();
        drawEvents();
      }
      drawFacts();
      if (statusChanged) {
        drawHead();
        drawResults();
        await drawSnippet();
        if (finished) await drawReports();
      }
      if (statusChanged || fresh.some((e) => /checkpoint/i.test(e.message))) await loadCheckpoints();
      if (finished) drawMetrics();
    } catch {
      // Keep what is on screen; the next tick retries (the server may be restarting).
    }
  });
}
