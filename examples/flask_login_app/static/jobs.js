// The word counts of the signed-in user, live: jobcast's events on its Socket.IO namespace.
//
// The session cookie signs the socket in, as it signs in every request. After a reconnect the
// page asks `job.resume` for the events it missed of each unfinished job, from the last one it
// applied (epoch and seq), so no step of a bar is lost while the connection was down.

import { io } from "./socket.io.esm.min.js";

const TERMINAL = new Set(["job.succeeded", "job.failed", "job.cancelled"]);
const EVENTS = [
  "job.queued",
  "job.started",
  "job.progress",
  "job.retrying",
  ...TERMINAL,
];

const list = document.getElementById("jobs");
const jobs = new Map(); // job id -> {row, epoch, seq, done}

function row(jobId) {
  let job = jobs.get(jobId);
  if (!job) {
    const element = document.createElement("div");
    element.className = "job";
    element.innerHTML = "<div class=label></div><progress max=100 value=0></progress>";
    list.prepend(element);
    job = { element, epoch: 0, seq: 0, done: false };
    jobs.set(jobId, job);
  }
  return job;
}

function show(jobId, status, progress, message, result) {
  const job = row(jobId);
  job.element.querySelector("progress").value = progress;
  const label = job.element.querySelector(".label");
  label.textContent = `${status}: ${message || ""} `;
  if (result?.download_url) {
    const link = document.createElement("a");
    link.href = result.download_url;
    link.textContent = `${result.words} words, ${result.distinct} distinct: download CSV`;
    label.append(link);
  }
}

function apply(name, event) {
  const job = row(event.job_id);
  // A replay may repeat what already arrived live: apply each event once, in order.
  if (event.epoch < job.epoch || (event.epoch === job.epoch && event.seq <= job.seq)) return;
  job.epoch = event.epoch;
  job.seq = event.seq;
  job.done = TERMINAL.has(name);
  show(event.job_id, event.status, event.progress, event.message, event.result);
}

const socket = io("/jobcast", { transports: ["polling", "websocket"] });
for (const name of EVENTS) socket.on(name, (event) => apply(name, event));
socket.on("connect", () => {
  const missed = [...jobs]
    .filter(([, job]) => !job.done)
    .map(([job_id, job]) => ({ job_id, after_seq: job.seq, epoch: job.epoch }));
  if (missed.length) socket.emit("job.resume", missed);
});
socket.on("auth.revoked", () => window.location.assign("/login"));

// The site's own handler on "/", beside jobcast's namespace.
io({ transports: ["polling", "websocket"] }).emit("ping", null, (answer) => {
  document.getElementById("server").textContent = `(server says ${answer})`;
});

// The jobs from before this page: jobcast's API, signed in by the same cookie.
const page = await fetch(list.dataset.api);
if (page.ok) {
  for (const job of (await page.json()).items.reverse()) {
    show(job.id, job.status, job.progress, job.message, job.result);
    const known = row(job.id);
    known.done = ["succeeded", "failed", "cancelled"].includes(job.status);
    if (!known.done && socket.connected) {
      socket.emit("job.resume", { job_id: job.id, after_seq: 0 });
    }
  }
}

document.getElementById("count").addEventListener("submit", async (event) => {
  event.preventDefault();
  const response = await fetch(event.target.action, {
    method: "POST",
    body: new FormData(event.target),
  });
  const body = await response.json();
  if (response.ok) row(body.id);
  else alert(body.detail || "the job was refused");
});
