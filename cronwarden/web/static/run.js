// One run, outcome and log first: its outcome in a line of figures (duration and log
// size live while it runs), its error, what its job reported (stage, a progress bar, the
// output as JSON) and its log followed live over SSE (stdout and stderr told apart).
// Beside them on a wide screen, after them on a narrow one: every other field, the chain
// of attempts, the run(s) whose end started it and the runs its own end started (a
// task's after), the files it kept (artifacts.js).  Stop, rerun and the raw log.

import { api, ApiError, download, follow } from "./api.js";
import { artifactsSection } from "./artifacts.js";
import { clear, h, patch } from "./dom.js";
import { absolute, bytes, duration, exitText } from "./fmt.js";
import { furthest, listen, mark } from "./live.js";
import { action, badge, failure, notify, scopeNote, session, tagLinks, when } from "./widgets.js";

const MAX_LINES = 5000; // lines kept on the page; the raw log has them all
const REFRESH_MS = 1000; // a growing log's size is read again at most this often
// On a narrow screen the details come after the log: they are shown once the log's first
// lines are in (a box of lines growing above them would move them: layout shift), or
// once a running run has been quiet this long, or at the latest after SETTLE_MS.
const QUIET_MS = 300;
const SETTLE_MS = 3000;

export async function runPage(view, signal, id) {
  const since = mark();
  // The run with its attempts and the runs linked to it, in one request.
  let run = await api(`/api/runs/${id}?expand=attempts,related`, { signal });
  const { attempts, related } = run;
  const causes = causesOf(run, related);
  const [task] = await Promise.all([taskOf(run, signal), session.ready]);
  const header = h("div", { class: "run-head" });
  const figures = h("dl", { class: "figures outcome", "aria-label": "outcome" });
  const fields = h("dl", { class: "fields" });
  const chain = h("ol", { class: "chain" });
  const started = startedList(run, task, related.chained);
  const files = artifactsSection(run, signal);
  const lines = h("ol", { class: "log", "aria-label": "log lines" });
  const logState = h("p", { class: "log-state", role: "status" });
  const errorBox = h("div");
  const reported = h("section", { "aria-labelledby": "reported-h", hidden: true });

  // Redrawn as the run changes (and once more when its log ends): in place, so that a
  // click on its links and buttons is not lost to a redraw that changed nothing there.
  const draw = () => {
    patch(
      header,
      h("h1", {}, h("a", { href: `#/tasks/${encodeURIComponent(run.task_name)}` }, run.task_name), " ", badge(run)),
      h(
        "p",
        { class: "actions" },
        action("Stop", { scope: "trigger", kind: "danger", reason: run.status === "ended" ? "The run has ended" : null, onclick: stop }),
        " ",
        action("Rerun", { scope: "trigger", onclick: rerun }),
        " ",
        h("button", { type: "button", class: "btn", onclick: raw }, "Download raw log"),
      ),
      scopeNote("trigger", "stopping and rerunning"),
    );
    clear(errorBox, run.error ? h("div", { class: "error-box", role: "note" }, h("strong", {}, "Error: "), run.error) : null);
    clear(figures, ...outcomeOf(run));
    patch(fields, ...describe(run, causes));
    drawReported(reported, run);
  };
  // While it runs: its duration counts up each second, its log size is read again as
  // the log grows (the row holds the final size only once the run has ended).
  const tick = setInterval(() => run.status === "running" && clear(figures, ...outcomeOf(run)), 1000);
  signal.addEventListener("abort", () => clearInterval(tick));
  let busy = false; // a read in flight, or read less than REFRESH_MS ago
  let again = false; // the log grew meanwhile: read once more after that
  const grown = () => {
    if (run.status !== "running" || signal.aborted) return;
    if (busy) return void (again = true);
    busy = true;
    api(`/api/runs/${run.id}`, { signal })
      .then((now) => {
        run = furthest(run, now);
        draw();
      })
      .catch((error) => signal.aborted || failure(error))
      .finally(() =>
        setTimeout(() => {
          busy = false;
          if (again) {
            again = false;
            grown();
          }
        }, REFRESH_MS),
      );
  };
  const stop = async () => {
    try {
      // Its end can be heard before this answer arrives: keep the further state.
      run = furthest(run, await api(`/api/runs/${run.id}/stop`, { method: "POST" }));
      draw();
    } catch (error) {
      failure(error);
    }
  };
  const rerun = async () => {
    try {
      const next = await api(`/api/runs/${run.id}/rerun`, { method: "POST" });
      notify("Rerun started.", { link: { href: `#/runs/${next.id}`, text: "Open it" } });
    } catch (error) {
      failure(error);
    }
  };
  const raw = () => download(`/api/runs/${run.id}/log/raw`, `${run.task_name}-${run.id}.log`).catch(failure);

  const aside = h(
    "aside",
    { class: "run-aside settling", "aria-label": "details" },
    h("section", { "aria-labelledby": "fields-h" }, h("h2", { id: "fields-h" }, "Details"), fields),
    h("section", { "aria-labelledby": "chain-h" }, h("h2", { id: "chain-h" }, "Attempts"), chain),
    started.section,
    files.section,
  );
  draw();
  clear(
    view,
    header,
    figures,
    errorBox,
    h(
      "div",
      { class: "run-body" },
      h(
        "div",
        { class: "run-main" },
        reported,
        h(
          "section",
          { "aria-labelledby": "log-h" },
          h("h2", { id: "log-h" }, "Log"),
          h("p", { class: "legend small" }, h("span", { class: "stream-out" }, "out"), " standard output, ", h("span", { class: "stream-err" }, "err"), " standard error"),
          logState,
          h("div", { class: "log-box", tabindex: "0", role: "region", "aria-label": "log" }, lines),
        ),
      ),
      aside,
    ),
  );
  drawChain(chain, run, attempts);
  const redrawChain = () =>
    api(`/api/runs/${run.id}?expand=attempts`, { signal }).then((now) => drawChain(chain, run, now.attempts), (error) => signal.aborted || failure(error));

  const stopListening = listen((kind, changed) => {
    if (changed.id === run.id) {
      run = furthest(run, changed);
      draw();
      started.ended(run);
      files.ended(run);
    } else if (changed.caused_by?.includes(run.id)) {
      started.add(changed); // created by this run's end, or one of those moving on
    } else if (kind === "run.created" && changed.retry_of === run.id) {
      redrawChain();
    }
  }, since);
  signal.addEventListener("abort", stopListening);
  followLog(run, lines, logState, signal, {
    onGrow: grown,
    onEnd: (ended) => {
      run = ended;
      draw();
      started.ended(run);
      files.ended(run);
    },
    onSettled: () => aside.classList.remove("settling"),
  });
}

