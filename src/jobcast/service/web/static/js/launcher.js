// The launcher: a form generated from each job type's params JSON Schema (pydantic's), with
// the schema's limits as input limits. Validation is the API's: the form does not block a
// submit (novalidate), and the 422 problem's `errors` are shown next to the fields they name.

import { ApiProblem } from "./api.js";
import { showFormErrors } from "./forms.js";

const TYPE_KEY = "jobcast.launcher.type";
const UNITS = { ms: "ms", cents: "cents", seconds: "s", bytes: "bytes" };
const numbers = new Intl.NumberFormat();

function sentence(words) {
  const text = words.join(" ").toLowerCase();
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** The schema's title, unless it is pydantic's automatic one: then "step_ms" -> "Step (ms)". */
export function labelFor(name, title) {
  const words = name.split("_").filter(Boolean);
  const automatic = words.map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join(" ");
  if (title && title !== automatic) return title;
  const unit = UNITS[words.at(-1)];
  return unit && words.length > 1 ? `${sentence(words.slice(0, -1))} (${unit})` : sentence(words);
}

/** A `{"$ref": "#/$defs/Name"}` (nested models, Enum classes) replaced by what it names. */
function resolve(schema, defs) {
  const ref = schema?.$ref;
  if (typeof ref !== "string" || !ref.startsWith("#/$defs/")) return schema;
  return { ...defs[ref.slice(8)], ...schema, $ref: undefined };
}

/** What kind of input a schema property becomes, with its limits. */
export function describe(name, property, required, defs = {}) {
  const schema = resolve(property, defs);
  const variants = (schema.anyOf || schema.oneOf || [schema]).map((v) => resolve(v, defs));
  const nullable = variants.some((v) => v.type === "null");
  const types = variants.filter((v) => v.type !== "null");
  const base = types[0] || {};
  const field = {
    name,
    label: labelFor(name, schema.title),
    description: schema.description || "",
    required: required && !nullable,
    default: schema.default ?? base.default,
    kind: "text",
    limits: {},
  };
  const formats = new Set(types.map((v) => v.format));
  if (types.length === 1 && Array.isArray(base.enum)) {
    field.kind = "select";
    field.options = base.enum;
  } else if (base.type === "integer" || base.type === "number") {
    field.kind = "number";
    field.integer = base.type === "integer";
    field.limits = {
      min: base.minimum,
      max: base.maximum,
      above: base.exclusiveMinimum,
      below: base.exclusiveMaximum,
    };
  } else if (base.type === "boolean") {
    field.kind = "checkbox";
  } else if (formats.has("date")) {
    field.kind = "date";
  } else if (formats.has("date-time")) {
    field.kind = "datetime-local";
  } else if (base.type === "string") {
    field.kind = base.format === "email" ? "email" : base.maxLength > 200 ? "textarea" : "text";
    const { minLength, maxLength, pattern } = base;
    field.limits = { minLength, maxLength, pattern };
  } else if (base.type === "object" || base.type === "array") {
    field.kind = "json";
  }
  return field;
}

/**
 * The fields of a params schema: required ones first, in the schema's `required` order (the
 * API's JSON has its object keys sorted, but a list keeps the order the job's author wrote).
 */
export function fieldsOf(schema) {
  const required = schema.required || [];
  const rank = (name) => (required.includes(name) ? required.indexOf(name) : required.length);
  return Object.entries(schema.properties || {})
    .sort(([a], [b]) => rank(a) - rank(b))
    .map(([name, property]) => describe(name, property, required.includes(name), schema.$defs));
}

function hintFor(field) {
  const { min, max, above, below } = field.limits;
  const parts = field.description ? [field.description] : [];
  if (min !== undefined && max !== undefined) {
    parts.push(`${numbers.format(min)} to ${numbers.format(max)}.`);
  } else if (min !== undefined) parts.push(`At least ${numbers.format(min)}.`);
  else if (max !== undefined) parts.push(`At most ${numbers.format(max)}.`);
  if (above !== undefined) parts.push(`More than ${numbers.format(above)}.`);
  if (below !== undefined) parts.push(`Less than ${numbers.format(below)}.`);
  if (field.kind === "date" || field.kind === "datetime-local") parts.push("UTC.");
  if (field.kind === "json") parts.push("JSON.");
  if (!field.required && field.default == null) parts.push("Optional.");
  return parts.join(" ");
}

function compiles(pattern) {
  try {
    new RegExp(pattern, "v");
    return true;
  } catch {
    return false;
  }
}

function inputFor(field, id) {
  let input;
  if (field.kind === "select") {
    input = document.createElement("select");
    if (!field.required || field.default === undefined) {
      input.append(new Option(field.required ? "Choose…" : "Any", ""));
    }
    for (const option of field.options) input.append(new Option(String(option), String(option)));
    input.value = field.default == null ? "" : String(field.default);
  } else if (field.kind === "textarea" || field.kind === "json") {
    input = document.createElement("textarea");
    input.rows = field.kind === "json" ? 3 : 5;
    if (field.default != null) {
      input.value = field.kind === "json" ? JSON.stringify(field.default) : field.default;
    }
  } else {
    input = document.createElement("input");
    input.type = field.kind === "checkbox" ? "checkbox" : field.kind;
    if (field.kind === "checkbox") input.checked = Boolean(field.default);
    else if (field.default != null) input.value = String(field.default);
  }
  input.id = id;
  input.name = field.name;
  const { min, max, minLength, maxLength, pattern } = field.limits;
  if (min !== undefined) input.min = String(min);
  if (max !== undefined) input.max = String(max);
  if (field.kind === "number") {
    input.step = field.integer ? "1" : "any";
    input.inputMode = field.integer ? "numeric" : "decimal";
  }
  if (minLength !== undefined) input.minLength = minLength;
  if (maxLength !== undefined) input.maxLength = maxLength;
  if (pattern && input.tagName === "INPUT" && compiles(pattern)) input.pattern = pattern;
  if (field.kind === "email") input.autocomplete = "email";
  if (field.required) input.required = true;
  return input;
}

/** An input the browser itself cannot turn into a value (text in a number box, bad JSON). */
class Unreadable {
  constructor(message) {
    this.message = message;
  }
}

/** The params a field contributes: undefined leaves it out (the API's default applies). */
function valueOf(field, input) {
  switch (field.kind) {
    case "checkbox":
      return input.checked;
    case "number":
      if (input.value !== "") return Number(input.value);
      return input.validity.badInput ? new Unreadable("Enter a number.") : undefined;
    case "json":
      if (input.value.trim() === "") return undefined;
      try {
        return JSON.parse(input.value);
      } catch {
        return new Unreadable("Enter valid JSON.");
      }
    case "datetime-local":
      return input.value === "" ? undefined : `${input.value}Z`;
    default:
      return input.value === "" ? undefined : input.value;
  }
}

function idempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) =>
    b.toString(16).padStart(2, "0"),
  ).join("");
}

