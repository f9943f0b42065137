// The landing page: what needs attention (overview.js), then every task with its
// schedule, next fire, last run and recent runs, run now and pause/resume.  The tasks
// come a page at a time (GET /api/tasks?limit=&cursor=, by name), the next page as the
// list is scrolled to its end or "Show more tasks" is pressed; #/?state=failing lists
// the tasks in one state.  Rows and counts follow /api/events.

import { api } from "./api.js";
import { cell, clear, h, patch } from "./dom.js";
import { absolute, viewerZone } from "./fmt.js";
import { furthest, listen, mark } from "./live.js";
import { drawOverview, loadOverview, STATES } from "./overview.js";
import { action, allows, badge, failure, runNow, scopeNote, session, stateTag, strip, when } from "./widgets.js";

const STRIP = 12; // recent runs in a row's strip (a window under 1100 px shows the newest 8)
const PAGE = 50; // tasks read and drawn at a time: a phone's CPU draws 50 rows in ~0.1 s
const OVERVIEW_EVERY = 5000; // ms: the counts are read again at most this often (with
// 10,000 tasks a read costs the daemon ~0.15 s: every task's newest run is looked at)

export async function tasksPage(view, signal, query = new URLSearchParams()) {
  const since = mark();
  const state = STATES.includes(query.get("state")) ? query.get("state") : null;
  const listing = new URLSearchParams({ limit: PAGE, total: "true" });
  if (state) listing.set("state", state);
  const [summary, first] = await Promise.all([loadOverview(signal), api(`/api/tasks?${listing}`, { signal })]);
  await session.ready;
  const top = h("div", { class: "top-of-tasks" });
  drawOverview(top, summary, state);
  const list = taskList(signal, listing, first);
  clear(
    view,
    h("h1", {}, "Tasks"),
    scopeNote("trigger", "running tasks"),
    scopeNote("admin", "pausing and resuming"),
    top,
    h(
      "section",
      { "aria-labelledby": "all-h" },
      h("h2", { id: "all-h" }, state ? [`${state[0].toUpperCase()}${state.slice(1)} tasks `, h("a", { class: "small", href: "#/" }, "show every task")] : "All tasks"),
      list.element,
    ),
  );

  let overviewTimer = null;
  const refreshOverview = () => {
    overviewTimer ??= setTimeout(() => {
      loadOverview(signal).then(
        (fresh) => {
          overviewTimer = null;
          drawOverview(top, fresh, state);
        },
        (error) => signal.aborted || failure(error),
      );
    }, OVERVIEW_EVERY);
  };
  const stop = listen((kind, data) => {
    if (kind === "config.reloaded") {
      window.dispatchEvent(new HashChangeEvent("hashchange"));
      return;
    }
    list.heard(kind, data);
    if (kind.startsWith("run.") || kind === "task.paused" || kind === "task.resumed") refreshOverview();
  }, since);
  signal.addEventListener("abort", () => {
    stop();
    list.close();
    clearTimeout(overviewTimer);
  });
}