// The outcome at a glance: how it ended (or where it is), when it started, for how
// long, how much it printed, which attempt.  A running run's duration is counted from
// its start on this browser's clock (never below zero when the clocks differ).
function outcomeOf(run) {
  const ran = run.status === "running" && run.start_at ? Math.max(0, Date.now() - Date.parse(run.start_at)) : run.duration_ms;
  const items = [
    [run.status === "ended" ? "End reason" : "Status", run.end_reason ?? run.status],
    ["Exit", exitText(run) || "—"],
    ["Started", run.start_at ? when(run.start_at) : "—"],
    ["Duration", duration(ran) || "—"],
    ["Log size", `${bytes(run.log_size)}${run.log_truncated ? " (truncated)" : ""}`],
    ["Attempt", String(run.attempt)],
  ];
  return items.map(([term, value]) => h("div", {}, h("dt", {}, term), h("dd", {}, value)));
}

// Everything else the run's row holds.
function describe(run, causes) {
  const rows = [
    ["Run id", h("code", {}, run.id)],
    ["Triggered by", run.triggered_by.replace("_", " ")],
    ["Scheduled for", run.scheduled_for ? absolute(run.scheduled_for) : "—"],
    ["Created", [absolute(run.created_at), " (", when(run.created_at), ")"]],
    ...(run.delayed_until ? [["Delayed until", absolute(run.delayed_until)]] : []),
    ...(run.expires_at ? [[run.expired_at ? "Expired at" : "Expires at", absolute(run.expired_at ?? run.expires_at)]] : []),
    ["Started", run.start_at ? absolute(run.start_at) : "—"],
    ["Ended", run.end_at ? absolute(run.end_at) : "—"],
    ["Retry of", run.retry_of ? h("a", { href: `#/runs/${run.retry_of}` }, run.retry_of) : "—"],
    ["Rerun of", run.rerun_of ? h("a", { href: `#/runs/${run.rerun_of}` }, run.rerun_of) : "—"],
    ["Caused by", run.caused_by ? causedBy(run.caused_by, causes) : "—"],
    ["Params", Object.keys(run.params).length ? Object.entries(run.params).map(([k, v]) => h("div", {}, h("code", {}, `${k}=${v}`))) : "—"],
    ["Tags", tagLinks(run.tags, (tag) => `#/runs?${new URLSearchParams({ tag })}`) ?? "—"],
    ["Metadata", Object.keys(run.metadata).length ? h("pre", { class: "metadata" }, JSON.stringify(run.metadata, null, 2)) : "—"],
    ["Idempotency key", run.idempotency_key ?? "—"],
    ["Process id", run.pid ?? "—"],
    ["Node", run.node],
    ["CPU", run.cpu_user_s == null ? "—" : `${run.cpu_user_s.toFixed(2)} s user, ${run.cpu_system_s.toFixed(2)} s system`],
    ["Peak memory", run.max_rss_bytes == null ? "—" : bytes(run.max_rss_bytes)],
    ["Output written", run.output_bytes == null ? "—" : bytes(run.output_bytes)],
    ["Task definition hash", h("code", {}, run.task_hash)],
  ];
  return rows.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]);
}

