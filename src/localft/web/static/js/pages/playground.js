// Playground: chat with any model through /v1/chat/completions; for a classifier, the predicted label and a
// probability bar per label.

import { api, listAll } from "../api.js";
import { el, errorBox, fmtInt, loading, mount, probabilityBars } from "../ui.js";
import { firstExample } from "../usage.js";

const TOP_LOGPROBS = 20;

/** `ft:...:ckpt-step-N` -> the fine-tuned model it belongs to. */
const modelOfCheckpoint = (id) => id.replace(/:ckpt-step-\d+$/, "");

/**
 * Label probabilities of a choice: `label_probs` when the server sends them (localft classifiers), else the
 * first answer token's top logprobs (what OpenAI gives), marked as such.
 */
function probabilitiesOf(choice) {
  if (choice.label_probs && Object.keys(choice.label_probs).length) {
    return { kind: "label", entries: Object.entries(choice.label_probs).map(([label, value]) => ({ label, value })) };
  }
  const top = choice.logprobs?.content?.[0]?.top_logprobs;
  if (top?.length) {
    return { kind: "token", entries: top.map((t) => ({ label: t.token, value: Math.exp(t.logprob) })) };
  }
  return null;
}

function bubble(message) {
  return el(
    "div",
    { class: `message role-${message.role}` },
    el("span", { class: "role" }, message.role),
    el("span", { class: "content" }, message.content),
  );
}

function answerView(completion) {
  const choice = completion.choices[0];
  const probs = probabilitiesOf(choice);
  const best = probs?.entries.reduce((a, b) => (b.value > a.value ? b : a));
  return el(
    "div",
    { class: "answer", id: "answer" },
    el(
      "div",
      { class: "message role-assistant" },
      el("span", { class: "role" }, "assistant"),
      el("span", { class: "content", id: "answer-text" }, choice.message.content ?? ""),
    ),
    probs
      ? el(
          "div",
          { class: "card", id: "probabilities" },
          el("h3", {}, probs.kind === "label" ? "Predicted label" : "First-token probabilities"),
          probs.kind === "label" ? el("p", { class: "predicted" }, el("code", {}, best.label), ` with p = ${best.value.toFixed(3)}`) : null,
          probabilityBars(probs.entries),
        )
      : null,
    el(
      "p",
      { class: "muted small" },
      `finish: ${choice.finish_reason} · tokens: ${fmtInt(completion.usage?.prompt_tokens)} in, `,
      `${fmtInt(completion.usage?.completion_tokens)} out · ${completion.system_fingerprint ?? ""}`,
    ),
  );
}

export async function render(container, ctx) {
  mount(container, el("h1", {}, "Playground"), loading());
  const [models, jobs] = await Promise.all([api("/models"), listAll("/fine_tuning/jobs", { max: 200 })]);

  const modelInput = el("input", {
    id: "pg-model",
    name: "model",
    list: "pg-models",
    required: true,
    value: ctx.query.get("model") || models.data.find((m) => m.id.startsWith("ft:"))?.id || models.data[0]?.id || "",
  });
  const system = el("textarea", { id: "pg-system", rows: 3, placeholder: "Optional system prompt" });
  const message = el("textarea", { id: "pg-message", rows: 3, required: true, placeholder: "Type a message" });
  const temperature = el("input", { id: "pg-temperature", type: "number", min: 0, max: 2, step: 0.1, value: 0 });
  const maxTokens = el("input", { id: "pg-max-tokens", type: "number", min: 1, max: 4096, value: 64 });
  const transcript = el("div", { class: "transcript", id: "transcript" });
  const output = el("div", { id: "pg-output" });
  const history = [];

  // Fine-tuned classifiers answer best with the system prompt they were trained with: offer it.
  async function suggestSystemPrompt() {
    const id = modelOfCheckpoint(modelInput.value.trim());
    const job = jobs.find((j) => j.fine_tuned_model === id);
    if (!job || system.value.trim()) return;
    const example = await firstExample(job.training_file);
    if (example.system && !system.value.trim()) system.value = example.system;
  }
  modelInput.addEventListener("change", suggestSystemPrompt);

  const send = el("button", { type: "submit", class: "primary", id: "pg-send" }, "Send");
  const form = el(
    "form",
    { class: "card form", id: "playground-form" },
    el(
      "label",
      {},
      "Model",
      modelInput,
      el("datalist", { id: "pg-models" }, models.data.map((m) => el("option", { value: m.id }))),
    ),
    el("label", {}, "System", system),
    transcript,
    el("label", {}, "Message", message),
    el(
      "div",
      { class: "grid3" },
      el("label", {}, "Temperature", temperature),
      el("label", {}, "Max tokens", maxTokens),
    ),
    el(
      "div",
      { class: "actions" },
      send,
      el("button", {
        type: "button",
        onclick: () => {
          history.length = 0;
          mount(transcript);
          mount(output);
        },
      }, "Clear conversation"),
    ),
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = message.value.trim();
    if (!text) return mount(output, errorBox({ message: "Type a message first.", param: "messages" }));
    const messages = [
      ...(system.value.trim() ? [{ role: "system", content: system.value.trim() }] : []),
      ...history,
      { role: "user", content: text },
    ];
    send.disabled = true;
    mount(output, loading("Thinking…"));
    try {
      const completion = await api("/chat/completions", {
        method: "POST",
        json: {
          model: modelInput.value.trim(),
          messages,
          temperature: Number(temperature.value),
          max_tokens: Number(maxTokens.value),
          logprobs: true,
          top_logprobs: TOP_LOGPROBS,
        },
      });
      const reply = completion.choices[0]?.message?.content ?? "";
      history.push({ role: "user", content: text }, { role: "assistant", content: reply });
      // Earlier turns go above the form; the newest answer is drawn below it with its probabilities.
      mount(transcript, history.slice(0, -1).map(bubble));
      message.value = "";
      mount(output, answerView(completion));
    } catch (error) {
      mount(output, errorBox(error));
    } finally {
      send.disabled = false;
    }
  });

  mount(container, el("h1", {}, "Playground"), form, output);
  await suggestSystemPrompt();
}