// The table of tasks, a page at a time; `heard` takes the changes of /api/events.
function taskList(signal, listing, first) {
  const rows = new Map();
  const body = h("tbody");
  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      observer.unobserve(entry.target);
      loadStrip(rows.get(entry.target.dataset.task), signal);
    }
  }, { rootMargin: "600px 0px" });
  const status = h("p", { class: "small muted", role: "status" });
  const more = h("button", { type: "button", class: "btn", onclick: () => next() }, "Show more tasks");
  const footer = h("div", { class: "more" }, status, more);
  let cursor = null;
  let loading = null;
  const add = (page) => {
    for (const task of page.tasks) {
      if (rows.has(task.name)) continue;
      const row = { task, runs: null, heard: new Map(), el: h("tr", { dataset: { task: task.name } }) };
      rows.set(task.name, row);
      drawRow(row);
      body.append(row.el);
      observer.observe(row.el);
    }
    cursor = page.has_next ? page.next_cursor : null;
    more.hidden = cursor === null;
    status.textContent = `${rows.size} of ${first.total} tasks shown${cursor === null ? "" : "; more load as you scroll"}.`;
  };
  const next = () => {
    if (cursor === null || loading) return loading;
    const wanted = new URLSearchParams(listing);
    wanted.set("cursor", cursor);
    wanted.delete("total");
    loading = api(`/api/tasks?${wanted}`, { signal })
      .then(add, (error) => signal.aborted || failure(error))
      .finally(() => {
        loading = null;
      });
    return loading;
  };
  // The end of the list in sight: the next page, well before it is reached.
  const bottom = new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && next(), { rootMargin: "800px 0px" });
  bottom.observe(footer);
  add(first);

  const refreshing = new Map();
  const refresh = (name) => {
    if (refreshing.has(name) || !rows.has(name)) return;
    refreshing.set(
      name,
      setTimeout(async () => {
        refreshing.delete(name);
        try {
          const row = rows.get(name);
          row.task = await api(`/api/tasks/${encodeURIComponent(name)}`, { signal });
          drawRow(row);
        } catch (error) {
          if (!signal.aborted) failure(error);
        }
      }, 200),
    );
  };
  const heard = (kind, data) => {
    if (kind.startsWith("run.")) {
      const row = rows.get(data.task_name);
      if (!row) return;
      row.heard.set(data.id, furthest(row.heard.get(data.id), data));
      if (row.heard.size > 2 * STRIP) row.heard.delete(row.heard.keys().next().value);
      if (row.runs) {
        const shown = row.runs.find((r) => r.id === data.id);
        const latest = furthest(shown, data);
        row.runs = shown ? row.runs.map((r) => (r.id === data.id ? latest : r)) : [data, ...row.runs].slice(0, STRIP);
      }
      const last = row.task.last_run;
      if (!last || last.id === data.id || data.created_at > last.created_at) {
        row.task.last_run = furthest(last?.id === data.id ? last : null, data);
      }
      drawRow(row);
      if (kind !== "run.started") refresh(data.task_name); // its next fire moved on
    } else if (kind === "task.paused" || kind === "task.resumed") {
      refresh(data.task);
    }
  };
  const element = first.tasks.length
    ? [
        h(
          "table",
          { class: "grid tasks" },
          h("caption", { class: "sr-only" }, `${first.total} tasks; times in your zone are ${viewerZone}`),
          h("thead", {}, h("tr", {}, ["Task", "Schedule", "Next fire", "Last run", "Recent runs", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
          body,
        ),
        footer,
      ]
    : h("p", {}, listing.has("state") ? "No task is in this state." : "No tasks are configured.");
  const close = () => {
    observer.disconnect();
    bottom.disconnect();
    for (const timer of refreshing.values()) clearTimeout(timer);
  };
  return { element, heard, close };
}

async function loadStrip(row, signal) {
  try {
    const page = await api(`/api/tasks/${encodeURIComponent(row.task.name)}/runs?limit=${STRIP}`, { signal });
    // Changes heard while the page was read win over it where they are further along.
    const listed = page.runs.map((r) => furthest(r, row.heard.get(r.id)));
    const ids = new Set(listed.map((r) => r.id));
    const newer = [...row.heard.values()].filter((r) => !ids.has(r.id) && (!listed.length || r.created_at > listed[0].created_at));
    row.runs = [...newer.sort((a, b) => (a.created_at < b.created_at ? 1 : -1)), ...listed].slice(0, STRIP);
    drawRow(row);
  } catch (error) {
    if (!signal.aborted) failure(error);
  }
}

function drawRow(row) {
  const { task } = row;
  const link = `#/tasks/${encodeURIComponent(task.name)}`;
  // Failing and running show in the last run's badge; the other states as tags.
  const tags = (task.attention ?? []).filter((state) => state !== "failing" && state !== "running");
  // In place (dom.patch): every run of the task redraws its row, and a press on its
  // link or Run now that a redraw split was no click.
  patch(
    row.el,
    h(
      "th",
      { scope: "row" },
      h("a", { href: link }, task.name),
      tags.flatMap((state) => [" ", stateTag(state)]),
      task.enabled ? null : h("span", { class: "tag" }, "disabled"),
    ),
    cell(
      "Schedule",
      {},
      task.schedule
        ? [h("div", {}, task.schedule_text), h("code", {}, task.schedule), " ", h("span", { class: "muted" }, task.timezone)]
        : h("span", { class: "muted" }, "on request only"),
    ),
    cell("Next fire", {}, nextFire(task)),
    cell(
      "Last run",
      {},
      task.last_run ? [h("a", { href: `#/runs/${task.last_run.id}` }, badge(task.last_run)), " ", when(task.last_run.created_at)] : h("span", { class: "muted" }, "never"),
    ),
    cell("Recent runs", {}, row.runs ? strip(row.runs, STRIP) : h("span", { class: "strip loading muted" }, "…")),
    cell("Actions", { class: "actions" }, actions(row)),
  );
}

function nextFire(task) {
  if (!task.next_run_at) return h("span", { class: "muted" }, task.paused ? "paused" : "—");
  const local = absolute(task.next_run_at, task.timezone);
  const mine = absolute(task.next_run_at);
  return [
    when(task.next_run_at),
    h("div", { class: "small" }, local),
    local === mine ? null : h("div", { class: "small muted" }, `${mine} (yours)`),
  ];
}

// Each button's accessible name starts with its visible label (WCAG 2.5.3), then says
// which task it acts on.
function actions(row) {
  const { task } = row;
  const run = action("Run now", {
    scope: "trigger",
    reason: task.api_trigger ? null : "This task does not accept API triggers (api_trigger = false)",
    kind: "primary",
    onclick: () => runNow(task),
  });
  const verb = task.paused ? "resume" : "pause";
  const label = task.paused ? "Resume" : "Pause";
  const toggle = action(label, {
    scope: "admin",
    onclick: async () => {
      try {
        row.task = await api(`/api/tasks/${encodeURIComponent(task.name)}/${verb}`, { method: "POST" });
        drawRow(row);
      } catch (error) {
        failure(error);
      }
    },
  });
  run.setAttribute("aria-label", `Run now: ${task.name}`);
  toggle.setAttribute("aria-label", `${label} ${task.name}`);
  return allows("read") ? [run, " ", toggle] : [];
}
