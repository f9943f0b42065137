// Every request of the dashboard goes through here: the token (kept in sessionStorage,
// so it ends with the browser session), problem+json answers turned into messages, and
// Server-Sent Events read with fetch, because EventSource cannot send Authorization.

const TOKEN_KEY = "cronwarden.token";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

let promptForToken = null; // (message) => Promise<boolean>: true once a token was entered
let pendingPrompt = null;

export function onTokenNeeded(prompt) {
  promptForToken = prompt;
}

export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function storeToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

function headers(extra = {}) {
  const all = { Accept: "application/json", ...extra };
  const token = storedToken();
  if (token) all.Authorization = `Bearer ${token}`;
  return all;
}

async function problemOf(response) {
  try {
    return await response.json();
  } catch {
    return { title: response.statusText, detail: `HTTP ${response.status}` };
  }
}

// A 401 asks for a token once for all the requests that met it, then retries them.
async function tokenEntered(problem) {
  if (!promptForToken) return false;
  pendingPrompt ??= promptForToken(problem.detail).finally(() => {
    pendingPrompt = null;
  });
  return pendingPrompt;
}

// A 401 to a request sent before a token was entered is retried with that token,
// without asking again (its answer may come after the prompt closed).
async function send(path, init) {
  for (;;) {
    const sentWith = storedToken();
    const response = await fetch(path, { ...init, headers: headers(init.headers) });
    if (response.status !== 401) return response;
    const problem = await problemOf(response);
    if (storedToken() !== sentWith && storedToken()) continue;
    if (!(await tokenEntered(problem))) throw new ApiError(401, problem);
  }
}

export async function api(path, { method = "GET", body, signal } = {}) {
  const init = { method, signal };
  // Every POST declares JSON, {} when there is nothing to send: the daemon refuses a
  // browser's POST that does not, as a form on another site could send one.
  if (body !== undefined || method !== "GET") {
    init.body = JSON.stringify(body ?? {});
    init.headers = { "Content-Type": "application/json" };
  }
  const response = await send(path, init);
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  return response.json();
}

// A file (the raw log, an artifact): fetched with the token, then handed to the
// browser to save.
export async function download(path, filename, accept = "text/plain") {
  const response = await send(path, { headers: { Accept: accept } });
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

// Reads an event stream until `signal` aborts or `onEvent` returns false; reconnects
// after a dropped connection with Last-Event-ID, as EventSource would.
export async function follow(path, onEvent, { signal, onState = () => {} } = {}) {
  let lastId = null;
  let delay = 500;
  while (!signal.aborted) {
    try {
      const extra = { Accept: "text/event-stream" };
      if (lastId !== null) extra["Last-Event-ID"] = lastId;
      const response = await send(path, { headers: extra, signal });
      if (!response.ok) throw new ApiError(response.status, await problemOf(response));
      onState("open");
      delay = 500;
      for await (const event of events(response.body, signal)) {
        if (event.id !== null) lastId = event.id;
        if (onEvent(event) === false) return;
      }
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiError && error.status < 500) throw error;
    }
    onState("reconnecting");
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 10_000);
  }
}

// The text/event-stream framing (WHATWG HTML, "Parsing an event stream").
async function* events(body, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  signal.addEventListener("abort", () => reader.cancel().catch(() => {}), { once: true });
  let buffer = "";
  let event = { id: null, type: "message", data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
      if (line === "") {
        if (event.data.length) yield { ...event, data: event.data.join("\n") };
        event = { id: event.id, type: "message", data: [] };
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "data") event.data.push(text);
      else if (field === "event") event.type = text;
      else if (field === "id") event.id = text;
    }
  }
}
