// A task's definition (GET /api/tasks/NAME?definition=true) as people read it: signals
// by name, sizes and durations in units, a mode as octal, lists as lists, and "—" for
// what is not set.  The API keeps the config's own values; only the page words them.

import { h } from "./dom.js";
import { bytes } from "./fmt.js";

// Linux's signal numbers (the daemon runs on Linux only).
const SIGNALS = [
  "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE",
  "SIGKILL", "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGSTKFLT",
  "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU",
  "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR", "SIGSYS",
];
const SIZES = new Set(["max_log_size", "max_artifacts_size", "keep_artifacts_size", "memory"]);
// Durations whose 0 turns their rule off (a retry_delay of 0 means "at once").
const OFF_AT_ZERO = new Set([
  "timeout", "jitter", "stuck_after", "expect_success_within", "min_duration", "max_duration", "start_grace",
]);
const UNITS = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, ms: 1 };
const SPOKEN = ["d", "h", "min", "s", "ms"];
const DURATION = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$/;
const NONE = "—";

export function signalName(number) {
  const name = SIGNALS[number - 1];
  return name ? `${name} (${number})` : `signal ${number}`;
}

// Whole binary units without a ".0" ("10 MiB"), others to a tenth.
export function size(n) {
  return bytes(n).replace(/\.0 /, " ");
}

// A duration as the config writes it ("1h30m", "250ms", "0") in milliseconds.
export function configDuration(text) {
  const match = DURATION.exec(text);
  if (!match || text === "") return text === "0" ? 0 : null;
  return Object.values(UNITS).reduce((sum, unit, i) => sum + Number(match[i + 1] ?? 0) * unit, 0);
}

// "1 h 30 min", "5 s", "250 ms": every unit the value has, none it has not.
export function spokenDuration(ms) {
  if (ms === 0) return "0 s";
  let rest = ms;
  return Object.values(UNITS)
    .map((unit, i) => {
      const amount = Math.floor(rest / unit);
      rest -= amount * unit;
      return amount ? `${amount} ${SPOKEN[i]}` : null;
    })
    .filter(Boolean)
    .join(" ");
}

// One value, worded by its key; null for what is not set.
export function wording(key, value) {
  if (value === null || value === undefined) return null;
  if (Array.isArray(value)) return value.length ? (key === "command" ? JSON.stringify(value) : value.join(", ")) : null;
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (key === "stop_signal") return signalName(value);
  if (key === "umask") return value.toString(8).padStart(4, "0");
  if (SIZES.has(key) && typeof value === "number") return size(value);
  if (key === "cpu") return `${value} CPU${value === 1 ? "" : "s"}`;
  if (typeof value === "string" && key !== "command" && key !== "schedule") {
    const ms = configDuration(value);
    if (ms === 0 && OFF_AT_ZERO.has(key)) return "off";
    if (ms !== null) return spokenDuration(ms);
  }
  return String(value);
}

function valueOf(key, value) {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const entries = Object.entries(value);
    if (!entries.length) return h("span", { class: "muted" }, NONE);
    // env (NAME=value, secrets as the API hides them) and limits (each in its unit).
    const lines = entries
      .map(([name, inner]) => [name, key === "env" ? inner : wording(name, inner)])
      .filter(([, text]) => text !== null)
      .map(([name, text]) => h("div", {}, h("code", {}, `${name}=${text}`)));
    return lines.length ? lines : h("span", { class: "muted" }, NONE);
  }
  const text = wording(key, value);
  if (text === null) return h("span", { class: "muted" }, NONE);
  return key === "command" || key === "schedule" ? h("code", {}, text) : text;
}

export function definitionList(keys) {
  return h(
    "dl",
    { class: "fields definition" },
    Object.entries(keys).flatMap(([key, value]) => [h("dt", {}, h("code", {}, key)), h("dd", { dataset: { key } }, valueOf(key, value))]),
  );
}
