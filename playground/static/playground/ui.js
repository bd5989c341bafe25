// Small DOM helpers shared by the views. Text always goes in as text nodes, never as HTML.
import { ApiError } from "./api.js";

export const $ = (selector) => document.querySelector(selector);

/** el("li", {class: "x"}, "text", child) builds an element; null/false attributes are skipped. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value != null && value !== false) node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((child) => child != null && child !== false));
  return node;
}

/** Shows an error (or a message) in an alert paragraph; null hides it. */
export function showError(node, error) {
  node.hidden = !error;
  node.textContent = !error ? "" : typeof error === "string" ? error : describe(error);
}

export function describe(error) {
  if (error instanceof ApiError) return error.message;
  if (error instanceof TypeError) return "Could not reach the server. Is it running?";
  return error.message ?? String(error);
}

/** Follows a DRF paginated list's `next` links and returns every result. */
export async function allPages(api, url) {
  const results = [];
  for (let next = url; next; ) {
    const page = await api(next);
    results.push(...page.results);
    next = page.next && relative(page.next); // stay on this origin, even behind a proxy
  }
  return results;
}

/** An absolute API link (DRF's `next`) as a path on this page's origin. */
export const relative = (url) => {
  const { pathname, search } = new URL(url, location.href);
  return pathname + search;
};

export const formatDate = (iso) =>
  new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });

/** "requiredExpertise" or "required_expertise" → "Required expertise". */
export const humanize = (key) =>
  key.replace(/([a-z])([A-Z])/g, "$1 $2").replace(/[_-]+/g, " ").toLowerCase()
    .replace(/^./, (first) => first.toUpperCase());

/** Renders JSON data readably: objects as definition lists, arrays as lists, the rest as text. */
export function renderValue(value) {
  if (Array.isArray(value)) {
    return el("ol", { class: "value-list" }, ...value.map((item) => el("li", {}, renderValue(item))));
  }
  if (value && typeof value === "object") {
    const entries = Object.entries(value).flatMap(([key, item]) => [
      el("dt", {}, humanize(key)),
      el("dd", {}, renderValue(item)),
    ]);
    return el("dl", { class: "value-map" }, ...entries);
  }
  return el("span", { class: "value" }, value == null ? "–" : String(value));
}
