// The dashboard: wires the session, the job store, the list, the launcher and live events.
//
// Progress comes from live events only; the REST API is read for the first page of jobs, for
// "load more", and for a job this tab has not seen (started in another tab). Every event the
// page applies is also dispatched on `document` as a `jobcast:applied` CustomEvent
// ({job_id, seq, event, status, progress}), for other scripts and for the browser tests.

import { Session } from "./api.js";
import { JobList, STATUS_TEXT } from "./jobview.js";
import { Launcher } from "./launcher.js";
import { Live } from "./live.js";
import { Notifier, lookingElsewhere } from "./notify.js";
import { JobStore, TERMINAL } from "./store.js";

const PAGE = 20;
const LINK_FRESH_MS = 10 * 60_000; // download links are signed for 15 minutes
const CONNECTION_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

const session = Session.load();
if (session) main(session);
else location.replace("/signin");

function main(session) {
  const $ = (id) => document.getElementById(id);
  session.addEventListener("end", () => location.replace("/signin"));
  session.start();

  const titles = new Map();
  const titleOf = (type) => titles.get(type) || type;
  const notifier = new Notifier($("toasts"), $("toast-template"), $("enable-notifications"));
  let cursor = null;
  let loaded = null;

  const announce = (text) => {
    $("announcer").textContent = text;
  };

  const list = new JobList($("jobs"), $("job-template"), {
    titleOf,
    now: () => store.now(),
    cancel: (entry) => cancel(entry),
    download: (entry, event) => download(entry, event),
  });

  const store = new JobStore({
    added: (entry, where) => {
      entry.fetchedAt = Date.now();
      list.insert(entry, where);
      live.follow();
      showEmpty();
    },
    changed: (entry, before) => {
      list.schedule(entry);
      react(entry, before);
    },
    applied: (entry, name, payload) => {
      if (name === "job.succeeded") entry.fetchedAt = Date.now();
      document.dispatchEvent(
        new CustomEvent("jobcast:applied", {
          detail: {
            job_id: entry.id,
            seq: payload.seq,
            event: name,
            status: payload.status,
            progress: payload.progress,
          },
        }),
      );
    },
    unknown: (jobId) => adopt(jobId),
    canResume: () => Boolean(live.socket?.connected),
    resume: (entries) => live.resume(entries),
  });
  const live = new Live(session, store);
  live.addEventListener("state", () => showConnection());
  live.addEventListener("reconnect", () => catchUp().catch(() => {}));
  live.start();

  const launcher = new Launcher($("launcher"), session, (job) => {
    const entry = store.add(job, "top");
    announce(`${titleOf(job.type)} started.`);
    list.row(entry)?.classList.add("job-new");
  });

  $("sign-out").addEventListener("click", () => session.signOut());
  $("load-more").addEventListener("click", () => loadMore());
  setInterval(() => {
    if (document.visibilityState !== "visible") return;
    const now = store.now();
    for (const entry of store.active()) list.clock(entry, now);
  }, 1000);

  loaded = load();

  async function load() {
    try {
      const [me, types, page] = await Promise.all([
        session.request("GET", "/me"),
        session.request("GET", "/job-types"),
        session.request("GET", `/jobs?limit=${PAGE}`),
      ]);
      $("account-email").textContent = me.email;
      showAdminLink();
      for (const type of types.items) titles.set(type.type, type.title || type.type);
      launcher.setTypes(types.items);
      showPage(page);
    } catch (error) {
      if (session.ended) return; // on the way to the sign-in page
      $("jobs-status").textContent = `Could not load your jobs: ${error.message}`;
      $("jobs-status").hidden = false;
    }
  }

  /** The admin page's link, for admins: the admin API answers anyone else 404. */
  function showAdminLink() {
    session.request("GET", "/admin/jobs?limit=1").then(
      () => {
        $("admin-link").hidden = false;
      },
      () => {},
    );
  }

  function showPage(page) {
    const fresh = page.items
      .filter((job) => !store.get(job.id))
      .map((job) => store.add(job, "bottom"));
    cursor = page.next_cursor;
    $("load-more").hidden = !cursor;
    showEmpty();
    // Jobs read from the API have no seq yet: the replay from 0 brings them up to date.
    live.resume(fresh.filter((entry) => !entry.terminal));
  }

  async function loadMore() {
    const button = $("load-more");
    button.disabled = true;
    button.textContent = "Loading…";
    try {
      const query = new URLSearchParams({ limit: String(PAGE), cursor });
      showPage(await session.request("GET", `/jobs?${query}`));
    } catch (error) {
      notifier.toast("Could not load more jobs", error.message, "failed");
    } finally {
      button.disabled = false;
      button.textContent = "Load more";
    }
  }

  /** Events for a job this page does not show: another tab's, or ours before the answer. */
  async function adopt(jobId) {
    await Promise.allSettled([loaded, launcher.inflight]);
    if (store.get(jobId)) return;
    try {
      store.add(await session.request("GET", `/jobs/${encodeURIComponent(jobId)}`), "top");
    } catch {
      store.forget(jobId);
    }
  }

  /** Back after a disconnect: jobs started meanwhile in other tabs appear at the top. */
  async function catchUp() {
    await loaded;
    const page = await session.request("GET", `/jobs?limit=${PAGE}`);
    const fresh = page.items
      .filter((job) => !store.get(job.id))
      .reverse()
      .map((job) => store.add(job, "top"));
    live.resume(fresh.filter((entry) => !entry.terminal));
  }

  async function cancel(entry) {
    entry.cancelling = true;
    list.schedule(entry);
    try {
      store.merge(await session.request("POST", `/jobs/${entry.id}/cancel`));
      if (!entry.terminal) announce(`Cancelling ${titleOf(entry.job.type)}.`);
    } catch (error) {
      entry.cancelling = false;
      // 409: it has just finished; its final event is on the way (or was missed).
      if (error.status === 409) await refetch(entry);
      else notifier.toast("Could not cancel the job", error.message, "failed");
    }
    list.schedule(entry);
  }

  async function refetch(entry) {
    try {
      store.merge(await session.request("GET", `/jobs/${entry.id}`));
    } catch {
      // The live events will bring the final state.
    }
  }

  /** A signed link older than a few minutes may have expired: get a fresh one first. */
  async function download(entry, event) {
    if (Date.now() - (entry.fetchedAt || 0) < LINK_FRESH_MS) return;
    event.preventDefault();
    try {
      const job = await session.request("GET", `/jobs/${entry.id}`);
      entry.job.result = job.result;
      entry.fetchedAt = Date.now();
      list.schedule(entry);
      if (job.result?.download_url) location.assign(job.result.download_url);
    } catch (error) {
      notifier.toast("Could not download the result", error.message, "failed");
    }
  }

  function react(entry, before) {
    const { job } = entry;
    const title = titleOf(job.type);
    if (job.status !== before.status) {
      announce(`${title}: ${STATUS_TEXT[job.status] || job.status}.`);
      if (TERMINAL.has(job.status) && !TERMINAL.has(before.status)) {
        entry.cancelling = false;
        if (lookingElsewhere()) notifyEnded(entry, title);
      }
      return;
    }
    const quarter = (progress) => Math.floor((progress || 0) / 25);
    if (job.status === "running" && quarter(job.progress) > quarter(before.progress)) {
      announce(`${title}: ${Math.floor(job.progress)}% done.`);
    }
  }

  function notifyEnded(entry, title) {
    const { job } = entry;
    let outcome = "it was cancelled.";
    if (job.status === "failed") outcome = job.error?.message || "it failed.";
    if (job.status === "succeeded") {
      outcome = job.result?.filename ? `${job.result.filename} is ready.` : "it finished.";
    }
    notifier.jobEnded(job.id, `Job ${job.status}`, `${title}: ${outcome}`, job.status, () =>
      list.row(entry)?.scrollIntoView({ block: "center" }),
    );
  }

  function showEmpty() {
    const status = $("jobs-status");
    if (store.jobs.size) {
      status.hidden = true;
    } else if (loaded) {
      status.textContent = "No jobs yet. Start one with the form.";
      status.hidden = false;
    }
  }

  function showConnection() {
    const box = $("connection");
    box.dataset.state = live.state;
    box.dataset.via = live.via;
    const text = CONNECTION_TEXT[live.state];
    box.querySelector(".connection-text").textContent =
      live.state === "live" && live.via === "sse" ? `${text} (SSE)` : text;
    const via = live.via === "sse" ? "Server-Sent Events" : live.via;
    box.title = via ? `Live updates over ${via}` : "";
  }
}
