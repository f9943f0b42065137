// The tasks page: every task with its schedule, next fire, last run and recent runs;
// run now and pause/resume.  Rows follow /api/events.

import { api } from "./api.js";
import { cell, clear, h } from "./dom.js";
import { absolute, viewerZone } from "./fmt.js";
import { furthest, listen, mark } from "./live.js";
import { action, allows, badge, failure, runNow, scopeNote, session, strip, when } from "./widgets.js";

const STRIP = 30;

export async function tasksPage(view, signal) {
  const since = mark();
  const { tasks } = await api("/api/tasks", { signal });
  await session.ready;
  const rows = new Map();
  const body = h("tbody");
  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      observer.unobserve(entry.target);
      loadStrip(rows.get(entry.target.dataset.task), signal);
    }
  }, { rootMargin: "600px 0px" });
  for (const task of tasks) {
    const row = { task, runs: null, heard: new Map(), el: h("tr", { dataset: { task: task.name } }) };
    rows.set(task.name, row);
    drawRow(row);
    body.append(row.el);
    observer.observe(row.el);
  }
  clear(
    view,
    h("h1", {}, "Tasks"),
    scopeNote("trigger", "running tasks"),
    scopeNote("admin", "pausing and resuming"),
    tasks.length
      ? h(
          "table",
          { class: "grid tasks" },
          h("caption", { class: "sr-only" }, `${tasks.length} tasks; times in your zone are ${viewerZone}`),
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ["Task", "Schedule", "Next fire", "Last run", "Recent runs", "Actions"].map((t) =>
                h("th", { scope: "col" }, t),
              ),
            ),
          ),
          body,
        )
      : h("p", {}, "No tasks are configured."),
  );

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
  const stop = listen((kind, data) => {
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
    } else if (kind === "config.reloaded") {
      window.dispatchEvent(new HashChangeEvent("hashchange"));
    }
  }, since);
  signal.addEventListener("abort", () => {
    stop();
    observer.disconnect();
    for (const timer of refreshing.values()) clearTimeout(timer);
  });
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
  clear(
    row.el,
    h(
      "th",
      { scope: "row" },
      h("a", { href: link }, task.name),
      task.paused ? h("span", { class: "tag paused" }, "paused") : null,
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
    cell("Recent runs", {}, row.runs ? strip(row.runs) : h("span", { class: "strip loading muted" }, "…")),
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

function actions(row) {
  const { task } = row;
  const run = action("Run now", {
    scope: "trigger",
    reason: task.api_trigger ? null : "This task does not accept API triggers (api_trigger = false)",
    kind: "primary",
    onclick: () => runNow(task),
  });
  const verb = task.paused ? "resume" : "pause";
  const toggle = action(task.paused ? "Resume" : "Pause", {
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
  run.setAttribute("aria-label", `Run ${task.name} now`);
  toggle.setAttribute("aria-label", `${task.paused ? "Resume" : "Pause"} ${task.name}`);
  return allows("read") ? [run, " ", toggle] : [];
}
