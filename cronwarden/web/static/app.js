// The dashboard's shell: the token prompt, the router (#/, #/runs, #/runs/ID,
// #/tasks/NAME, #/nodes) and the live connection.

import { api, onTokenNeeded, storeToken, storedToken } from "./api.js";
import { clear, h } from "./dom.js";
import { learnFailures } from "./fmt.js";
import * as live from "./live.js";
import { nodesPage } from "./nodes.js";
import { runPage } from "./run.js";
import { runsPage } from "./runs.js";
import { taskPage } from "./task.js";
import { tasksPage } from "./tasks.js";
import { session } from "./widgets.js";

const view = document.getElementById("view");
let current = null;

const ROUTES = [
  [/^\/?$/, "tasks", (signal, _m, query) => tasksPage(view, signal, query)],
  [/^\/runs\/?$/, "runs", (signal, _m, query) => runsPage(view, signal, query)],
  [/^\/runs\/([0-9a-f-]{36})$/i, "runs", (signal, m) => runPage(view, signal, m[1])],
  [/^\/tasks\/(.+)$/, "tasks", (signal, m) => taskPage(view, signal, decodeURIComponent(m[1]))],
  [/^\/nodes\/?$/, "nodes", (signal) => nodesPage(view, signal)],
];

async function route() {
  current?.abort();
  current = new AbortController();
  const signal = current.signal;
  const [path, search = ""] = location.hash.replace(/^#/, "").split("?");
  const match = ROUTES.map(([re, section, page]) => [re.exec(path), section, page]).find(([m]) => m);
  view.setAttribute("aria-busy", "true");
  try {
    if (!match) {
      clear(view, h("h1", {}, "Not found"), h("p", {}, "No such page. ", h("a", { href: "#/" }, "Go to the tasks")));
      return;
    }
    const [m, section, page] = match;
    for (const link of document.querySelectorAll("nav.main a")) {
      if (link.dataset.section === section) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    await live.opened;
    await page(signal, m, new URLSearchParams(search));
    const heading = view.querySelector("h1");
    document.title = heading ? `${heading.textContent} · cronwarden` : "cronwarden";
  } catch (error) {
    if (signal.aborted) return;
    clear(
      view,
      h("h1", {}, "Could not load this page"),
      h("p", { class: "error-box", role: "alert" }, error.message),
      h("p", {}, h("button", { type: "button", class: "btn", onclick: () => location.reload() }, "Try again")),
    );
  } finally {
    if (!signal.aborted) view.removeAttribute("aria-busy");
  }
}

function askToken(message) {
  const dialog = document.getElementById("token-dialog");
  const input = dialog.querySelector("input");
  dialog.querySelector(".why").textContent = storedToken() ? message : "This daemon needs an API token.";
  input.value = "";
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        const entered = dialog.returnValue === "use" && input.value.trim() !== "";
        if (entered) storeToken(input.value.trim());
        resolve(entered);
      },
      { once: true },
    );
  });
}

function showAccess(info) {
  session.access = info.access;
  const who = info.access.token ? `token ${info.access.token} (${info.access.scope})` : null;
  clear(
    document.getElementById("who"),
    `${info.node} · v${info.version}`,
    who ? [" · ", who, " ", h("button", { type: "button", class: "link", onclick: forget }, "Forget token")] : null,
  );
}

function forget() {
  storeToken(null);
  location.reload();
}

function showLive(state) {
  const el = document.getElementById("live");
  el.dataset.state = state;
  el.textContent = { open: "live", reconnecting: "reconnecting…", closed: "not live" }[state] ?? state;
}

onTokenNeeded(askToken);
session.ready = api("/api/info").then((info) => {
  learnFailures(info.failure_end_reasons);
  showAccess(info);
});
live.start(showLive);
window.addEventListener("hashchange", route);
route().then(() => performance.mark("cronwarden:first-view"));
