// The job list in the page: one row per job, cloned from <template id="job-template">.
//
// Rows are redrawn at most once per animation frame however many events arrive, and only text,
// `hidden` and the <progress> value change: every part has a fixed place and width, so moving
// bars never shift the layout.

import * as fmt from "./format.js";
import { CANCELLABLE } from "./store.js";

export const STATUS_TEXT = {
  queued: "Queued",
  running: "Running",
  retrying: "Retrying",
  succeeded: "Succeeded",
  failed: "Failed",
  cancelled: "Cancelled",
};

const RESULT_HIDDEN = new Set(["download_url", "filename", "size", "content_type", "expired"]);

/** Seconds left, from the current attempt's average rate; null while it cannot be told. */
export function etaSeconds(entry, now) {
  const { job, base } = entry;
  if (job.status !== "running" || base.t === null) return null;
  const spent = now - base.t;
  const gained = job.progress - base.p;
  if (spent < 1 || gained <= 0) return null;
  return ((100 - job.progress) * spent) / gained;
}

/** The result's own figures ("rows 474"), without the file's details. */
function figures(result) {
  return Object.entries(result || {})
    .filter(([key, value]) => !RESULT_HIDDEN.has(key) && typeof value !== "object")
    .map(([key, value]) => `${key.replaceAll("_", " ")} ${value}`);
}

function resultSummary(result) {
  if (result?.expired) return "The result file has expired.";
  const parts = figures(result);
  return parts.length ? `Result: ${parts.join(" · ")}` : "Done.";
}

const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

function messageOf(job) {
  if (job.status === "retrying") {
    const at = job.retry_at ? ` at ${new Date(job.retry_at).toLocaleTimeString()}` : "";
    return `Attempt ${job.attempts} failed: ${job.error?.message || "error"}. Retrying${at}.`;
  }
  if (job.status === "queued" && !job.message) return "Waiting for a worker…";
  if (job.status === "succeeded" && job.finished_at) {
    // Figures go here when the actions show a download link; otherwise they show there.
    const extra = job.result?.download_url ? figures(job.result) : [];
    return [`Finished at ${clock(job.finished_at)}`, ...extra].join(" · ");
  }
  if (job.status === "cancelled" && job.finished_at) {
    return `Cancelled at ${clock(job.finished_at)}`;
  }
  if (job.status === "failed") {
    const attempts = job.attempts === 1 ? "1 attempt" : `${job.attempts} attempts`;
    return `Stopped at ${Math.floor(job.progress || 0)}% after ${attempts}.`;
  }
  return job.message || "";
}

export class JobList {
  /** hooks: titleOf(type), cancel(entry), download(entry, event), now() (server seconds). */
  constructor(list, template, hooks) {
    this.list = list;
    this.template = template;
    this.hooks = hooks;
    this.rows = new Map();
    this.dirty = new Set();
    this.frame = null;
  }

  insert(entry, where) {
    const row = this.template.content.firstElementChild.cloneNode(true);
    const id = entry.id;
    row.dataset.jobId = id;
    row.id = `job-${id}`;
    const title = row.querySelector(".job-title");
    title.id = `job-${id}-title`;
    title.textContent = this.hooks.titleOf(entry.job.type);
    row.querySelector(".job-card").setAttribute("aria-labelledby", title.id);
    row.querySelector(".job-bar").setAttribute("aria-label", `Progress of ${title.textContent}`);
    row.querySelector(".job-params").textContent = fmt.params(entry.job.params) || "no parameters";
    const created = row.querySelector(".job-created");
    created.dateTime = entry.job.created_at || "";
    created.textContent = fmt.when(entry.job.created_at);
    const cancel = row.querySelector(".job-cancel");
    cancel.setAttribute("aria-describedby", title.id);
    cancel.addEventListener("click", () => this.hooks.cancel(entry));
    row
      .querySelector(".job-download")
      .addEventListener("click", (event) => this.hooks.download(entry, event));
    if (where === "top") this.list.prepend(row);
    else this.list.append(row);
    this.rows.set(id, row);
    this.draw(entry, this.now());
    return row;
  }

  row(entry) {
    return this.rows.get(entry.id);
  }

  /** Redraw `entry` in the next frame. */
  schedule(entry) {
    this.dirty.add(entry);
    this.frame ??= requestAnimationFrame(() => {
      this.frame = null;
      const now = this.now();
      for (const dirty of this.dirty) this.draw(dirty, now);
      this.dirty.clear();
    });
  }

  now() {
    return this.hooks.now();
  }

  draw(entry, now) {
    const row = this.rows.get(entry.id);
    if (!row) return;
    const { job } = entry;
    row.dataset.status = job.status;
    row.dataset.seq = String(entry.seq);
    row.querySelector(".job-status").textContent = STATUS_TEXT[job.status] || job.status;
    const bar = row.querySelector(".job-bar");
    const progress = Math.min(100, Math.max(0, job.progress || 0));
    if (bar.value !== progress) bar.value = progress;
    row.querySelector(".job-percent").textContent = fmt.percent(progress);
    const message = row.querySelector(".job-message");
    message.textContent = messageOf(job);
    message.title = message.textContent;

    const cancel = row.querySelector(".job-cancel");
    cancel.hidden = !CANCELLABLE.has(job.status);
    cancel.disabled = Boolean(entry.cancelling);
    cancel.textContent = entry.cancelling ? "Cancelling…" : "Cancel";

    const link = row.querySelector(".job-download");
    const file = job.status === "succeeded" && job.result?.download_url ? job.result : null;
    link.hidden = !file;
    if (file) {
      link.href = file.download_url;
      link.download = file.filename || "";
      const size = file.size === undefined ? "" : ` (${fmt.bytes(file.size)})`;
      link.textContent = `Download ${file.filename || "result"}${size}`;
    }
    const output = row.querySelector(".job-output");
    const text = outputOf(entry);
    output.hidden = !text;
    if (output.textContent !== text) output.textContent = text;
    const result = row.querySelector(".job-result");
    result.hidden = job.status !== "succeeded" || Boolean(file);
    if (!result.hidden) result.textContent = resultSummary(job.result);
    const error = row.querySelector(".job-error");
    error.hidden = job.status !== "failed";
    if (!error.hidden) error.textContent = job.error?.message || "The job failed.";
    this.clock(entry, now);
  }

  /** Elapsed time and ETA; called every second for unfinished jobs. */
  clock(entry, now) {
    const row = this.rows.get(entry.id);
    if (!row) return;
    const { job } = entry;
    const started = fmt.epoch(job.started_at);
    const finished = fmt.epoch(job.finished_at);
    let elapsed = "–";
    if (started !== null) elapsed = fmt.duration((finished ?? now) - started);
    let eta = "–";
    if (job.status === "succeeded") eta = "done";
    else if (job.status === "running") {
      const left = etaSeconds(entry, now);
      eta = left === null ? "estimating" : fmt.duration(left);
    }
    row.querySelector(".job-elapsed").textContent = elapsed;
    row.querySelector(".job-eta").textContent = eta;
  }
}

/** A job's text output: live from its job.output events, the result's text once it ended. */
function outputOf(entry) {
  const { job } = entry;
  if (TERMINAL_TEXT.has(job.status) && typeof job.result?.text === "string") return job.result.text;
  return entry.output ?? "";
}
const TERMINAL_TEXT = new Set(["succeeded", "cancelled"]);
