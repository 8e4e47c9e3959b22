// Following one job over Server-Sent Events, the fallback when Socket.IO cannot connect.
//
// EventSource cannot send an Authorization header, so this reads the stream with fetch() and
// parses it as the HTML standard's event-stream algorithm does. Each reconnection sends
// Last-Event-ID (`<epoch>-<seq>` of the job's last applied event), so the server resumes
// right after it.

const DEFAULT_RETRY_MS = 2000;
const MAX_RETRY_MS = 15_000;

/** Split an event stream into events: yields {event, data, id} per blank-line-ended block. */
export class EventStreamParser {
  constructor() {
    this.rest = "";
    this.fields = { event: "", data: [], id: null };
    this.retry = null;
  }

  /** Feed decoded text; returns the events it completes. */
  push(text) {
    const events = [];
    let buffer = this.rest + text;
    // A trailing \r may be the first half of a \r\n: wait for the next chunk to tell.
    const held = buffer.endsWith("\r") ? "\r" : "";
    if (held) buffer = buffer.slice(0, -1);
    const lines = buffer.split(/\r\n|\r|\n/);
    this.rest = lines.pop() + held; // a partial line
    for (const line of lines) {
      if (line === "") {
        if (this.fields.data.length) {
          events.push({
            event: this.fields.event || "message",
            data: this.fields.data.join("\n"),
            id: this.fields.id,
          });
        }
        this.fields = { event: "", data: [], id: this.fields.id };
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const name = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (name === "event") this.fields.event = value;
      else if (name === "data") this.fields.data.push(value);
      else if (name === "id" && !value.includes("\0")) this.fields.id = value;
      else if (name === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
    }
    return events;
  }
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

/**
 * Follow `jobId` until it ends, `signal` aborts, or the job is gone (404).
 * hooks: lastEventId() -> "<epoch>-<seq>", onEvent(name, payload), finished() -> bool,
 * reachable(bool).
 */
export async function followJob(session, jobId, signal, hooks) {
  let retry = DEFAULT_RETRY_MS;
  let failures = 0;
  while (!signal.aborted && !hooks.finished()) {
    try {
      const response = await session.fetch("GET", `/jobs/${encodeURIComponent(jobId)}/events`, {
        headers: { Accept: "text/event-stream", "Last-Event-ID": hooks.lastEventId() },
        signal,
      });
      hooks.reachable(true);
      if (response.status === 404 || response.status === 401) return;
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      failures = 0;
      const parser = new EventStreamParser();
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const event of parser.push(value)) {
          try {
            hooks.onEvent(event.event, JSON.parse(event.data));
          } catch (error) {
            console.warn("jobcast: ignored a malformed SSE event", error);
          }
        }
        if (parser.retry !== null) retry = parser.retry;
      }
    } catch (error) {
      if (signal.aborted || error.status === 401) return;
      failures += 1;
      if (error.status === undefined || error.status === 0) hooks.reachable(false);
    }
    if (!hooks.finished()) await sleep(Math.min(MAX_RETRY_MS, retry * 2 ** failures), signal);
  }
}
