// The jobs the page shows, and the one place live events change them.
//
// Every event of a job carries `seq` (1, 2, 3, ...) and the `epoch` of that numbering. An
// entry keeps the highest (epoch, seq) it has applied and ignores anything at or below it, so
// events that arrive twice (a replay that overlaps live delivery, Socket.IO and SSE at once)
// are applied once; a larger epoch means the server lost its counter and numbers from 1 again
// (such events are new, never duplicates). A gap (seq jumps ahead) means events were missed:
// the entry asks for a replay from its position and buffers whatever arrives until the replay
// is acknowledged, then applies the buffer in order. Statuses succeeded, failed and cancelled
// are final: once an entry has one, nothing moves it back.

import { epoch } from "./format.js";

export const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
export const CANCELLABLE = new Set(["queued", "running", "retrying"]);

const isoAt = (ts) => new Date(ts * 1000).toISOString();

// A server from before epochs sends none: its one numbering is epoch 0.
const epochOf = (payload) => (typeof payload.epoch === "number" ? payload.epoch : 0);
const byPosition = (a, b) => epochOf(a[1]) - epochOf(b[1]) || a[1].seq - b[1].seq;
/** Whether `payload` is at or before what `entry` has applied. */
const seen = (entry, payload) =>
  epochOf(payload) < entry.seqEpoch ||
  (epochOf(payload) === entry.seqEpoch && payload.seq <= entry.seq);

/** One job as the page knows it: the API's job object, plus its seq and timing. */
export class Entry {
  constructor(job) {
    this.job = { ...job };
    this.seq = 0;
    this.seqEpoch = 0; // the numbering `seq` belongs to
    this.buffer = null; // events held while a replay is under way
    // Where the current attempt's rate of progress is measured from (for the ETA).
    this.base = { t: epoch(job.started_at), p: 0 };
  }

  get id() {
    return this.job.id;
  }

  get terminal() {
    return TERMINAL.has(this.job.status);
  }
}

export class JobStore {
  /**
   * hooks: added(entry, where), changed(entry, before), applied(entry, name, payload),
   * unknown(jobId), canResume() -> bool, resume(entries).
   */
  constructor(hooks) {
    this.hooks = hooks;
    this.jobs = new Map();
    this.pending = new Map(); // events of jobs not shown yet, by job id
    this.skew = null; // client clock minus server clock, in seconds (upper bound)
  }

  get(id) {
    return this.jobs.get(id);
  }

  entries() {
    return [...this.jobs.values()];
  }

  active() {
    return this.entries().filter((entry) => !entry.terminal);
  }

  /** The server's clock, in seconds since the epoch, as well as events let us tell. */
  now() {
    return Date.now() / 1000 - (this.skew ?? 0);
  }

  /** Show a job the API returned; events that came before it are applied now. */
  add(job, where = "top") {
    const known = this.jobs.get(job.id);
    if (known) {
      this.merge(job);
      return known;
    }
    const entry = new Entry(job);
    this.jobs.set(job.id, entry);
    this.hooks.added(entry, where);
    const early = this.pending.get(job.id) || [];
    this.pending.delete(job.id);
    early.sort(byPosition);
    for (const [name, payload] of early) this.receive(name, payload);
    return entry;
  }

  /** Take a fresh API snapshot of a shown job; only a final status can be newer than events. */
  merge(job) {
    const entry = this.jobs.get(job.id);
    if (!entry || entry.terminal || !TERMINAL.has(job.status)) return;
    const before = { ...entry.job };
    Object.assign(entry.job, job);
    this.hooks.changed(entry, before);
  }

  forget(jobId) {
    this.pending.delete(jobId);
  }