export class Launcher {
  constructor(form, session, onLaunched) {
    this.form = form;
    this.session = session;
    this.onLaunched = onLaunched;
    this.select = form.querySelector("#job-type");
    this.hint = form.querySelector("#job-type-hint");
    this.fieldset = form.querySelector("#job-params");
    this.summary = form.querySelector("#launch-errors");
    this.button = form.querySelector("#launch");
    this.types = new Map();
    this.inputs = {};
    this.fields = [];
    this.inflight = null; // the submission under way, if any
    this.select.addEventListener("change", () => {
      sessionStorage.setItem(TYPE_KEY, this.select.value);
      this.render();
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.inflight = this.submit();
    });
  }

  setTypes(types) {
    this.types = new Map(types.map((t) => [t.type, t]));
    this.select.replaceChildren(...types.map((t) => new Option(t.title || t.type, t.type)));
    const remembered = sessionStorage.getItem(TYPE_KEY);
    if (remembered && this.types.has(remembered)) this.select.value = remembered;
    this.select.disabled = types.length === 0;
    this.button.disabled = types.length === 0;
    this.form.removeAttribute("aria-busy");
    this.render();
  }

  render() {
    const type = this.types.get(this.select.value);
    this.hint.textContent = type ? type.type : "No job types are registered.";
    this.fields = type ? fieldsOf(type.params_schema || {}) : [];
    this.inputs = {};
    const legend = document.createElement("legend");
    legend.textContent = "Parameters";
    const children = [legend];
    for (const field of this.fields) {
      const id = `param-${field.name}`;
      const wrap = document.createElement("div");
      wrap.className = field.kind === "checkbox" ? "field field-check" : "field";
      const label = document.createElement("label");
      label.htmlFor = id;
      label.textContent = field.label;
      const input = inputFor(field, id);
      const hint = document.createElement("p");
      hint.className = "hint";
      hint.id = `${id}-hint`;
      hint.textContent = hintFor(field);
      const error = document.createElement("p");
      error.className = "field-error";
      error.id = `${id}-error`;
      error.hidden = true;
      input.setAttribute("aria-describedby", `${hint.id} ${error.id}`);
      if (field.kind === "checkbox") wrap.append(input, label, hint, error);
      else wrap.append(label, input, hint, error);
      children.push(wrap);
      this.inputs[field.name] = input;
    }
    if (this.fields.length === 0) {
      const none = document.createElement("p");
      none.className = "hint";
      none.textContent = "This job takes no parameters.";
      children.push(none);
    }
    this.fieldset.replaceChildren(...children);
    this.showErrors(null, []);
  }

  showErrors(detail, errors) {
    // "params.steps" names the input "steps"; "type" or "params" name none (the summary).
    const nameOf = (field) =>
      typeof field === "string" && field.startsWith("params.") ? field.split(".")[1] : null;
    return showFormErrors(this.summary, this.inputs, detail, errors, nameOf);
  }

  async submit() {
    if (this.button.disabled) return;
    const type = this.select.value;
    const params = {};
    const local = [];
    for (const field of this.fields) {
      const value = valueOf(field, this.inputs[field.name]);
      if (value instanceof Unreadable) {
        local.push({ field: `params.${field.name}`, message: value.message });
      } else if (value !== undefined) {
        params[field.name] = value;
      }
    }
    if (local.length) {
      this.showErrors(null, local);
      return;
    }
    this.button.disabled = true;
    this.form.setAttribute("aria-busy", "true");
    try {
      const job = await this.session.request("POST", "/jobs", {
        json: { type, params },
        headers: { "Idempotency-Key": idempotencyKey() },
      });
      this.showErrors(null, []);
      this.onLaunched(job, this.types.get(type));
    } catch (error) {
      if (!(error instanceof ApiProblem)) throw error;
      const retry = ` (try again in ${error.retryAfter || 5} s)`;
      const detail = error.status === 503 ? error.detail + retry : error.detail;
      this.showErrors(detail, error.errors);
    } finally {
      this.button.disabled = false;
      this.form.removeAttribute("aria-busy");
    }
  }
}
