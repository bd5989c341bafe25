// Feedback on a reply: thumbs up or down (PUT /api/chat/messages/{id}/feedback/), the same thumb
// again withdraws it (DELETE), with an optional comment. The stored rating comes with the message
// (its metadata.feedback), so a reload shows it.
import { api } from "./api.js";
import { $, el, showError } from "./ui.js";

const RATINGS = { up: "Good reply", down: "Bad reply" };

/** A thumb drawn as SVG (Feather's "thumbs-up" outline, MIT), not an emoji: every system has the
 * glyphs it draws with. The down thumb is the same icon flipped by the stylesheet. */
function thumbIcon() {
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  for (const [name, value] of Object.entries({ viewBox: "0 0 24 24", width: "16", height: "16",
    fill: "none", stroke: "currentColor", "stroke-width": "2", "stroke-linecap": "round",
    "stroke-linejoin": "round", "aria-hidden": "true" })) svg.setAttribute(name, value);
  const path = document.createElementNS(svgNS, "path");
  path.setAttribute("d", "M14 9V5a3 3 0 0 0-3-3l-4 9v11h11.28a2 2 0 0 0 2-1.7l1.38-9a2 2 0 0 0-2-2.3z"
    + "M7 22H4a2 2 0 0 1-2-2v-7a2 2 0 0 1 2-2h3");
  svg.append(path);
  return svg;
}

/** The controls of the assistant message `item` (its id is read when they are used: a streamed
 * reply learns its id from its first chunk). `feedback`: {rating, comment, categories} or null. */
export function feedbackControls(item, feedback = null) {
  let current = feedback;
  const buttons = Object.fromEntries(
    Object.entries(RATINGS).map(([rating, label]) => [
      rating,
      el("button", { type: "button", class: `ghost thumb ${rating}`, title: label,
        "aria-label": label, "aria-pressed": "false" }, thumbIcon()),
    ]),
  );
  const comment = el("textarea", { rows: "2", maxlength: "2000", "aria-label": "Comment on this reply",
    placeholder: "What was right or wrong? (optional)" });
  const form = el("form", { class: "feedback-comment row" }, comment,
    el("button", { class: "secondary" }, "Save comment"));
  const note = el("small", { class: "muted", role: "status" });
  const box = el("div", { class: "feedback", role: "group", "aria-label": "Rate this reply" },
    buttons.up, buttons.down, note, form);
  const url = () => `/api/chat/messages/${item.dataset.id}/feedback/`;
  const errorBox = $("#chat-error");

  function show() {
    for (const [rating, button] of Object.entries(buttons)) {
      button.setAttribute("aria-pressed", String(current?.rating === rating));
    }
    form.hidden = !current; // a comment goes with a rating
    if (!current) comment.value = "";
  }

  async function save(rating, done) {
    showError(errorBox, null);
    try {
      const body = { rating, comment: comment.value.trim(), categories: current?.categories ?? [] };
      current = await api(url(), { method: "PUT", body }); // creates or replaces
      note.textContent = done;
    } catch (error) {
      showError(errorBox, error);
    }
    show();
  }

  async function withdraw() {
    showError(errorBox, null);
    try {
      await api(url(), { method: "DELETE" });
    } catch (error) {
      if (error.status !== 404) { // 404: already withdrawn (in another tab, say)
        showError(errorBox, error);
        return;
      }
    }
    current = null;
    note.textContent = "";
    show();
  }

  for (const [rating, button] of Object.entries(buttons)) {
    button.addEventListener("click", () =>
      current?.rating === rating ? withdraw() : save(rating, "Thanks for the feedback."));
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (current) save(current.rating, "Comment saved.");
  });
  comment.value = feedback?.comment ?? "";
  show();
  return box;
}
