// Telling the user a job ended while they looked elsewhere: a system notification when they
// allowed it, and always an in-page toast that waits for them to come back.

const TOAST_MS = 12_000;

/** True when the user is not looking at this page (another tab, window or app). */
export function lookingElsewhere() {
  return document.visibilityState === "hidden" || !document.hasFocus();
}

export class Notifier {
  constructor(region, template, button) {
    this.region = region;
    this.template = template;
    this.button = button;
    this.pending = new Set(); // toasts that start their timer when the page is seen again
    document.addEventListener("visibilitychange", () => this.seen());
    window.addEventListener("focus", () => this.seen());
    if (button && "Notification" in window && Notification.permission === "default") {
      button.hidden = false;
      button.addEventListener("click", async () => {
        await Notification.requestPermission();
        button.hidden = Notification.permission !== "default";
      });
    }
  }

  /** Notify about a finished job: `kind` is its final status. */
  jobEnded(jobId, title, body, kind, onOpen) {
    if ("Notification" in window && Notification.permission === "granted") {
      try {
        const note = new Notification(title, { body, tag: `jobcast-${jobId}` });
        note.addEventListener("click", () => {
          window.focus();
          onOpen?.();
          note.close();
        });
      } catch {
        // Some browsers only allow notifications from a service worker: the toast remains.
      }
    }
    this.toast(title, body, kind);
  }

  toast(title, body, kind = "info") {
    const node = this.template.content.firstElementChild.cloneNode(true);
    node.dataset.kind = kind;
    node.querySelector(".toast-title").textContent = title;
    node.querySelector(".toast-body").textContent = body;
    node.setAttribute("aria-label", title);
    node.querySelector(".toast-close").addEventListener("click", () => node.remove());
    this.region.prepend(node);
    while (this.region.childElementCount > 5) this.region.lastElementChild.remove();
    if (lookingElsewhere()) this.pending.add(node);
    else this.expire(node);
    return node;
  }

  expire(node) {
    setTimeout(() => node.remove(), TOAST_MS);
  }

  seen() {
    if (lookingElsewhere()) return;
    for (const node of this.pending) this.expire(node);
    this.pending.clear();
  }
}
