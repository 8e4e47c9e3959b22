// Live job events: Socket.IO first, Server-Sent Events when Socket.IO cannot get through.
//
// On every (re)connect the page asks `job.resume` for every unfinished job it shows, from the
// last event it applied (epoch and seq); the store holds those jobs' events until the replay is acknowledged,
// so nothing is missed or applied twice. If Socket.IO (WebSocket and long-polling) stays down
// while the server itself answers, each unfinished job is followed over SSE instead (a few at
// a time: browsers allow six HTTP/1.1 connections per server) until Socket.IO is back.

import { io } from "../vendor/socket.io.esm.min.js";
import { followJob } from "./sse.js";

export const EVENTS = [
  "job.queued",
  "job.started",
  "job.progress",
  "job.output",
  "job.retrying",
  "job.succeeded",
  "job.failed",
  "job.cancelled",
];
const MAX_RESUME = 200; // per job.resume call (realtime/handlers.py)
const RESUME_TIMEOUT_MS = 15_000;
// Socket.IO down this long: look whether plain HTTP gets through, and if so use SSE. Time, not
// a count of failures: a blocked WebSocket may hang until the connect timeout instead of failing.
const FALLBACK_AFTER_MS = 4000;
const PROBE_EVERY_MS = 5000;
const OFFLINE_AFTER_MS = 20_000; // "reconnecting" for this long becomes "offline"
const SSE_STREAMS = 4;
const FULL_RETRY_MS = 15_000; // "too many connections": ask again later, SSE meanwhile
const SIGNED_OUT = "This sign-in has ended (signed out elsewhere). Please sign in again.";

export class Live extends EventTarget {
  constructor(session, store) {
    super();
    this.session = session;
    this.store = store;
    this.state = "connecting";
    this.via = ""; // what the page is live over: websocket, polling or sse
    this.socketTransport = "";
    this.socket = null;
    this.authToken = null; // the token the current connection attempt presented
    this.everConnected = false;
    this.refusals = 0;
    this.downSince = null;
    this.offlineTimer = null;
    this.probeTimer = null;
    this.reachable = null; // did the server answer the last plain HTTP probe?
    this.sseMode = false;
    this.streams = new Map(); // job id -> AbortController
  }

  start() {
    const socket = io({
      // A function, so every reconnection sends the current (refreshed) token.
      auth: (send) => {
        this.authToken = this.session.accessToken;
        send({ token: this.authToken });
      },
      // Long-polling first, upgraded to WebSocket; if one is blocked, try the other. Named
      // explicitly: the default list adds WebTransport, which python-socketio does not serve.
      transports: ["polling", "websocket"],
      tryAllTransports: true,
      reconnectionDelay: 500,
      reconnectionDelayMax: 5000,
      timeout: 10_000,
    });
    this.socket = socket;
    for (const name of EVENTS) socket.on(name, (payload) => this.store.receive(name, payload));
    socket.on("connect", () => this.connected());
    socket.on("disconnect", (reason) => this.disconnected(reason));
    socket.on("connect_error", (error) => this.refused(error));
    // The server checks live connections' tokens and says why before it disconnects one.
    socket.on("auth.expired", () => {
      // The connection's token, which the session may have replaced already.
      if (this.session.accessToken === this.authToken) this.session.refresh().catch(() => {});
    });
    socket.on("auth.revoked", () => this.session.end(SIGNED_OUT));
    window.addEventListener("online", () => {
      if (!socket.connected && !socket.active) socket.connect();
      this.update();
    });
    window.addEventListener("offline", () => this.update());
    this.session.addEventListener("end", () => this.stop());
    this.scheduleProbe(FALLBACK_AFTER_MS);
  }

  stop() {
    this.stopSse();
    clearTimeout(this.offlineTimer);
    clearTimeout(this.probeTimer);
    this.socket?.disconnect();
  }

  /** Ask for the events of `entries` after their last seq; they are held until the ack. */
  resume(entries) {
    if (!this.socket?.connected) return;
    for (let i = 0; i < entries.length; i += MAX_RESUME) {
      const chunk = entries.slice(i, i + MAX_RESUME);
      const asks = this.store.beginResume(chunk);
      this.socket
        .timeout(RESUME_TIMEOUT_MS)
        .emit("job.resume", asks, () => this.store.endResume(chunk));
    }
  }

  /** A job was added to the page: only SSE needs to be told (Socket.IO sends everything). */
  follow() {
    if (this.sseMode) this.fillStreams();
  }

