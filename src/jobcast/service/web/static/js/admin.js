// The admin page: every user's jobs through /api/v1/admin with the signed-in user's token.
//
// The page itself holds nothing: for anyone but an admin the admin API answers 404, and the
// page says only that it is for admins. Rows are read, not followed live (Socket.IO brings a
// user their own jobs only): acting on a row, or applying the filters, reads it again.

import { Session } from "./api.js";
import * as fmt from "./format.js";
import { STATUS_TEXT } from "./jobview.js";

const PAGE = 50;
const CANCELLABLE = new Set(["queued", "running", "retrying"]);
const RERUNNABLE = new Set(["failed", "cancelled"]);

const session = Session.load();
if (session) main(session);
else location.replace("/signin");

function main(session) {
  const $ = (id) => document.getElementById(id);
  session.addEventListener("end", () => location.replace("/signin"));
  session.start();
  $("sign-out").addEventListener("click", () => session.signOut());

  const rows = new Map(); // job id -> <tr>
  let filters = new URLSearchParams();
  let cursor = null;

  const announce = (text) => {
    $("announcer").textContent = text;
  };

  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    filters = readFilters();
    reload();
  });
  $("filters").addEventListener("reset", () => {
    filters = new URLSearchParams();
    setTimeout(reload); // after the form has cleared its fields
  });
  $("load-more").addEventListener("click", () => loadPage(false));

  start();

  async function start() {
    try {
      const me = await session.request("GET", "/me");
      $("account-email").textContent = me.email;
      await loadPage(true);
    } catch (error) {
      if (session.ended) return;
      const admins = "This page is for admins only.";
      $("admin-status").textContent =
        error.status === 404 ? admins : `Could not load: ${error.message}`;
      return;
    }
    $("admin-view").hidden = false;
    loadAudit();
    session.request("GET", "/job-types").then(
      (types) => {
        for (const type of types.items) $("job-types").append(new Option(type.title, type.type));
      },
      () => {},
    );
  }

  function readFilters() {
    const query = new URLSearchParams();
    for (const [name, value] of new FormData($("filters"))) {
      if (!value) continue;
      // datetime-local is the browser's local time: the API wants an offset, so send UTC.
      query.set(name, name.startsWith("created_") ? new Date(value).toISOString() : value);
    }
    return query;
  }

  async function reload() {
    try {
      await loadPage(true);
    } catch (error) {
      showErrors(error);
    }
  }

  async function loadPage(fresh) {
    const query = new URLSearchParams(filters);
    query.set("limit", String(PAGE));
    if (!fresh && cursor) query.set("cursor", cursor);
    const page = await session.request("GET", `/admin/jobs?${query}`);
    showErrors(null);
    if (fresh) {
      rows.clear();
      $("admin-jobs").tBodies[0].replaceChildren();
    }
    for (const job of page.items) $("admin-jobs").tBodies[0].append(row(job));
    cursor = page.next_cursor;
    $("load-more").hidden = !cursor;
    $("admin-status").textContent = rows.size ? "" : "No jobs match.";
    $("admin-status").hidden = rows.size > 0;
  }

  function row(job) {
    const tr = $("admin-job-template").content.firstElementChild.cloneNode(true);
    tr.querySelector(".admin-events-button").addEventListener("click", () => showLog(tr.job));
    tr.querySelector(".admin-cancel").addEventListener("click", () => act(tr, "cancel"));
    tr.querySelector(".admin-rerun").addEventListener("click", () => act(tr, "rerun"));
    draw(tr, job);
    rows.set(job.id, tr);
    return tr;
  }

  function draw(tr, job) {
    tr.job = job;
    tr.dataset.jobId = job.id;
    tr.dataset.status = job.status;
    const time = tr.querySelector(".admin-created");
    time.dateTime = job.created_at;
    time.textContent = fmt.when(job.created_at);
    tr.querySelector(".admin-owner").textContent = job.owner.email || `user ${job.owner.id}`;
    tr.querySelector(".admin-type").textContent = job.type;
    tr.querySelector(".admin-params").textContent = fmt.params(job.params);
    tr.querySelector(".admin-status").textContent = STATUS_TEXT[job.status] || job.status;
    tr.querySelector(".admin-progress").textContent = fmt.percent(job.progress);
    tr.querySelector(".admin-cancel").hidden = !CANCELLABLE.has(job.status);
    tr.querySelector(".admin-rerun").hidden = !RERUNNABLE.has(job.status);
  }

  async function act(tr, action) {
    const job = tr.job;
    const buttons = tr.querySelectorAll("button");
    for (const button of buttons) button.disabled = true;
    try {
      const answer = await session.request("POST", `/admin/jobs/${job.id}/${action}`);
      if (action === "rerun") {
        const fresh = row(answer);
        $("admin-jobs").tBodies[0].prepend(fresh);
        announce(`${job.type} runs again as a new job for ${job.owner.email || job.owner.id}.`);
      } else {
        draw(tr, answer);
        announce(`${job.type} of ${job.owner.email || job.owner.id}: cancelling.`);
        follow(tr);
      }
    } catch (error) {
      announce(`Could not ${action === "rerun" ? "re-run" : "cancel"} the job: ${error.message}`);
      showErrors(error);
      if (error.status === 409) await refresh(tr);
    } finally {
      for (const button of buttons) button.disabled = false;
    }
    loadAudit();
  }

  /** A running job stops at its next checkpoint: read it until it has (for a while). */
  async function follow(tr, tries = 30) {
    for (let n = 0; n < tries && CANCELLABLE.has(tr.job.status); n += 1) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await refresh(tr);
    }
  }

  async function refresh(tr) {
    try {
      draw(tr, await session.request("GET", `/admin/jobs/${tr.job.id}`));
    } catch {
      // The row keeps what it showed.
    }
  }

  async function showLog(job) {
    const items = $("event-log-items");
    $("event-log").hidden = false;
    $("event-log-job").textContent = `${job.type} · ${job.owner.email || job.owner.id} · ${job.id}`;
    items.replaceChildren();
    try {
      const log = await session.request("GET", `/admin/jobs/${job.id}/events`);
      for (const { event, data } of log.items) {
        const li = document.createElement("li");
        const parts = [`#${data.seq}`, event, fmt.percent(data.progress), data.message || ""];
        if (data.error) parts.push(`${data.error.type}: ${data.error.message}`);
        li.textContent = `${new Date(data.ts * 1000).toLocaleTimeString()} ${parts.join(" · ")}`;
        items.append(li);
      }
      if (!log.items.length) items.append(note("No events kept for this job."));
    } catch (error) {
      items.append(note(`Could not read the event log: ${error.message}`));
    }
    $("event-log").scrollIntoView({ block: "nearest" });
  }

  async function loadAudit() {
    try {
      const page = await session.request("GET", "/admin/audit?limit=20");
      $("audit-items").replaceChildren(
        ...page.items.map((entry) => {
          const who =
            entry.actor_id === null
              ? `command line (${entry.detail.os_user || "?"})`
              : `user ${entry.actor_id}`;
          const outcome = entry.detail.outcome ? ` · ${entry.detail.outcome}` : "";
          return note(
            `${fmt.when(entry.at)} · ${who} · ${entry.action} ${entry.target_type} ` +
              `${entry.target_id}${outcome}`,
          );
        }),
      );
      if (!page.items.length) $("audit-items").append(note("Nothing yet."));
    } catch {
      // The audit list stays as it was; the jobs table is what the page is for.
    }
  }

  function note(text) {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  }

  function showErrors(error) {
    const box = $("filter-errors");
    if (!error) {
      box.hidden = true;
      box.replaceChildren();
      return;
    }
    const lines = error.errors.length
      ? error.errors.map((e) => `${e.field || "query"}: ${e.message}`)
      : [error.message];
    box.replaceChildren(
      ...lines.map((line) => Object.assign(document.createElement("p"), { textContent: line })),
    );
    box.hidden = false;
  }
}
