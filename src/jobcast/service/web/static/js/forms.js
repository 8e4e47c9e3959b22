// Showing the API's validation errors (problem+json `errors`) next to the inputs they name.
//
// Every input has an element `<id>-error` listed in its aria-describedby, so the message is
// read with the field; the summary is a role=alert region read once when it changes.

function errorElement(input) {
  return document.getElementById(`${input.id}-error`);
}

function clearFieldError(input) {
  input.removeAttribute("aria-invalid");
  const box = errorElement(input);
  if (box) {
    box.textContent = "";
    box.hidden = true;
  }
}

function addFieldError(input, message) {
  input.setAttribute("aria-invalid", "true");
  const box = errorElement(input);
  if (!box) return false;
  box.textContent = box.textContent ? `${box.textContent} ${message}` : message;
  box.hidden = false;
  return true;
}

/**
 * Put each error next to its field; what names no field goes to the summary with `detail`.
 * `fields` maps a name to its input; `nameOf` turns an error's `field` into such a name.
 * Returns true when anything was shown.
 */
export function showFormErrors(summary, fields, detail, errors, nameOf = (field) => field) {
  for (const input of Object.values(fields)) clearFieldError(input);
  const loose = [];
  let first = null;
  for (const error of errors || []) {
    const input = fields[nameOf(error.field)];
    if (input && addFieldError(input, error.message)) {
      first ??= input;
    } else {
      loose.push(error.field ? `${error.field}: ${error.message}` : error.message);
    }
  }
  const lines = [];
  if (detail) {
    const sentence = detail.charAt(0).toUpperCase() + detail.slice(1);
    lines.push(first ? `${sentence.replace(/\.?$/, ".")} Check the highlighted field.` : sentence);
  }
  summary.replaceChildren();
  if (lines.length || loose.length) {
    for (const line of lines) {
      const p = document.createElement("p");
      p.textContent = line;
      summary.append(p);
    }
    if (loose.length) {
      const list = document.createElement("ul");
      for (const text of loose) {
        const item = document.createElement("li");
        item.textContent = text;
        list.append(item);
      }
      summary.append(list);
    }
  }
  summary.hidden = summary.childElementCount === 0;
  if (first) first.focus();
  return !summary.hidden || first !== null;
}
