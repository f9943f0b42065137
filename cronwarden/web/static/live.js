// One /api/events stream for the whole page; each view listens while it is shown.

import { follow } from "./api.js";

const listeners = new Set();
let controller = null;

export function listen(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function start(onState) {
  controller?.abort();
  controller = new AbortController();
  follow(
    "/api/events",
    (event) => {
      const data = JSON.parse(event.data);
      for (const listener of listeners) listener(event.type, data);
    },
    { signal: controller.signal, onState },
  ).catch(() => onState("closed"));
}
