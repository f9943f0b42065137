// One /api/events stream for the whole page; each view listens while it is shown.
//
// A view reads its data after the stream is open, marks where the stream was before
// reading, and replays what came since when it starts listening: no change falls in
// the gap between its read and its listening.  A replayed change can be older than
// what the read returned; views keep the furthest state of a run (see `furthest`).

import { follow } from "./api.js";

const KEEP = 2000;
const listeners = new Set();
const recent = [];
let seq = 0;
let controller = null;
let markOpen;

// Settles once the stream is open (or could not be opened: views then load anyway).
export const opened = new Promise((resolve) => {
  markOpen = resolve;
});

export function mark() {
  return seq;
}

export function listen(listener, since = null) {
  listeners.add(listener);
  if (since !== null) {
    for (const event of recent) if (event.seq > since) listener(event.kind, event.data);
  }
  return () => listeners.delete(listener);
}

export function start(onState) {
  controller?.abort();
  controller = new AbortController();
  follow(
    "/api/events",
    (event) => {
      const data = JSON.parse(event.data);
      recent.push({ seq: ++seq, kind: event.type, data });
      if (recent.length > KEEP) recent.shift();
      for (const listener of listeners) listener(event.type, data);
    },
    {
      signal: controller.signal,
      onState: (state) => {
        if (state === "open") markOpen();
        onState(state);
      },
    },
  ).catch(() => {
    markOpen();
    onState("closed");
  });
}

const STAGE = { pending: 0, running: 1, ended: 2 };

// Of two states of one run, the one further along (a replayed event may be older).
export function furthest(shown, incoming) {
  if (!incoming) return shown;
  if (!shown) return incoming;
  return STAGE[incoming.status] >= STAGE[shown.status] ? incoming : shown;
}
