// Pieces shared by the pages: outcome badges, times, run strips, guarded action buttons,
// the run-now form and notices.

import { api, ApiError } from "./api.js";
import { h, clear } from "./dom.js";
import { absolute, duration, outcome, relative } from "./fmt.js";
import { icon } from "./icons.js";

const RANK = { read: 1, trigger: 2, admin: 3 };
// What the visitor may do; pages draw their actions once `ready` (GET /api/info) settles,
// which is fetched beside the page's own data rather than before it.
export const session = { access: { scope: "read", token: null }, ready: Promise.resolve() };

export function allows(scope) {
  return RANK[session.access.scope] >= RANK[scope];
}

export function badge(run) {
  const { key, word, failing } = outcome(run);
  return h("span", { class: `badge o-${key}${failing ? " failing" : ""}` }, icon(key), ` ${word}`);
}

// A task's attention state (failing, stuck, overdue, running, paused) as a tag.
export function stateTag(state) {
  return h("span", { class: `tag state-${state}` }, icon(state), ` ${state}`);
}

export function when(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  return h("time", { datetime: iso, title: absolute(iso), class: "rel" }, relative(iso));
}

// Relative times go stale: refresh them every 15 s.
setInterval(() => {
  for (const el of document.querySelectorAll("time.rel")) {
    el.textContent = relative(el.getAttribute("datetime"));
  }
}, 15_000);

// Each cell is a link of at least 24x24 CSS px (WCAG 2.5.8): a finger can hit one.
export function strip(runs, count = 30) {
  const cells = runs
    .slice(0, count)
    .reverse()
    .map((run) => {
      const { key, word, failing } = outcome(run);
      const label = `${word}, ${absolute(run.created_at)}${run.duration_ms !== null ? `, ${duration(run.duration_ms)}` : ""}`;
      return h(
        "a",
        { class: `cell o-${key}${failing ? " failing" : ""}`, href: `#/runs/${run.id}`, title: label, "aria-label": label },
        h("span", { class: "tip", "aria-hidden": "true" }, label),
      );
    });
  return h("span", { class: "strip", role: "group", "aria-label": "recent runs, oldest first" }, cells);
}

// A run's tags, each a link (``hrefOf(tag)``) to the runs carrying it; null when none.
export function tagLinks(tags, hrefOf) {
  if (!tags?.length) return null;
  return h("span", { class: "run-tags" }, tags.map((tag) => h("a", { class: "run-tag", href: hrefOf(tag), title: `Runs tagged ${tag}` }, tag)));
}

// An action the token may not allow stays visible but disabled, saying why.
// The visible reason for disabled actions (a disabled button cannot take focus, so its
// title alone would not reach keyboard users).
export function scopeNote(scope, what) {
  if (allows(scope)) return null;
  const who = session.access.token ? `Token ${session.access.token}` : "This session";
  return h("p", { class: "note" }, `${who} has the ${session.access.scope} scope: ${what} needs ${scope}.`);
}

export function action(label, { scope, onclick, reason = null, kind = "" }) {
  const refused = reason || (allows(scope) ? null : `Needs a token with the ${scope} scope`);
  const button = h("button", { type: "button", class: `btn ${kind}`, disabled: Boolean(refused), onclick }, label);
  if (refused) button.title = refused;
  return button;
}

const notices = () => document.getElementById("notices");

export function notify(message, { error = false, link = null } = {}) {
  const item = h("li", { class: error ? "notice error" : "notice", role: error ? "alert" : "status" }, message);
  if (link) item.append(" ", h("a", { href: link.href }, link.text));
  const close = h("button", { type: "button", class: "close", "aria-label": "Dismiss", onclick: () => item.remove() }, icon("close"));
  item.append(close);
  notices().append(item);
  if (!error) setTimeout(() => item.remove(), 8000);
}

export function failure(error) {
  const message = error instanceof ApiError ? error.message : `Network error: ${error.message}`;
  notify(message, { error: true });
}

// Run a task now: straight away, or through a form when it declares params.
export async function runNow(task) {
  const params = task.params.length ? await askParams(task) : {};
  if (params === null) return null;
  try {
    const run = await api(`/api/tasks/${encodeURIComponent(task.name)}/runs`, { method: "POST", body: { params } });
    notify(`Started ${task.name}.`, { link: { href: `#/runs/${run.id}`, text: "Open the run" } });
    return run;
  } catch (error) {
    failure(error);
    return null;
  }
}

function askParams(task) {
  const dialog = document.getElementById("params-dialog");
  const fields = task.params.map((name, i) =>
    h("p", {}, h("label", { for: `param-${i}` }, name), h("input", { id: `param-${i}`, name, autocomplete: "off" })),
  );
  clear(dialog.querySelector(".fields"), fields);
  dialog.querySelector("h2").textContent = `Run ${task.name}`;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        if (dialog.returnValue !== "run") return resolve(null);
        const values = {};
        for (const input of dialog.querySelectorAll(".fields input")) {
          if (input.value !== "") values[input.name] = input.value;
        }
        resolve(values);
      },
      { once: true },
    );
  });
}
