// The shell: hash routing between pages, the API-key dialog, and per-page timers that stop on navigation.

import { getKey, setKey, setUnauthorizedHandler } from "./api.js";
import { el, errorBox, mount } from "./ui.js";
import * as compare from "./pages/compare.js";
import * as evals from "./pages/evals.js";
import * as files from "./pages/files.js";
import * as job from "./pages/job.js";
import * as jobs from "./pages/jobs.js";
import * as models from "./pages/models.js";
import * as newJob from "./pages/new_job.js";
import * as playground from "./pages/playground.js";

// [pattern, page module, section highlighted in the nav]; the first match wins.
const ROUTES = [
  [/^\/jobs\/new$/, newJob, "jobs"],
  [/^\/jobs\/(?<id>[^/]+)$/, job, "jobs"],
  [/^\/jobs$/, jobs, "jobs"],
  [/^\/compare$/, compare, "jobs"],
  [/^\/models$/, models, "models"],
  [/^\/files$/, files, "files"],
  [/^\/playground$/, playground, "playground"],
  [/^\/evals$/, evals, "evals"],
];

/**
 * What a page gets besides its container: route params, the query string, and `every(ms, fn)` for polling,
 * whose timers (and `onLeave` callbacks) end when the user navigates away.
 */
class PageContext {
  constructor(params, query) {
    this.params = params;
    this.query = query;
    this.timers = [];
    this.leaveHooks = [];
    this.active = true;
  }

  every(ms, fn) {
    let running = false;
    const tick = async () => {
      if (running || !this.active) return;
      running = true;
      try {
        await fn();
      } finally {
        running = false;
      }
    };
    this.timers.push(setInterval(tick, ms));
  }

  onLeave(fn) {
    this.leaveHooks.push(fn);
  }

  leave() {
    this.active = false;
    this.timers.forEach(clearInterval);
    this.leaveHooks.forEach((fn) => fn());
  }
}

let current = null;

async function route() {
  const [path, search = ""] = (location.hash.slice(1) || "/jobs").split("?");
  current?.leave();
  const view = document.getElementById("view");
  for (const [pattern, page, section] of ROUTES) {
    const match = path.match(pattern);
    if (!match) continue;
    for (const link of document.querySelectorAll(".nav a")) {
      link.classList.toggle("active", link.dataset.section === section);
    }
    const ctx = new PageContext(match.groups || {}, new URLSearchParams(search));
    current = ctx;
    const container = el("div", { class: "page", "data-page": section });
    mount(view, container);
    window.scrollTo(0, 0);
    try {
      await page.render(container, ctx);
    } catch (error) {
      if (ctx.active) mount(container, errorBox(error, () => route()));
    }
    return;
  }
  mount(view, el("h1", {}, "Not found"), el("p", {}, "No such page. ", el("a", { href: "#/jobs" }, "Go to jobs")));
}

// --- API key: asked for on the first 401, kept in sessionStorage only. ------------------------------------------

const dialog = document.getElementById("key-dialog");
const keyInput = document.getElementById("key-input");
const keyError = document.getElementById("key-error");
const keyButton = document.getElementById("key-button");
let pendingKeyRequest = null;

function askForKey(error) {
  // Several requests may fail with 401 at once: they all wait for the same dialog.
  if (pendingKeyRequest) return pendingKeyRequest;
  pendingKeyRequest = new Promise((resolve) => {
    keyInput.value = "";
    const refused = Boolean(getKey() && error.message);
    keyError.hidden = !refused;
    keyError.textContent = refused ? `The saved key was refused: ${error.message}` : "";
    const done = () => {
      dialog.removeEventListener("close", done);
      pendingKeyRequest = null;
      const accepted = dialog.returnValue === "save" && keyInput.value.trim() !== "";
      if (accepted) setKey(keyInput.value.trim());
      keyButton.hidden = !getKey();
      resolve(accepted);
    };
    dialog.addEventListener("close", done);
    dialog.returnValue = "";
    dialog.showModal();
  });
  return pendingKeyRequest;
}

setUnauthorizedHandler(askForKey);
document.getElementById("key-forget").addEventListener("click", () => {
  setKey("");
  keyButton.hidden = true;
  dialog.close("forget");
});
keyButton.hidden = !getKey();
keyButton.addEventListener("click", () => askForKey({ message: "" }).then((changed) => changed && route()));

window.addEventListener("hashchange", route);
route();
