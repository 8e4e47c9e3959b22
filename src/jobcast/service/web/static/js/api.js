// The REST API and the signed-in session: tokens live in sessionStorage (this tab only), the
// access token is refreshed before it expires, and a 401 that a refresh cannot fix signs out.
//
// Refresh tokens rotate: each refresh answers a new pair and uses the old refresh token up, and
// presenting a used one again revokes the whole sign-in. A duplicated tab starts with a copy of
// this tab's sessionStorage, so both hold the same refresh token: refreshes are therefore taken
// one at a time across tabs (Web Locks), and the tab that refreshes hands the new pair to any
// tab holding the same refresh token (BroadcastChannel), which then does not refresh itself.

const API = "/api/v1";
const STORAGE_KEY = "jobcast.session";
const NOTICE_KEY = "jobcast.notice";
// Refresh this long before expiry (background tabs may run timers up to a minute late), or at
// 80% of the lifetime for short-lived tokens.
const REFRESH_MARGIN_MS = 120_000;
const tabs = "BroadcastChannel" in window ? new BroadcastChannel("jobcast.session") : null;

function tokenState(tokens) {
  const lifetime = tokens.expires_in * 1000;
  return {
    access_token: tokens.access_token,
    refresh_token: tokens.refresh_token,
    expires_at: Date.now() + lifetime,
    refresh_at: Date.now() + Math.max(lifetime - REFRESH_MARGIN_MS, lifetime * 0.8),
  };
}

/** Run `task` while no other tab of this site refreshes (where Web Locks exist). */
function oneTabAtATime(task) {
  return navigator.locks ? navigator.locks.request("jobcast.refresh", task) : task();
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** An error answer of the API (RFC 9457 problem+json), or a network failure (status 0). */
export class ApiProblem extends Error {
  constructor(status, body = {}) {
    super(body.detail || body.title || (status ? `HTTP ${status}` : "network error"));
    this.status = status;
    this.detail = this.message;
    this.errors = Array.isArray(body.errors) ? body.errors : [];
    this.retryAfter = body.retryAfter ?? null;
  }
}

async function send(method, path, { json, token, headers = {}, signal } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, signal };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  try {
    return await fetch(API + path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiProblem(0, { detail: "The server cannot be reached. Check your connection." });
  }
}

async function parse(response) {
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  const body = type.includes("json") ? await response.json().catch(() => ({})) : {};
  if (!response.ok) {
    body.retryAfter = response.headers.get("Retry-After");
    throw new ApiProblem(response.status, body);
  }
  return body;
}

/** Register a new account; the caller signs in afterwards. */
export async function register(email, password) {
  return parse(await send("POST", "/auth/register", { json: { email, password } }));
}

/** A message for the sign-in page to show once (why the user was signed out). */
export function takeNotice() {
  const notice = sessionStorage.getItem(NOTICE_KEY);
  sessionStorage.removeItem(NOTICE_KEY);
  return notice;
}

export class Session extends EventTarget {
  constructor(state) {
    super();
    this.state = state; // {access_token, refresh_token, expires_at, refresh_at (ms since epoch)}
    this.refreshing = null;
    this.timer = null;
    this.ended = false;
    tabs?.addEventListener("message", (event) => this.adopt(event.data));
  }

  /** The session this tab signed in with, or null. */
  static load() {
    try {
      const state = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "null");
      return state && state.access_token && state.refresh_token ? new Session(state) : null;
    } catch {
      return null;
    }
  }

  static async signIn(email, password) {
    const tokens = await parse(await send("POST", "/auth/login", { json: { email, password } }));
    const session = new Session(tokenState(tokens));
    session.save();
    return session;
  }

  get accessToken() {
    return this.state.access_token;
  }

  save() {
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(this.state));
  }

  /** Keep the access token fresh until the session ends. */
  start() {
    this.schedule();
    document.addEventListener("visibilitychange", () => {
      // Timers in hidden tabs are throttled: check again when the user comes back.
      if (document.visibilityState === "visible" && this.expiresSoon()) {
        this.refresh().catch(() => {});
      }
    });
  }

  expiresSoon() {
    return Date.now() >= (this.state.refresh_at ?? this.state.expires_at);
  }

  schedule() {
    clearTimeout(this.timer);
    const wait = Math.max(1000, (this.state.refresh_at ?? 0) - Date.now());
    this.timer = setTimeout(() => this.refresh().catch(() => {}), wait);
  }

  /** Another tab refreshed the sign-in this tab shares with it: take the new pair. */
  adopt(message) {
    if (this.ended || !message || message.from !== this.state.refresh_token) return;
    this.state = { ...this.state, ...message.state };
    this.save();
    this.schedule();
    this.dispatchEvent(new Event("refresh"));
  }

  /** A new token pair from the refresh token; one request at a time, across tabs too. */
  refresh() {
    if (this.ended) return Promise.reject(new ApiProblem(401, { detail: "signed out" }));
    const stale = this.state.access_token;
    this.refreshing ??= oneTabAtATime(async () => {
      // A tab that just refreshed this sign-in posted the new pair before letting us in.
      await pause(50);
      if (this.ended || this.state.access_token !== stale) return;
      const used = this.state.refresh_token;
      try {
        const tokens = await parse(await send("POST", "/auth/refresh", { token: used }));
        this.state = { ...this.state, ...tokenState(tokens) };
        this.save();
        tabs?.postMessage({ from: used, state: this.state });
        this.schedule();
        this.dispatchEvent(new Event("refresh"));
      } catch (error) {
        if (error.status === 401) this.end("Your session has expired. Please sign in again.");
        else this.timer = setTimeout(() => this.refresh().catch(() => {}), 15_000);
        throw error;
      }
    }).finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  /** fetch() an API path with the access token, refreshing it once on a 401. */
  async fetch(method, path, options = {}) {
    if (this.ended) throw new ApiProblem(401, { detail: "signed out" });
    if (this.expiresSoon()) await this.refresh().catch(() => {});
    const token = this.accessToken;
    let response = await send(method, path, { ...options, token });
    if (response.status === 401) {
      // Refresh unless another request has already done so since this one was sent.
      if (this.accessToken === token) await this.refresh();
      response = await send(method, path, { ...options, token: this.accessToken });
      if (response.status === 401) this.end("Your session has ended. Please sign in again.");
    }
    return response;
  }

  /** Call the API; resolves to the JSON body, rejects with ApiProblem. */
  async request(method, path, options = {}) {
    return parse(await this.fetch(method, path, options));
  }

  async signOut() {
    try {
      await send("POST", "/auth/logout", { token: this.accessToken });
    } catch {
      // Unreachable server: the token expires on its own; forget it here all the same.
    } finally {
      this.end(null);
    }
  }

  /** Forget the tokens and tell the page (which goes to the sign-in page). */
  end(notice) {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.timer);
    sessionStorage.removeItem(STORAGE_KEY);
    if (notice) sessionStorage.setItem(NOTICE_KEY, notice);
    this.dispatchEvent(new Event("end"));
  }
}
