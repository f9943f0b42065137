// One task: its figures, durations over time as a small chart, the next fires with DST
// shifts marked, its recent runs, its locks and pool with who holds them now, its chain
// (the tasks whose ends start it, and those its ends start) and its definition (secret
// values hidden by the API).

import { api } from "./api.js";
import { h, patch, svg } from "./dom.js";
import { definitionList } from "./definition.js";
import { absolute, bytes, clockTime, dayOf, duration, viewerZone } from "./fmt.js";
import { listen, mark } from "./live.js";
import { action, failure, runNow, scopeNote, session, strip, when } from "./widgets.js";

const CHART_RUNS = 1000;

export async function taskPage(view, signal, name) {
  const since = mark();
  const path = `/api/tasks/${encodeURIComponent(name)}`;
  // The tasks sharing a lock or the pool with this one: their runs' starts and ends
  // change who holds what this task needs, so the page follows them too.
  let sharing = new Set();
  const load = () =>
    Promise.all([
      api(`${path}?next=10&definition=true`, { signal }),
      api(`${path}/stats`, { signal }),
      api(`${path}/runs?limit=${CHART_RUNS}`, { signal }),
      session.ready,
    ]).then(async ([task, stats, runs]) => [task, stats, runs, await holdsOf(task, signal)]);
  const draw = ([task, stats, { runs }, holds]) => {
    sharing = new Set(holds.flatMap((hold) => hold.tasks));
    // In place (dom.patch): a press on Run now or a link split by a redraw is no click.
    return patch(
      view,
      h(
        "h1",
        {},
        task.name,
        task.paused ? h("span", { class: "tag paused" }, "paused") : null,
      ),
      h("p", { class: "lead" }, task.schedule_text ?? "Runs on request only", task.schedule ? [" — ", h("code", {}, task.schedule), ` (${task.timezone})`] : null),
      where(task),
      h(
        "p",
        { class: "actions" },
        action("Run now", { scope: "trigger", kind: "primary", reason: task.api_trigger ? null : "This task does not accept API triggers (api_trigger = false)", onclick: () => runNow(task) }),
        " ",
        action(task.paused ? "Resume" : "Pause", {
          scope: "admin",
          onclick: () => api(`${path}/${task.paused ? "resume" : "pause"}`, { method: "POST" }).then(redraw, failure),
        }),
        " ",
        h("a", { class: "btn", href: `#/runs?task_name=${encodeURIComponent(task.name)}` }, "All its runs"),
      ),
      scopeNote("trigger", "running it"),
      figures(stats),
      costFigures(stats),
      h("section", { "aria-labelledby": "chart-h" }, h("h2", { id: "chart-h" }, "Duration over time"), chart(runs)),
      h("section", { "aria-labelledby": "recent-h" }, h("h2", { id: "recent-h" }, "Recent runs"), runs.length ? strip(runs) : h("p", { class: "muted" }, "No runs yet.")),
      h("section", { "aria-labelledby": "next-h" }, h("h2", { id: "next-h" }, "Next fires"), fires(task)),
      holds.length ? h("section", { "aria-labelledby": "holds-h" }, h("h2", { id: "holds-h" }, "Locks and pool"), holdTable(holds)) : null,
      task.after.length || task.starts.length ? h("section", { "aria-labelledby": "chain-h" }, h("h2", { id: "chain-h" }, "Chain"), chainFields(task)) : null,
      h("section", { "aria-labelledby": "def-h" }, h("h2", { id: "def-h" }, "Definition"), definition(task.definition)),
    );
  };
  const redraw = () => load().then(draw, (error) => signal.aborted || failure(error));
  draw(await load());

  let timer = null;
  const stop = listen((kind, data) => {
    const about = kind.startsWith("run.") ? data.task_name : data.task;
    if (about !== name && !sharing.has(about) && kind !== "config.reloaded") return;
    if (kind === "run.started" && !sharing.size) return;
    clearTimeout(timer);
    timer = setTimeout(redraw, 300);
  }, since);
  signal.addEventListener("abort", () => {
    stop();
    clearTimeout(timer);
  });
}

// The task's locks and pool as GET /api/locks shows them (none asked for when it has
// neither).
async function holdsOf(task, signal) {
  if (!task.locks.length && task.pool === null) return [];
  const { locks } = await api("/api/locks", { signal });
  return locks.filter((hold) => (hold.kind === "lock" ? task.locks.includes(hold.name) : hold.name === task.pool));
}

