// The runs page: the API's filters and sorts in a form that lives in the URL, cursor
// paging, and rows that follow /api/events.

import { api } from "./api.js";
import { cell, clear, h, patch } from "./dom.js";
import { absolute, duration, END_REASONS, exitText, outcome } from "./fmt.js";
import { furthest, listen, mark } from "./live.js";
import { badge, failure, session, tagLinks, when } from "./widgets.js";

const FILTERS = ["task_name", "status", "end_reason", "triggered_by", "start_date", "end_date", "search", "tag"];
const SORTS = ["created_at", "start_at", "end_at", "duration_ms", "exit_code", "task_name", "status"];
const CHOICES = {
  status: ["pending", "running", "ended"],
  end_reason: END_REASONS,
  triggered_by: ["schedule", "catch_up", "api", "retry"],
};
const NAMES = 1000;

export async function runsPage(view, signal, query) {
  const filters = Object.fromEntries(FILTERS.map((k) => [k, query.get(k) || ""]));
  const sortField = query.get("sort_field") || "created_at";
  const direction = query.get("sort_direction") || "desc";
  const limit = query.get("limit") || "50";
  const cursor = query.get("cursor") || "";
  const since = mark();

  const wanted = new URLSearchParams({ sort_field: sortField, sort_direction: direction, limit });
  for (const [key, value] of Object.entries(filters)) if (value) wanted.set(key, value);
  if (cursor) wanted.set("cursor", cursor);
  const page = await api(`/api/runs?${wanted}`, { signal });
  await session.ready;

  const form = filterForm(filters, sortField, direction, limit, signal);
  const body = h("tbody");
  const rows = new Map();
  // A tag in a row filters by it too (besides the tags already chosen).
  const byTag = (tag) => {
    const tags = new Set(filters.tag.split(",").filter(Boolean)).add(tag);
    const next = pageQuery(query, null);
    next.set("tag", [...tags].join(","));
    return `#/runs?${next}`;
  };
  const row = (run) => runRow(run, rows, byTag);
  for (const run of page.runs) body.append(row(run));
  const fresh = h("p", { class: "fresh", hidden: true });
  const empty = h("p", { class: "empty", hidden: page.runs.length > 0 }, "No runs match.");
  const table = h(
    "table",
    { class: "grid runs", hidden: page.runs.length === 0 },
    h("caption", { class: "sr-only" }, "Runs"),
    h("thead", {}, h("tr", {}, ["Outcome", "Task", "Trigger", "Created", "Duration", "Exit", "Attempt", "Node", "Tags"].map((t) => h("th", { scope: "col" }, t)))),
    body,
  );
  clear(view, h("h1", {}, "Runs"), form, fresh, empty, table, pager(page, cursor, query));

  // A run that appears on the first page as sorted and filtered is added in place;
  // otherwise a link offers to show the newer runs.
  const inPlace = !cursor && sortField === "created_at" && direction === "desc" && !filters.search && !filters.start_date && !filters.end_date;
  let newer = 0;
  const stop = listen((kind, run) => {
    if (!kind.startsWith("run.")) return;
    const known = rows.get(run.id);
    if (known) {
      const latest = furthest(known.run, run);
      if (latest !== known.run) {
        // In place: a cell the change left as it was keeps its link under the pointer.
        patch(known.tr, ...row(latest).childNodes);
        rows.set(run.id, { tr: known.tr, run: latest });
      }
      return;
    }
    if (kind !== "run.created" || !matches(run, filters)) return;
    if (inPlace) {
      body.prepend(row(run));
      while (body.children.length > Number(limit)) {
        rows.delete(body.lastElementChild.dataset.run);
        body.lastElementChild.remove();
      }
      empty.hidden = true;
      table.hidden = false;
    } else {
      newer += 1;
      clear(fresh, `${newer} newer run${newer === 1 ? "" : "s"}: `, h("a", { href: `#/runs?${pageQuery(query, null)}` }, "show them"));
      fresh.hidden = false;
    }
  }, since);
  signal.addEventListener("abort", stop);
}

function matches(run, filters) {
  if (filters.task_name && run.task_name !== filters.task_name) return false;
  if (!filters.tag.split(",").filter(Boolean).every((tag) => run.tags.includes(tag))) return false;
  for (const key of ["status", "end_reason", "triggered_by"]) {
    if (filters[key] && !filters[key].split(",").includes(run[key] ?? "")) return false;
  }
  return true;
}