// What the job reported (PATCH /api/runs/{id}, cronwarden report), live: its stage, its
// progress as a bar, its output as indented JSON (text, never markup).  Hidden until it
// reports.
function drawReported(section, run) {
  section.hidden = run.stage == null && run.progress == null && run.output == null;
  if (section.hidden) return clear(section);
  const percent = run.progress == null ? null : `${Math.round(run.progress * 100)}%`;
  const bar = h("progress", { max: "1", value: String(run.progress), "aria-labelledby": "progress-t", "aria-valuetext": percent });
  clear(
    section,
    h("h2", { id: "reported-h" }, "Reported by the job"),
    h(
      "dl",
      { class: "fields" },
      h("dt", {}, "Stage"),
      h("dd", { class: "run-stage" }, run.stage ?? "—"),
      h("dt", { id: "progress-t" }, "Progress"),
      h("dd", { class: "run-progress" }, percent == null ? "—" : [bar, " ", percent]),
      h("dt", {}, "Output"),
      h("dd", {}, run.output == null ? "—" : h("pre", { class: "run-output", tabindex: "0", "aria-label": "output (JSON)" }, JSON.stringify(run.output, null, 2))),
    ),
  );
}

// The runs whose ends started a chained run (one, or one per task of an "all" chain),
// as the expanded run brought them: a run's cause never changes.  A cause already
// deleted by retention is still named by its id.
function causesOf(run, related) {
  const found = new Map((run.caused_by ?? []).map((id) => [id, null]));
  for (const cause of related.caused_by) found.set(cause.id, cause);
  return found;
}

function causedBy(ids, causes) {
  return ids.map((id) => {
    const cause = causes.get(id);
    return h("div", {}, h("a", { href: `#/runs/${id}` }, cause ? `${cause.task_name} run ${id}` : `run ${id}`), cause ? [" ", badge(cause)] : " (deleted)");
  });
}

// The run's task as configured now, for the tasks its end may start (null once the
// task left the config: its past runs stay readable).
function taskOf(run, signal) {
  return api(`/api/tasks/${encodeURIComponent(run.task_name)}`, { signal }).catch((error) => (error instanceof ApiError && error.status === 404 ? null : Promise.reject(error)));
}

