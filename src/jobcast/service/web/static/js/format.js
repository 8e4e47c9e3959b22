// Small text formatters: durations, sizes, percentages, params, times.

/** "0:07", "12:30", "1:02:03" for a number of seconds. */
export function duration(seconds) {
  const total = Math.max(0, Math.round(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/** "0%" to "100%", whole numbers: a moving bar should not make its label wobble. */
export function percent(value) {
  return `${Math.floor(Math.min(100, Math.max(0, value || 0)))}%`;
}

const UNITS = ["bytes", "KB", "MB", "GB", "TB"];

export function bytes(size) {
  if (!Number.isFinite(size)) return "";
  let value = size;
  let unit = 0;
  while (value >= 1000 && unit < UNITS.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return unit === 0 ? `${value} bytes` : `${value.toFixed(value < 10 ? 1 : 0)} ${UNITS[unit]}`;
}

/** A one-line summary of a job's params: "steps 20 · step_ms 200". */
export function params(values) {
  const parts = Object.entries(values || {})
    .filter(([, value]) => value !== null && value !== undefined && value !== "")
    .map(([key, value]) => `${key} ${typeof value === "object" ? JSON.stringify(value) : value}`);
  return parts.join(" · ");
}

const timeFormat = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
});

export function when(iso) {
  return iso ? timeFormat.format(new Date(iso)) : "";
}

/** Seconds since the epoch for an ISO 8601 time from the API (or null). */
export function epoch(iso) {
  return iso ? Date.parse(iso) / 1000 : null;
}
