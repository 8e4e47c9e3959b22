// The sign-in and sign-up page: one form, two modes.

import { ApiProblem, Session, register, takeNotice } from "./api.js";
import { showFormErrors } from "./forms.js";

const form = document.getElementById("auth-form");
const signup = form.dataset.mode === "signup";
const fields = { email: form.elements.email, password: form.elements.password };
const summary = document.getElementById("auth-errors");

if (Session.load()) location.replace("/");

const notice = takeNotice();
if (notice) {
  const box = document.getElementById("auth-notice");
  box.textContent = notice;
  box.hidden = false;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = form.querySelector("button[type=submit]");
  const email = fields.email.value.trim();
  const password = fields.password.value;
  const missing = [];
  if (!email) missing.push({ field: "email", message: "Enter your email address." });
  if (!password) missing.push({ field: "password", message: "Enter your password." });
  if (missing.length) {
    showFormErrors(summary, fields, null, missing);
    return;
  }
  showFormErrors(summary, fields, null, []);
  button.disabled = true;
  form.setAttribute("aria-busy", "true");
  try {
    if (signup) await register(email, password);
    await Session.signIn(email, password);
    location.assign("/");
  } catch (error) {
    if (!(error instanceof ApiProblem)) throw error;
    const detail =
      error.status === 409 ? "An account with this email already exists." : error.detail;
    showFormErrors(summary, fields, detail, error.errors);
  } finally {
    button.disabled = false;
    form.removeAttribute("aria-busy");
  }
});
// The button stays disabled until the handler above is bound: a click before this module ran
// would submit the form natively, reloading the page instead of signing in.
form.querySelector("button[type=submit]").disabled = false;