function holdTable(holds) {
  const heldBy = (hold) =>
    hold.holders.length
      ? hold.holders.flatMap((holder, i) => [i ? ", " : "", h("a", { href: `#/runs/${holder.run_id}` }, holder.task_name), ` on ${holder.node} since ${absolute(holder.since)}`])
      : h("span", { class: "muted" }, "free");
  const waiting = (hold) => (hold.waiting.length ? hold.waiting.flatMap((w, i) => [i ? ", " : "", h("a", { href: `#/runs/${w.run_id}` }, w.task_name)]) : "—");
  return h(
    "table",
    { class: "grid compact holds" },
    h("thead", {}, h("tr", {}, ["Name", "Kind", "Size", "Held by", "Waiting on this node", "Tasks sharing it"].map((t) => h("th", { scope: "col" }, t)))),
    h(
      "tbody",
      {},
      holds.map((hold) =>
        h(
          "tr",
          {},
          h("th", { scope: "row" }, h("code", {}, hold.name)),
          h("td", {}, hold.kind),
          h("td", { class: "num" }, hold.size),
          h("td", {}, heldBy(hold)),
          h("td", {}, waiting(hold)),
          h("td", {}, hold.tasks.join(", ")),
        ),
      ),
    ),
  );
}

const MODES = {
  any: "any: each counting end of one of them starts a run",
  all: "all: one run once each of them has ended counting since the last chained run (the latest end of each is its cause)",
};

// What starts the task (its after, after_on, after_mode, after_params) and what its
// runs' ends start: the tasks whose after names it.
function chainFields(task) {
  const links = (names) => names.flatMap((name, i) => [i ? ", " : "", h("a", { href: `#/tasks/${encodeURIComponent(name)}` }, name)]);
  const rows = task.after.length
    ? [
        ["Started after", links(task.after)],
        ["On their end", task.after_on.join(", ")],
        ["Mode", MODES[task.after_mode]],
        ["Params", task.after_params === "inherit" ? "inherited from the cause (those this task declares)" : "none"],
      ]
    : [["Started after", h("span", { class: "muted" }, "no task (not chained)")]];
  rows.push(["Starts", task.starts.length ? [...links(task.starts), h("span", { class: "muted" }, " (on the ends their after_on names)")] : h("span", { class: "muted" }, "no task")]);
  return h("dl", { class: "fields chain-fields" }, rows.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
}

function figures(stats) {
  const rate = stats.success_rate === null ? "—" : `${(stats.success_rate * 100).toFixed(1)} %`;
  const items = [
    ["Runs", stats.runs],
    ["Active", stats.active],
    ["Success rate", rate],
    ["Duration p50", duration(stats.duration_ms.p50) || "—"],
    ["Duration p95", duration(stats.duration_ms.p95) || "—"],
    ["Last success", when(stats.last_success_at)],
    ["Last failure", when(stats.last_failure_at)],
  ];
  return figureList(items);
}

// What the runs cost, over the same window: CPU (user + system) in all and per run whose
// cost is known, peak memory p95 (of the durations' sample) and max, output written.
function costFigures(stats) {
  const cpu = stats.cpu_s;
  const memory = stats.max_rss_bytes;
  const seconds = (s) => (s === null ? "—" : duration(Math.round(s * 1000)));
  const size = (n) => (n === null ? "—" : bytes(n));
  const items = [
    ["CPU in all", cpu.runs ? seconds(cpu.total) : "—"],
    ["CPU a run", seconds(cpu.avg)],
    ["Peak memory p95", size(memory.p95)],
    ["Peak memory max", size(memory.max)],
    ["Output written", bytes(stats.output_bytes)],
  ];
  return h(
    "section",
    { "aria-labelledby": "cost-h" },
    h("h2", { id: "cost-h" }, "What its runs cost"),
    figureList(items, cpu.runs ? `CPU ${seconds(cpu.user)} user, ${seconds(cpu.system)} system, over ${cpu.runs} runs` : null),
  );
}

function figureList(items, note = null) {
  return [
    h("dl", { class: "figures" }, items.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v)))),
    note ? h("p", { class: "note" }, note) : null,
  ];
}

function percentile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

