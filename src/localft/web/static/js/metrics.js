// A job's training metrics as the pages draw them: one row per step from the job's metrics events, the extra
// (classification) metrics the server adds at epoch ends, the final validation score, and curve smoothing.

// OpenAI's metric keys; anything else numeric in a metrics event is an extra (classification) metric.
export const LOSSES = [
  { key: "train_loss", label: "train loss" },
  { key: "valid_loss", label: "valid loss (batch)", dashed: true },
  { key: "full_valid_loss", label: "valid loss (full)", points: true },
];
export const ACCURACIES = [
  { key: "train_mean_token_accuracy", label: "train token acc." },
  { key: "valid_mean_token_accuracy", label: "valid token acc. (batch)", dashed: true },
  { key: "full_valid_mean_token_accuracy", label: "valid token acc. (full)", points: true },
];
const NOT_EXTRA = new Set(["step", "total_steps", "epoch", ...LOSSES.map((s) => s.key), ...ACCURACIES.map((s) => s.key)]);
// The headline of a run, in order of preference: single-label runs report accuracy, multi-label ones micro-F1.
const SCORES = ["full_valid_accuracy", "full_valid_micro_f1", "full_valid_macro_f1"];

/** Events arrive newest first; rows come out in step order, one per step (the latest report of a step wins). */
export function stepRows(events) {
  const byStep = new Map();
  for (let i = events.length - 1; i >= 0; i -= 1) {
    const event = events[i];
    if (event.type === "metrics" && event.data && typeof event.data.step === "number") {
      byStep.set(event.data.step, { ...byStep.get(event.data.step), ...event.data });
    }
  }
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

/** Extra numeric keys (accuracy, macro-F1, ...) the server adds to some metrics events, in first-seen order. */
export function extraKeys(rows) {
  const keys = [];
  for (const row of rows) {
    for (const [key, value] of Object.entries(row)) {
      if (!NOT_EXTRA.has(key) && typeof value === "number" && !keys.includes(key)) keys.push(key);
    }
  }
  return keys;
}

// `full_valid_macro_f1` -> "macro f1": the tables and charts already say these are on the validation file.
export const pretty = (key) => key.replace(/^full_valid_/, "").replaceAll("_", " ");

/** The last step's progress, {step, total_steps}, or null before the first step. */
export function progressOf(rows) {
  const last = rows.findLast((r) => typeof r.total_steps === "number");
  return last ? { step: last.step, total: last.total_steps } : null;
}

/** The latest validation headline, {key, value}, or null when the job reported none (no validation file). */
export function finalScore(rows) {
  for (let i = rows.length - 1; i >= 0; i -= 1) {
    const key = SCORES.find((k) => typeof rows[i][k] === "number");
    if (key) return { key, value: rows[i][key] };
  }
  return null;
}

/**
 * When the job's training began (Unix seconds): its first "Fine-tuning job started" event among `events`, which
 * come newest first; null if they do not reach back that far. Jobs wait in the queue for one another, so the
 * time from creation overstates how long a run took.
 */
export function startedAt(events) {
  const started = events.findLast((e) => e.type === "message" && e.message === "Fine-tuning job started");
  return started ? started.created_at : null;
}

/**
 * Exponential moving average, debiased as TensorBoard's smoothing slider is, so the first points are not pulled
 * towards zero. `weight` 0 returns the values unchanged; 0.9 follows the trend of noisy per-step losses.
 */
export function smooth(values, weight) {
  if (!(weight > 0)) return values.slice();
  let average = 0;
  return values.map((value, i) => {
    average = average * weight + (1 - weight) * value;
    return average / (1 - weight ** (i + 1));
  });
}
