// The top of the landing page, what needs attention first: how many tasks are failing,
// stuck, overdue, running and paused (each a link to those tasks), the most urgent of
// them (failing first), and the next fires.  The daemon says which task is in which
// state (GET /api/tasks: attention, ?state=, ?sort=attention, ?counts=true).

import { api } from "./api.js";
import { clear, h } from "./dom.js";
import { absolute } from "./fmt.js";
import { icon } from "./icons.js";
import { badge, stateTag, when } from "./widgets.js";

export const STATES = ["failing", "stuck", "overdue", "running", "paused"];
const WORDS = { failing: "Failing", stuck: "Stuck", overdue: "Overdue", running: "Running", paused: "Paused" };
const URGENT = 10; // tasks listed under "Needs attention"
const SOON = 5; // next fires listed

const taskLink = (name) => h("a", { href: `#/tasks/${encodeURIComponent(name)}` }, name);

export function loadOverview(signal) {
  const urgent = new URLSearchParams({ state: STATES.join(","), sort: "attention", limit: URGENT, counts: "true", total: "true" });
  return Promise.all([
    api(`/api/tasks?${urgent}`, { signal }),
    api(`/api/tasks?sort=next_run_at&limit=${SOON}`, { signal }),
  ]);
}

// The sections, drawn into `into` (replacing what it held): the same boxes whether the
// counts are zero or not, so nothing below moves when they change.
export function drawOverview(into, [urgent, soon], chosen) {
  clear(
    into,
    h("h2", { id: "summary-h", class: "sr-only" }, "Summary"),
    counts(urgent.counts, chosen),
    h(
      "div",
      { class: "overview" },
      h("section", { "aria-labelledby": "attention-h" }, h("h2", { id: "attention-h" }, "Needs attention"), attention(urgent)),
      h("section", { "aria-labelledby": "soon-h" }, h("h2", { id: "soon-h" }, "Next fires"), nextFires(soon.tasks)),
    ),
  );
}

function counts(tally, chosen) {
  const item = (state, label, number, href) =>
    h(
      "li",
      { class: `count state-${state}${number ? "" : " zero"}` },
      h(
        "a",
        { href, "aria-current": chosen === state ? "true" : null },
        state === "all" ? null : icon(state),
        h("span", { class: "number" }, number),
        " ",
        h("span", { class: "word" }, label),
      ),
    );
  return h(
    "ul",
    { class: "counts", "aria-labelledby": "summary-h" },
    item("all", "Tasks", tally.tasks, "#/"),
    STATES.map((state) => item(state, WORDS[state], tally[state], `#/?state=${state}`)),
  );
}

function attention(page) {
  if (!page.tasks.length) {
    return h("p", { class: "calm" }, icon("success"), " Nothing needs attention: no task is failing, stuck, overdue, running or paused.");
  }
  const more = page.total - page.tasks.length;
  return [
    h(
      "ol",
      { class: "attention" },
      page.tasks.map((task) =>
        h(
          "li",
          { dataset: { task: task.name } },
          h("span", { class: "states" }, task.attention.map(stateTag)),
          " ",
          taskLink(task.name),
          task.last_run ? h("span", { class: "last" }, h("a", { href: `#/runs/${task.last_run.id}` }, badge(task.last_run)), " ", when(task.last_run.created_at)) : null,
        ),
      ),
    ),
    more > 0 ? h("p", { class: "small muted" }, `and ${more} more: pick a count above to list them.`) : null,
  ];
}

function nextFires(tasks) {
  const scheduled = tasks.filter((task) => task.next_run_at);
  if (!scheduled.length) return h("p", { class: "muted" }, "No scheduled fires.");
  return h(
    "ol",
    { class: "soon" },
    scheduled.map((task) =>
      h("li", {}, taskLink(task.name), " ", when(task.next_run_at), h("span", { class: "small muted" }, ` ${absolute(task.next_run_at)}`)),
    ),
  );
}
