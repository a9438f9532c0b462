// The only way the dashboard reaches the server: the public OpenAI-compatible /v1 API, nothing else.

const KEY_STORAGE = "localft.apiKey";
const BASE = "/v1";

/** An HTTP error carrying OpenAI's envelope fields ({error: {message, type, param, code}}). */
export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `HTTP ${status}`);
    this.status = status;
    this.type = error?.type ?? null;
    this.param = error?.param ?? null;
    this.code = error?.code ?? null;
  }
}

export function getKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

export function setKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

/** The server's origin + /v1, as a user would pass it to `OpenAI(base_url=...)`. */
export function baseUrl() {
  return `${location.origin}${BASE}`;
}

// Called with a retry function when the server answers 401; app.js asks for a key and resolves it.
let onUnauthorized = null;
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON (a proxy's HTML page, say): fall back to the status line.
  }
  return new ApiError(response.status, body?.error ?? { message: `${response.status} ${response.statusText}` });
}

/**
 * Calls `BASE + path`. `json` sends a JSON body, `form` a FormData body; `as` picks the result:
 * "json" (default), "text" or "blob". A 401 asks the user for a key and retries until they give up.
 */
export async function api(path, { method = "GET", json, form, as = "json", query } = {}) {
  const url = new URL(BASE + path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const headers = {};
  const key = getKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body });
  } catch (err) {
    throw new ApiError(0, { message: `Cannot reach the server (${err.message}).`, type: "connection_error" });
  }
  if (response.status === 401 && onUnauthorized) {
    const error = await errorFrom(response);
    if (await onUnauthorized(error)) return api(path, { method, json, form, as, query });
    throw error;
  }
  if (!response.ok) throw await errorFrom(response);
  if (as === "text") return response.text();
  if (as === "blob") return response.blob();
  return response.json();
}

/** Every item of a cursor-paginated list (`{data, has_more}` + `after`), up to `max` items. */
export async function listAll(path, { query = {}, pageSize = 100, max = 10000 } = {}) {
  const items = [];
  let after;
  for (;;) {
    const page = await api(path, { query: { ...query, limit: pageSize, after } });
    items.push(...page.data);
    if (!page.has_more || page.data.length === 0 || items.length >= max) return items;
    after = page.data[page.data.length - 1].id;
  }
}

/** Result files are served base64-encoded, as OpenAI serves them; plain CSV is passed through. */
export function decodeResultFile(text) {
  const trimmed = text.trim();
  if (trimmed.startsWith("step") || !/^[A-Za-z0-9+/=\s]+$/.test(trimmed)) return text;
  try {
    return atob(trimmed.replace(/\s+/g, ""));
  } catch {
    return text;
  }
}

export const TERMINAL_STATUSES = new Set(["succeeded", "failed", "cancelled"]);
