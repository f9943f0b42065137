// The tasks page: every task with its schedule, next fire, last run and recent runs;
// run now and pause/resume.  Rows follow /api/events.

import { api } from "./api.js";
import { clear, h } from "./dom.js";
import { absolute, viewerZone } from "./fmt.js";
import { listen } from "./live.js";
import { action, allows, badge, failure, runNow, scopeNote, strip, when } from "./widgets.js";

const STRIP = 30;

export async function tasksPage(view, signal) {
  const { tasks } = await api("/api/tasks", { signal });
  const rows = new Map();
  const body = h("tbody");
  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      observer.unobserve(entry.target);
      loadStrip(rows.get(entry.target.dataset.task), signal);
    }
  });
  for (const task of tasks) {
    const row = { task, runs: null, el: h("tr", { dataset: { task: task.name } }) };
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
      if (row.runs) {
        row.runs = [data, ...row.runs.filter((r) => r.id !== data.id)].slice(0, STRIP);
      }
      if (!row.task.last_run || row.task.last_run.id === data.id || kind === "run.created") {
        row.task.last_run = data;
      }
      drawRow(row);
      if (kind !== "run.started") refresh(data.task_name); // its next fire moved on
    } else if (kind === "task.paused" || kind === "task.resumed") {
      refresh(data.task);
    } else if (kind === "config.reloaded") {
      window.dispatchEvent(new HashChangeEvent("hashchange"));
    }
  });
  signal.addEventListener("abort", () => {
    stop();
    observer.disconnect();
    for (const timer of refreshing.values()) clearTimeout(timer);
  });
}

async function loadStrip(row, signal) {
  try {
    const page = await api(`/api/tasks/${encodeURIComponent(row.task.name)}/runs?limit=${STRIP}`, { signal });
    row.runs = page.runs;
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
      { scope: "row", "data-label": "Task" },
      h("a", { href: link }, task.name),
      task.paused ? h("span", { class: "tag paused" }, "paused") : null,
      task.enabled ? null : h("span", { class: "tag" }, "disabled"),
    ),
    h(
      "td",
      { "data-label": "Schedule" },
      task.schedule
        ? [h("div", {}, task.schedule_text), h("code", {}, task.schedule), " ", h("span", { class: "muted" }, task.timezone)]
        : h("span", { class: "muted" }, "on request only"),
    ),
    h("td", { "data-label": "Next fire" }, nextFire(task)),
    h(
      "td",
      { "data-label": "Last run" },
      task.last_run ? [h("a", { href: `#/runs/${task.last_run.id}` }, badge(task.last_run)), " ", when(task.last_run.created_at)] : h("span", { class: "muted" }, "never"),
    ),
    h("td", { "data-label": "Recent runs" }, row.runs ? strip(row.runs) : h("span", { class: "muted" }, "…")),
    h("td", { "data-label": "Actions", class: "actions" }, actions(row)),
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