function runRow(run, rows, byTag) {
  const tr = h(
    "tr",
    { dataset: { run: run.id } },
    // The link's name starts with what it shows (WCAG 2.5.3), then says which run.
    cell("Outcome", {}, h("a", { href: `#/runs/${run.id}`, "aria-label": `${outcome(run).word}, run ${run.id}` }, badge(run))),
    cell("Task", {}, h("a", { href: `#/tasks/${encodeURIComponent(run.task_name)}` }, run.task_name)),
    cell("Trigger", {}, run.triggered_by.replace("_", " ")),
    cell("Created", {}, when(run.created_at), h("div", { class: "small muted" }, absolute(run.created_at))),
    cell("Duration", { class: "num" }, duration(run.duration_ms)),
    cell("Exit", { class: "num" }, exitText(run)),
    cell("Attempt", { class: "num" }, run.attempt),
    cell("Node", {}, run.node),
    cell("Tags", {}, tagLinks(run.tags, byTag) ?? h("span", { class: "muted" }, "—")),
  );
  rows.set(run.id, { tr, run });
  return tr;
}

function select(id, label, options, value) {
  return h(
    "p",
    {},
    h("label", { for: id }, label),
    h("select", { id, name: id.replace("f-", "") }, options.map(([v, text]) => h("option", { value: v, selected: v === value }, text))),
  );
}

// The task field suggests task names once it is first focused: the names of the first
// NAMES tasks, read then rather than with the page (with 10,000 tasks they are ~0.5 MB
// of JSON that a phone would parse before drawing the runs).
function taskNames(signal) {
  const list = h("datalist", { id: "task-names" });
  let asked = false;
  const fill = () => {
    if (asked) return;
    asked = true;
    api(`/api/tasks?limit=${NAMES}`, { signal }).then(
      ({ tasks }) => list.append(...tasks.map((t) => h("option", { value: t.name }))),
      (error) => signal.aborted || failure(error),
    );
  };
  return { list, fill };
}

function filterForm(filters, sortField, direction, limit, signal) {
  const names = taskNames(signal);
  const any = [["", "any"]];
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter runs" },
    h(
      "p",
      {},
      h("label", { for: "f-task_name" }, "Task"),
      h("input", { id: "f-task_name", name: "task_name", list: "task-names", value: filters.task_name, autocomplete: "off", onfocus: names.fill }),
      names.list,
    ),
    ...["status", "end_reason", "triggered_by"].map((key) =>
      select(`f-${key}`, key.replace("_", " ").replace(/^./, (c) => c.toUpperCase()), [...any, ...CHOICES[key].map((v) => [v, v.replace("_", " ")])], filters[key]),
    ),
    h("p", {}, h("label", { for: "f-start_date" }, "From"), h("input", { id: "f-start_date", name: "start_date", value: filters.start_date, placeholder: "24 hours ago" })),
    h("p", {}, h("label", { for: "f-end_date" }, "To"), h("input", { id: "f-end_date", name: "end_date", value: filters.end_date, placeholder: "now" })),
    h("p", {}, h("label", { for: "f-search" }, "Search"), h("input", { id: "f-search", name: "search", type: "search", value: filters.search })),
    h("p", {}, h("label", { for: "f-tag" }, "Tags"), h("input", { id: "f-tag", name: "tag", value: filters.tag, placeholder: "nightly,env=prod", autocomplete: "off" })),
    select("f-sort_field", "Sort by", SORTS.map((s) => [s, s.replace("_", " ")]), sortField),
    select("f-sort_direction", "Order", [["desc", "descending"], ["asc", "ascending"]], direction),
    select("f-limit", "Per page", ["25", "50", "100", "200"].map((n) => [n, n]), limit),
    h("p", { class: "buttons" }, h("button", { type: "submit", class: "btn primary" }, "Apply"), " ", h("a", { href: "#/runs", class: "btn" }, "Reset")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (value) query.set(key, value);
    location.hash = `#/runs?${query}`;
  });
  return form;
}

function pageQuery(query, cursor) {
  const next = new URLSearchParams(query);
  next.delete("cursor");
  if (cursor) next.set("cursor", cursor);
  return next;
}

// The API hands out both cursors: the previous page is the one seen before, as it was
// (runs added since do not shift it), also after a reload or from a shared link.
function pager(page, cursor, query) {
  const nav = h("nav", { class: "pager", "aria-label": "Pages" });
  if (cursor) nav.append(h("a", { class: "btn", href: `#/runs?${pageQuery(query, null)}` }, "First page"), " ");
  if (page.prev_cursor) {
    nav.append(h("a", { class: "btn", href: `#/runs?${pageQuery(query, page.prev_cursor)}`, rel: "prev" }, "Previous page"), " ");
  }
  if (page.has_next) {
    nav.append(h("a", { class: "btn", href: `#/runs?${pageQuery(query, page.next_cursor)}`, rel: "next" }, "Next page"));
  }
  return nav;
}