  /** One live or replayed event, from Socket.IO or SSE. */
  receive(name, payload) {
    if (typeof payload?.seq !== "number" || !payload.job_id) return;
    // The smallest delay seen bounds the clock difference; replays of older events
    // (more than a few seconds) would only overstate it.
    const lag = Date.now() / 1000 - payload.ts;
    if (lag < 5 && (this.skew === null || lag < this.skew)) this.skew = lag;
    const entry = this.jobs.get(payload.job_id);
    if (!entry) {
      // Another tab's job, or ours before the submit answer: fetch it, keep its events.
      const early = this.pending.get(payload.job_id);
      if (early) {
        early.push([name, payload]);
      } else {
        this.pending.set(payload.job_id, [[name, payload]]);
        this.hooks.unknown(payload.job_id);
      }
      return;
    }
    if (entry.buffer) {
      entry.buffer.push([name, payload]);
      return;
    }
    if (seen(entry, payload)) return;
    const next = epochOf(payload) === entry.seqEpoch ? entry.seq + 1 : 1;
    if (payload.seq > next && !entry.terminal && this.hooks.canResume()) {
      this.beginResume([entry]);
      entry.buffer.push([name, payload]);
      this.hooks.resume([entry]);
      return;
    }
    const before = { ...entry.job };
    this.apply(entry, name, payload);
    this.hooks.changed(entry, before);
  }

  /** Hold the entries' events until endResume; returns the job.resume request for them. */
  beginResume(entries) {
    for (const entry of entries) entry.buffer ??= [];
    return entries.map((entry) => ({
      job_id: entry.id,
      after_seq: entry.seq,
      epoch: entry.seqEpoch,
    }));
  }

  /** The replay is in (or failed): apply what was held, in order, each event once. */
  endResume(entries) {
    for (const entry of entries) {
      const held = entry.buffer;
      entry.buffer = null;
      if (!held || held.length === 0) continue;
      held.sort(byPosition);
      const before = { ...entry.job };
      let applied = false;
      for (const [name, payload] of held) {
        if (seen(entry, payload)) continue;
        this.apply(entry, name, payload);
        applied = true;
      }
      if (applied) this.hooks.changed(entry, before);
    }
  }

  apply(entry, name, payload) {
    entry.seq = payload.seq;
    entry.seqEpoch = epochOf(payload);
    reduce(entry, name, payload);
    this.hooks.applied(entry, name, payload);
  }
}

/** What one event does to a job object. */
function reduce(entry, name, event) {
  const job = entry.job;
  if (TERMINAL.has(job.status)) return;
  job.status = event.status;
  job.progress = event.progress;
  job.message = event.message;
  switch (name) {
    case "job.started":
      job.attempts = event.attempt ?? job.attempts + 1;
      job.started_at ??= isoAt(event.ts);
      job.error = null;
      job.retry_at = null;
      entry.base = { t: event.ts, p: 0 };
      break;
    case "job.progress":
      // A new attempt starts again from the beginning: measure the rate from there.
      if (entry.base.t === null || event.progress < entry.base.p) {
        entry.base = { t: event.ts, p: event.progress };
      }
      break;
    case "job.output":
      entry.output = joinOutput(event.restart ? "" : (entry.output ?? ""), event);
      break;
    case "job.retrying":
      job.error = event.error ?? null;
      job.retry_at = event.retry_at ?? null;
      job.attempts = event.attempt ?? job.attempts;
      break;
    case "job.succeeded":
      job.result = event.result ?? null;
      job.finished_at = isoAt(event.ts);
      break;
    case "job.failed":
      job.error = event.error ?? null;
      job.finished_at = isoAt(event.ts);
      break;
    case "job.cancelled":
      job.result = event.result ?? job.result ?? null;
      job.finished_at = isoAt(event.ts);
      break;
    default:
      break;
  }
}

/**
 * The output with one job.output piece in place: `index` counts code points, so a piece the
 * page already has (a replay overlapping what arrived live) replaces, never repeats.
 */
function joinOutput(have, event) {
  const chars = Array.from(have);
  if (typeof event.text !== "string" || event.index > chars.length) return have;
  return chars.slice(0, event.index).join("") + event.text;
}
