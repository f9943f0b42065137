// How instants, durations and outcomes read on the page.

const viewerZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
const relativeFormat = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const STEPS = [
  [60, "second"],
  [60, "minute"],
  [24, "hour"],
  [7, "day"],
  [4.35, "week"],
  [12, "month"],
  [Infinity, "year"],
];

export { viewerZone };

export function relative(iso, now = Date.now()) {
  if (!iso) return "";
  let amount = (Date.parse(iso) - now) / 1000;
  for (const [size, unit] of STEPS) {
    if (Math.abs(amount) < size) return relativeFormat.format(Math.round(amount), unit);
    amount /= size;
  }
  return "";
}

// Every time on the page reads on a 24-hour clock (hourCycle h23: "hour12: false"
// still gives "24:05" in some locales), in the viewer's zone unless a task's is asked for.
const formats = new Map();

function formatIn(zone, kind) {
  const id = `${zone} ${kind}`;
  let format = formats.get(id);
  if (!format) {
    const day = { year: "numeric", month: "short", day: "2-digit" };
    const time = { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" };
    const options = { absolute: { ...day, ...time, timeZoneName: "short" }, time, day }[kind];
    format = new Intl.DateTimeFormat(undefined, { timeZone: zone, ...options });
    formats.set(id, format);
  }
  return format;
}

export function absolute(iso, zone = viewerZone) {
  if (!iso) return "";
  return formatIn(zone, "absolute").format(new Date(iso));
}

// The time of day alone ("09:08:03"), and the day alone ("Dec 06, 2026"), in the
// viewer's zone: labels where the zone is said once beside them.
export function clockTime(ms, zone = viewerZone) {
  return formatIn(zone, "time").format(new Date(ms));
}

export function dayOf(ms, zone = viewerZone) {
  return formatIn(zone, "day").format(new Date(ms));
}

export function duration(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1000) return `${ms} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = "B";
  for (const next of units) {
    if (value < 1024) break;
    value /= 1024;
    unit = next;
  }
  return `${value.toFixed(1)} ${unit}`;
}

// Colour is never the only signal: each outcome has an icon (icons.js) and a word too.
const OUTCOMES = {
  pending: "waiting",
  running: "running",
  success: "success",
  failed: "failed",
  timeout: "timeout",
  stopped: "stopped",
  crashed: "crashed",
  skipped: "skipped",
  log_overflow: "log overflow",
  missed: "missed",
  expired: "expired",
};

export function outcomeKey(run) {
  return run.status === "ended" ? run.end_reason || "crashed" : run.status;
}

// Which end reasons count as failures is the daemon's to say (GET /api/info,
// failure_end_reasons), as it is for its alerts and stats: the page keeps no list.
const failures = new Set();

export function learnFailures(reasons) {
  failures.clear();
  for (const reason of reasons ?? []) failures.add(reason);
}

export function outcome(run) {
  const key = outcomeKey(run);
  return { key, word: OUTCOMES[key] ?? key.replace("_", " "), failing: run.status === "ended" && failures.has(key) };
}

export const END_REASONS = Object.keys(OUTCOMES).filter((k) => !["pending", "running"].includes(k));

export function exitText(run) {
  if (run.signal !== null && run.signal !== undefined) return `signal ${run.signal}`;
  if (run.exit_code !== null && run.exit_code !== undefined) return `exit ${run.exit_code}`;
  return "";
}