// "What it started": the runs this run's end started (the expanded run's
// related.chained), kept at their furthest state as events arrive; a chained run created
// while the page is open is added by its run.created event.  Shown for a run whose task
// starts others, or that started some (its task may have been changed since).
function startedList(run, task, chained) {
  const runs = new Map();
  const starts = task?.starts ?? [];
  const list = h("ol", { class: "caused" });
  const state = h("p", { class: "muted" });
  const section = h("section", { "aria-labelledby": "started-h", hidden: true }, h("h2", { id: "started-h" }, "What it started"), state, list);
  let ended = run.status === "ended";
  const draw = () => {
    section.hidden = !runs.size && !starts.length;
    const ordered = [...runs.values()].sort((a, b) => a.created_at.localeCompare(b.created_at));
    clear(list, ordered.map((r) => h("li", {}, h("a", { href: `#/runs/${r.id}` }, `${r.task_name} run ${r.id}`), " ", badge(r), " ", when(r.created_at))));
    const names = starts.flatMap((name, i) => [i ? ", " : "", h("a", { href: `#/tasks/${encodeURIComponent(name)}` }, name)]);
    if (runs.size) clear(state);
    else if (ended) clear(state, "Its end started no run. Tasks after this one: ", names, ' (each starts on the final outcomes its after_on names; "all" waits for every task it names).');
    else clear(state, "When it ends, it may start: ", names, ".");
  };
  const add = (changed) => {
    runs.set(changed.id, furthest(runs.get(changed.id), changed));
    draw();
  };
  chained.forEach(add);
  draw();
  return {
    section,
    add,
    ended: (now) => {
      ended = now.status === "ended";
      draw();
    },
  };
}

// The attempts of one fire (attempt 1 first, as the API lists them: back along retry_of
// to the first, on through the retries made of each).
function drawChain(list, run, attempts) {
  const items = attempts.map((r) =>
    h(
      "li",
      {},
      r.id === run.id
        ? h("span", { "aria-current": "page" }, `Attempt ${r.attempt} (this run) `, badge(r))
        : h("a", { href: `#/runs/${r.id}` }, `Attempt ${r.attempt} `, badge(r)),
      " ",
      when(r.created_at),
    ),
  );
  clear(list, items);
}

// onSettled: called once, when the log's first lines are on the page (or it has none,
// or it is slow to come): what follows the log is shown from then on, in its place.
function followLog(run, lines, state, signal, { onGrow, onEnd, onSettled }) {
  const box = lines.parentElement;
  let unsettled = true;
  const settle = () => {
    if (unsettled) onSettled();
    unsettled = false;
  };
  setTimeout(settle, SETTLE_MS);
  state.textContent = run.status === "ended" ? "Loading the log…" : "Following the log…";
  let pending = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 8;
    lines.append(...pending);
    pending = [];
    while (lines.childElementCount > MAX_LINES) lines.firstElementChild.remove();
    if (atBottom) box.scrollTop = box.scrollHeight;
    settle();
  };
  follow(
    `/api/runs/${run.id}/log?follow=true`,
    (event) => {
      const data = JSON.parse(event.data);
      if (event.type === "end") {
        flush();
        const count = lines.childElementCount;
        state.textContent = `The run has ended; ${count === 0 ? "it wrote nothing" : `${count} line${count === 1 ? "" : "s"}`}.`;
        onEnd(data);
        return false;
      }
      const err = data.stream === "stderr";
      pending.push(
        h(
          "li",
          { class: err ? "err" : "out", value: data.n },
          h("span", { class: err ? "stream-err" : "stream-out" }, err ? "err" : "out"),
          h("span", { class: "text" }, data.text),
        ),
      );
      if (!scheduled) {
        scheduled = true;
        requestAnimationFrame(flush);
        onGrow();
      }
      return true;
    },
    {
      signal,
      onState: (s) => {
        if (s === "reconnecting") state.textContent = "Connection lost; reconnecting…";
        else if (s === "open" && run.status !== "ended") {
          state.textContent = "Following the log…";
          setTimeout(settle, QUIET_MS); // a running run may print nothing for a while
        }
      },
    },
  ).catch((error) => {
    settle();
    return signal.aborted || failure(error);
  });
}
