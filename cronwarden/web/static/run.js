// One run: every field, its error, the chain of attempts, its log followed live over
// SSE (stdout and stderr told apart), stop, rerun and the raw log.

import { api, download, follow } from "./api.js";
import { clear, h } from "./dom.js";
import { absolute, bytes, duration, exitText } from "./fmt.js";
import { furthest, listen, mark } from "./live.js";
import { action, badge, failure, notify, scopeNote, session, when } from "./widgets.js";

const MAX_LINES = 5000; // lines kept on the page; the raw log has them all

export async function runPage(view, signal, id) {
  const since = mark();
  let run = await api(`/api/runs/${id}`, { signal });
  await session.ready;
  const header = h("div", { class: "run-head" });
  const fields = h("dl", { class: "fields" });
  const chain = h("ol", { class: "chain" });
  const lines = h("ol", { class: "log", "aria-label": "log lines" });
  const logState = h("p", { class: "log-state", role: "status" });
  const errorBox = h("div");

  const draw = () => {
    clear(
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
    clear(fields, ...describe(run));
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

  draw();
  clear(
    view,
    header,
    errorBox,
    h("section", { "aria-labelledby": "fields-h" }, h("h2", { id: "fields-h" }, "Details"), fields),
    h("section", { "aria-labelledby": "chain-h" }, h("h2", { id: "chain-h" }, "Attempts"), chain),
    h(
      "section",
      { "aria-labelledby": "log-h" },
      h("h2", { id: "log-h" }, "Log"),
      h("p", { class: "legend small" }, h("span", { class: "stream-out" }, "out"), " standard output, ", h("span", { class: "stream-err" }, "err"), " standard error"),
      logState,
      h("div", { class: "log-box", tabindex: "0", role: "region", "aria-label": "log" }, lines),
    ),
  );
  drawChain(chain, run, signal).catch((error) => signal.aborted || failure(error));

  const stopListening = listen((kind, changed) => {
    if (changed.id === run.id) {
      run = furthest(run, changed);
      draw();
    } else if (kind === "run.created" && changed.retry_of === run.id) {
      drawChain(chain, run, signal).catch(failure);
    }
  }, since);
  signal.addEventListener("abort", stopListening);
  followLog(run, lines, logState, signal, (ended) => {
    run = ended;
    draw();
  });
}

function describe(run) {
  const rows = [
    ["Run id", h("code", {}, run.id)],
    ["Status", run.status],
    ["End reason", run.end_reason ?? "—"],
    ["Exit", exitText(run) || "—"],
    ["Triggered by", run.triggered_by.replace("_", " ")],
    ["Scheduled for", run.scheduled_for ? absolute(run.scheduled_for) : "—"],
    ["Created", [absolute(run.created_at), " (", when(run.created_at), ")"]],
    ["Started", run.start_at ? absolute(run.start_at) : "—"],
    ["Ended", run.end_at ? absolute(run.end_at) : "—"],
    ["Duration", duration(run.duration_ms) || "—"],
    ["Attempt", run.attempt],
    ["Retry of", run.retry_of ? h("a", { href: `#/runs/${run.retry_of}` }, run.retry_of) : "—"],
    ["Rerun of", run.rerun_of ? h("a", { href: `#/runs/${run.rerun_of}` }, run.rerun_of) : "—"],
    ["Params", Object.keys(run.params).length ? Object.entries(run.params).map(([k, v]) => h("div", {}, h("code", {}, `${k}=${v}`))) : "—"],
    ["Idempotency key", run.idempotency_key ?? "—"],
    ["Process id", run.pid ?? "—"],
    ["Node", run.node],
    ["Log size", `${bytes(run.log_size)}${run.log_truncated ? " (truncated)" : ""}`],
    ["Task definition hash", h("code", {}, run.task_hash)],
  ];
  return rows.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]);
}

// The attempts of one fire: back along retry_of to the first, then forward through the
// retries made of each (found among the task's retry runs created after it).
async function drawChain(list, run, signal) {
  const before = [];
  let at = run;
  while (at.retry_of && before.length < 50) {
    at = await api(`/api/runs/${at.retry_of}`, { signal });
    before.unshift(at);
  }
  const after = [];
  const query = new URLSearchParams({
    triggered_by: "retry",
    start_date: run.created_at,
    sort_direction: "asc",
    limit: "200",
  });
  const { runs } = await api(`/api/tasks/${encodeURIComponent(run.task_name)}/runs?${query}`, { signal });
  let last = run.id;
  for (;;) {
    const next = runs.find((r) => r.retry_of === last);
    if (!next) break;
    after.push(next);
    last = next.id;
  }
  const items = [...before, run, ...after].map((r) =>
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

function followLog(run, lines, state, signal, onEnd) {
  const box = lines.parentElement;
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
      }
      return true;
    },
    {
      signal,
      onState: (s) => {
        if (s === "reconnecting") state.textContent = "Connection lost; reconnecting…";
        else if (s === "open" && run.status !== "ended") state.textContent = "Following the log…";
      },
    },
  ).catch((error) => signal.aborted || failure(error));
}