  connected() {
    const reconnect = this.everConnected;
    this.everConnected = true;
    this.refusals = 0;
    this.downSince = null;
    clearTimeout(this.probeTimer);
    this.probeTimer = null;
    this.stopSse();
    const engine = this.socket.io.engine;
    this.socketTransport = engine.transport.name;
    engine.once("upgrade", () => {
      this.socketTransport = engine.transport.name;
      this.update();
    });
    this.update();
    this.resume(this.store.active());
    if (reconnect) this.dispatchEvent(new Event("reconnect"));
  }

  disconnected(reason) {
    // A replay cut short: apply what came; the next connect resumes from there.
    this.store.endResume(this.store.entries().filter((entry) => entry.buffer));
    if (reason === "io client disconnect") return;
    if (reason === "io server disconnect") {
      // Not retried by the client: connect again once a token refresh under way is done.
      Promise.resolve(this.session.refreshing)
        .catch(() => {})
        .finally(() => this.session.ended || this.socket.connect());
    }
    this.wentDown();
  }

  refused(error) {
    const message = String(error.message);
    // A connection the server refused is not retried by the client: decide here.
    if (message === "unauthorized: token revoked") {
      this.session.end(SIGNED_OUT);
      return;
    }
    if (message.startsWith("unauthorized")) {
      this.refusals += 1;
      if (this.refusals > 2) {
        this.session.end("Your session has ended. Please sign in again.");
        return;
      }
      // Refresh, unless the token has already changed since this attempt presented it.
      const fresh = this.session.accessToken !== this.authToken;
      (fresh ? Promise.resolve() : this.session.refresh()).then(
        () => this.socket.connect(),
        () => {},
      );
      return;
    }
    if (message === "too many connections for this user") {
      setTimeout(() => this.socket.connect(), FULL_RETRY_MS);
    }
    this.wentDown();
  }

  wentDown() {
    if (this.downSince === null) {
      this.downSince = Date.now();
      clearTimeout(this.offlineTimer);
      this.offlineTimer = setTimeout(() => this.update(), OFFLINE_AFTER_MS + 50);
    }
    if (this.probeTimer === null) this.scheduleProbe(FALLBACK_AFTER_MS);
    this.update();
  }

  scheduleProbe(delay) {
    clearTimeout(this.probeTimer);
    this.probeTimer = setTimeout(() => this.probe(), delay);
  }

  /** Socket.IO is still down: if the server answers plain HTTP, follow jobs over SSE. */
  async probe() {
    try {
      const response = await fetch("/healthz", { cache: "no-store" });
      this.reachable = response.ok;
    } catch {
      this.reachable = false;
    }
    if (this.socket.connected) return;
    if (this.reachable) {
      this.sseMode = true;
      this.fillStreams();
    } else {
      this.wentDown();
    }
    this.scheduleProbe(PROBE_EVERY_MS);
    this.update();
  }

  fillStreams() {
    for (const entry of this.store.active()) {
      if (this.streams.size >= SSE_STREAMS) break;
      if (!this.streams.has(entry.id)) this.stream(entry);
    }
  }

  stream(entry) {
    const controller = new AbortController();
    this.streams.set(entry.id, controller);
    followJob(this.session, entry.id, controller.signal, {
      lastEventId: () => `${entry.seqEpoch}-${entry.seq}`,
      onEvent: (name, payload) => this.store.receive(name, payload),
      finished: () => entry.terminal,
      reachable: (ok) => {
        if (this.reachable !== ok) {
          this.reachable = ok;
          this.update();
        }
      },
    }).finally(() => {
      if (this.streams.get(entry.id) !== controller) return;
      this.streams.delete(entry.id);
      if (this.sseMode) this.fillStreams();
    });
  }

  stopSse() {
    this.sseMode = false;
    for (const controller of this.streams.values()) controller.abort();
    this.streams.clear();
  }

  update() {
    let state;
    // The browser knows when it has no network at all (its "online" is only a guess).
    if (!navigator.onLine) state = "offline";
    else if (this.socket?.connected) state = "live";
    else if (this.sseMode && this.reachable) state = "live";
    else if (!this.everConnected && this.downSince === null) state = "connecting";
    else if (this.downSince !== null && Date.now() - this.downSince > OFFLINE_AFTER_MS) {
      state = "offline";
    } else state = "reconnecting";
    let via = "";
    if (state === "live") via = this.socket?.connected ? this.socketTransport : "sse";
    if (state === this.state && via === this.via) return;
    this.state = state;
    this.via = via;
    this.dispatchEvent(new Event("state"));
  }
}