// p50 and p95 of the durations in up to 20 equal slices of time, as two lines.
function chart(runs) {
  const timed = runs.filter((r) => r.duration_ms !== null && r.start_at).map((r) => [Date.parse(r.start_at), r.duration_ms]);
  if (timed.length < 2) return h("p", { class: "muted" }, "Not enough finished runs to draw.");
  timed.sort((a, b) => a[0] - b[0]);
  const first = timed[0][0];
  const span = Math.max(timed[timed.length - 1][0] - first, 1);
  const slices = Math.min(20, timed.length);
  const buckets = Array.from({ length: slices }, () => []);
  for (const [t, ms] of timed) buckets[Math.min(slices - 1, Math.floor(((t - first) / span) * slices))].push(ms);
  const points = buckets
    .map((b, i) => ({ at: first + ((i + 0.5) / slices) * span, sorted: b.sort((x, y) => x - y) }))
    .filter((p) => p.sorted.length)
    .map((p) => ({ at: p.at, p50: percentile(p.sorted, 0.5), p95: percentile(p.sorted, 0.95), n: p.sorted.length }));
  const W = 600;
  const H = 160;
  const pad = 36;
  const top = Math.max(...points.map((p) => p.p95), 1);
  const x = (at) => pad + ((at - first) / span) * (W - pad - 8);
  const y = (ms) => H - 20 - (ms / top) * (H - 36);
  const line = (key, cls) =>
    svg("polyline", { class: cls, points: points.map((p) => `${x(p.at).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ") });
  const title = `Run duration p50 and p95 from ${absolute(new Date(first).toISOString())} to ${absolute(new Date(first + span).toISOString())}; highest p95 ${duration(top)}`;
  return h(
    "figure",
    { class: "chart" },
    svg(
      "svg",
      { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title },
      svg("line", { class: "axis", x1: pad, y1: H - 20, x2: W - 8, y2: H - 20 }),
      svg("line", { class: "axis", x1: pad, y1: 12, x2: pad, y2: H - 20 }),
      svg("text", { x: 2, y: 20, class: "label" }, duration(top)),
      svg("text", { x: 2, y: H - 22, class: "label" }, "0"),
      svg("text", { x: pad, y: H - 4, class: "label" }, axisTime(first, span)),
      svg("text", { x: W - 8, y: H - 4, class: "label end" }, axisTime(first + span, span)),
      line("p95", "p95"),
      line("p50", "p50"),
    ),
    h("figcaption", { class: "small" }, h("span", { class: "key p50" }, "p50"), " median and ", h("span", { class: "key p95" }, "p95"), ` of ${timed.length} runs; times in ${viewerZone}`),
    h(
      "details",
      {},
      h("summary", {}, "As a table"),
      h(
        "table",
        { class: "grid compact" },
        h("thead", {}, h("tr", {}, ["Around", "Runs", "p50", "p95"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, points.map((p) => h("tr", {}, h("td", {}, absolute(new Date(p.at).toISOString())), h("td", { class: "num" }, p.n), h("td", { class: "num" }, duration(p.p50)), h("td", { class: "num" }, duration(p.p95))))),
      ),
    ),
  );
}

// Within two days the hours tell the runs apart; beyond, the days do (24-hour, in the
// viewer's zone, which the caption names).
function axisTime(at, span) {
  return span < 2 * 86_400_000 ? clockTime(at) : dayOf(at);
}

function fires(task) {
  if (!task.next || !task.next.length) return h("p", { class: "muted" }, task.schedule ? "No further fires." : "No schedule.");
  return h(
    "table",
    { class: "grid compact" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, `In ${task.timezone}`),
        h("th", { scope: "col" }, `In your zone (${viewerZone})`),
        h("th", { scope: "col", class: "utc" }, "UTC"),
        h("th", { scope: "col" }, "Clock change"),
      ),
    ),
    h(
      "tbody",
      {},
      task.next.map((fire) => {
        const shift = fire.offset_change_minutes;
        return h(
          "tr",
          { class: shift ? "dst" : "" },
          h("td", {}, absolute(fire.utc, task.timezone)),
          h("td", {}, absolute(fire.utc)),
          h("td", { class: "utc" }, h("code", {}, fire.utc)),
          h("td", {}, shift ? h("span", { class: "tag dst" }, `DST: clocks ${shift > 0 ? "forward" : "back"} ${Math.abs(shift)} min`) : ""),
        );
      }),
    ),
  );
}

function definition(keys) {
  return keys ? definitionList(keys) : null;
}

// Where it runs: the node-name patterns, and whether each fire runs on every such node.
function where(task) {
  if (!task.nodes && !task.on_every_node) return null;
  const nodes = task.nodes ? ["on nodes matching ", ...task.nodes.flatMap((p, i) => [i ? ", " : "", h("code", {}, p)])] : ["on any node"];
  return h("p", { class: "where" }, "Runs ", ...nodes, task.on_every_node ? " — each scheduled fire once on every one of them" : null, ".");
}
