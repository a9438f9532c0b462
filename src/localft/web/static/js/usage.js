// How to call a fine-tuned model: the training file's first example and a Python snippet for the openai SDK.

import { api, baseUrl, getKey } from "./api.js";

/** Python for the current `openai` SDK calling `model` on this server, asking like the training examples did. */
export function pythonSnippet(model, system, user) {
  const key = getKey() ? '"YOUR_API_KEY"' : '"localft"  # any value: this server has no keys configured';
  const messages = [
    system ? `        {"role": "system", "content": ${JSON.stringify(system)}},` : null,
    `        {"role": "user", "content": ${JSON.stringify(user)}},`,
  ].filter(Boolean);
  return [
    "from openai import OpenAI",
    "",
    `client = OpenAI(base_url="${baseUrl()}", api_key=${key})`,
    "completion = client.chat.completions.create(",
    `    model="${model}",`,
    "    messages=[",
    ...messages,
    "    ],",
    "    temperature=0,",
    ")",
    "print(completion.choices[0].message.content)",
  ].join("\n");
}

/** The system prompt and first user message of the training file, so the snippet asks like the training did. */
export async function firstExample(fileId) {
  try {
    const file = await api(`/files/${fileId}`);
    if (file.bytes > 5 * 1024 * 1024) return {};
    const text = await api(`/files/${fileId}/content`, { as: "text" });
    const messages = JSON.parse(text.split("\n").find((line) => line.trim())).messages || [];
    return {
      system: messages.find((m) => m.role === "system")?.content,
      user: messages.find((m) => m.role === "user")?.content,
    };
  } catch {
    return {};
  }
}
