// The model's markdown as safe DOM. Parsing is marked's, sanitising DOMPurify's (both vendored in
// ./vendor, see vendor/README.md): nothing the model writes can run script in the page.
import { Marked } from "./vendor/marked.esm.js";
import DOMPurify from "./vendor/purify.es.js";

const markdown = new Marked({
  gfm: true,
  breaks: true, // a model's single newlines are meant as line breaks
  renderer: {
    // An image in a reply would be fetched as soon as it is shown, leaking the conversation to
    // whatever host the model (or a prompt injection) names: show it as a link instead.
    image({ href, text }) {
      const label = text || href;
      return `<a href="${escapeAttribute(href)}">${escapeText(`[image: ${label}]`)}</a>`;
    },
  },
});

const PURIFY = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ["img", "style", "form", "input", "button", "textarea", "select", "iframe"],
  FORBID_ATTR: ["style", "id", "name"], // nothing a reply may restyle the page or clobber with
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|#)/i, // no javascript:, data: or relative links
  RETURN_DOM_FRAGMENT: true,
};

// Links from a reply open in a new tab and tell the target nothing about this page.
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

/** `text` (markdown) parsed and sanitised, as a DocumentFragment to put in the page. */
export function renderMarkdown(text) {
  return DOMPurify.sanitize(markdown.parse(text).trim(), PURIFY);
}

function escapeText(text) {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

const escapeAttribute = escapeText;
