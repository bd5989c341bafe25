// Chat: the conversation list, one conversation's messages (UIMessage parts: text, reasoning, files,
// sources; a reply's thumbs from metadata.feedback) and replies streamed from POST /api/chat/stream/
// (Vercel AI SDK UI message stream: start, reasoning-*, text-*, source-url, data-title, finish |
// error). A reply belongs to the server, not to this page: after a reload, or in a second tab, the
// running one is resumed from GET /api/chat/stream/{id}/stream, and Stop asks the server to stop it.
import { api, request, upload } from "./api.js";
import { feedbackControls } from "./feedback.js";
import { renderMarkdown } from "./markdown.js";
import { readFrames } from "./stream.js";
import { $, allPages, el, formatDate, relative, showError } from "./ui.js";

const list = $("#conversations");
const log = $("#messages");
const title = $("#chat-title");
const prompt = $("#prompt");
const errorBox = $("#chat-error");
const renameForm = $("#rename-form");
const pendingList = $("#pending-files");
const webSearch = $("#web-search");

let conversationId = null; // the open conversation; null for a new chat
let lastUserMessage = null; // {id, text}: what Regenerate answers again
let run = null; // the reply being streamed into the page: {controller, stopping}
let nextPage = null; // the conversation list's next page
let pending = []; // files chosen for the next message: {file, item, part: Promise<file part>}
let sending = false; // between Send and the start of the stream (uploads may still be running)

export async function loadConversations() {
  const page = await api("/api/chat/conversations/");
  list.replaceChildren(...page.results.map(conversationItem));
  const current = page.results.find((conversation) => conversation.id === conversationId);
  if (current) title.textContent = current.title || "Untitled"; // the server titles a new chat
  nextPage = page.next;
  $("#more-conversations").hidden = !nextPage;
}

export async function openConversation(id) {
  run?.controller.abort(); // only this page stops listening: the server's reply goes on
  conversationId = id;
  lastUserMessage = null;
  showError(errorBox, null);
  renameForm.hidden = true;
  title.hidden = false;
  title.textContent = "New chat";
  log.replaceChildren();
  markCurrent();
  if (id) {
    const [conversation, messages] = await Promise.all([
      api(`/api/chat/conversations/${id}/`),
      allPages(api, `/api/chat/conversations/${id}/messages/`),
    ]);
    if (conversationId !== id) return; // another conversation was opened meanwhile
    title.textContent = conversation.title || "Untitled";
    log.replaceChildren(...messages.map(messageItem));
    const lastUser = messages.findLast((message) => message.role === "user");
    lastUserMessage = lastUser && { id: lastUser.id, text: lastUser.content };
    log.lastElementChild?.scrollIntoView({ block: "end" });
    // A reply still streaming (or not begun yet) is running on the server: join it.
    const last = messages.at(-1);
    if (last?.status === "streaming" || last?.role === "user") resumeReply(id);
  }
  updateControls();
  prompt.focus();
}

function conversationItem(conversation) {
  const current = conversation.id === conversationId ? "page" : null;
  const link = el("a", { href: `#/chat/${conversation.id}`, "aria-current": current },
    conversation.title || "Untitled");
  const details = `${conversation.message_count} messages · ${formatDate(conversation.updated_at)}`;
  return el("li", { "data-id": conversation.id }, link, el("small", { class: "muted" }, details));
}

/** Shows the open conversation's new title, in its header and in the list. */
function showTitle(text) {
  if (typeof text !== "string" || !text) return;
  if (renameForm.hidden) title.textContent = text; // not while the user is typing their own
  const link = [...list.children].find((item) => item.dataset.id === conversationId)?.querySelector("a");
  if (link) link.textContent = text;
}

function markCurrent() {
  for (const item of list.children) {
    const link = item.querySelector("a");
    if (item.dataset.id === conversationId) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// Messages ----------------------------------------------------------------------------------------

/** A URL from the API that is safe as a link or an image source (same origin or http(s)). */
function safeUrl(url) {
  if (typeof url !== "string" || !url) return null;
  try {
    const parsed = new URL(url, location.href);
    return ["http:", "https:"].includes(parsed.protocol) ? parsed.href : null;
  } catch {
    return null;
  }
}

/** A file part as a thumbnail (images) or a file name with its type. */
function attachmentItem({ mediaType = "", url, filename }) {
  const href = safeUrl(url);
  const name = filename || mediaType || "file";
  const link = (...content) =>
    href ? el("a", { href, target: "_blank", rel: "noopener noreferrer" }, ...content) : content[0];
  if (href && mediaType.startsWith("image/")) {
    const image = el("img", { src: href, alt: name, title: name, loading: "lazy" });
    return el("li", { class: "attachment image" }, link(image));
  }
  return el("li", { class: "attachment file" },
    link(el("span", { class: "filename" }, name)), el("span", { class: "chip" }, mediaType || "file"));
}

const attachmentList = (files) =>
  el("ul", { class: "attachments", "aria-label": "Attachments" }, ...files.map(attachmentItem));

/** An assistant reply in the page, built from its stored parts or from stream chunks. */
class Reply {
  constructor(item) {
    this.item = item;
    this.thinking = el("details", { class: "reasoning", hidden: true },
      el("summary", {}, "Thinking"), el("div", { class: "reasoning-text markdown" }));
    this.bubble = el("div", { class: "bubble markdown" });
    this.sourceList = el("ol", {});
    this.sources = el("div", { class: "sources", hidden: true },
      el("span", { class: "muted" }, "Sources"), this.sourceList);
    item.querySelector(".meta").before(this.thinking, this.bubble, this.sources);
    this.clear();
  }

  /** Forgets everything shown: a resumed stream replays the reply from its start. */
  clear() {
    this.text = "";
    this.reasoning = "";
    this.sourceUrls = new Set();
    this.thinking.hidden = true;
    this.thinking.classList.remove("live");
    this.thinking.querySelector(".reasoning-text").replaceChildren();
    this.bubble.replaceChildren();
    this.sourceList.replaceChildren();
    this.sources.hidden = true;
  }

  startReasoning() {
    if (this.reasoning) this.reasoning += "\n\n"; // a second thought summary: a new paragraph
    this.thinking.hidden = false;
    this.thinking.classList.add("live");
  }

  appendReasoning(delta) {
    this.thinking.hidden = false;
    this.reasoning += delta;
    this.thinking.querySelector(".reasoning-text").replaceChildren(renderMarkdown(this.reasoning));
  }

  endReasoning() {
    this.thinking.classList.remove("live");
  }

  // The whole text is parsed again on each delta: markdown is not incremental (a later "**" can
  // turn earlier text bold), and marked parses a long reply in about a millisecond.
  appendText(delta) {
    this.text += delta;
    this.bubble.replaceChildren(renderMarkdown(this.text));
  }

  addSource({ url, title }) {
    const href = safeUrl(url);
    if (!href || this.sourceUrls.has(href)) return;
    this.sourceUrls.add(href);
    const label = title || new URL(href).hostname;
    const link = el("a", { href, target: "_blank", rel: "noopener noreferrer" }, label);
    this.sourceList.append(el("li", {}, link));
    this.sources.hidden = false;
  }

  /** Shows a stored message's parts (or its `content`, from a server without parts). */
  showParts(parts, content) {
    let text = "";
    for (const part of parts ?? []) {
      if (part.type === "reasoning") {
        this.startReasoning();
        this.appendReasoning(part.text ?? "");
        this.endReasoning();
      } else if (part.type === "text") text += part.text ?? "";
      else if (part.type === "source-url") this.addSource(part);
    }
    const files = (parts ?? []).filter((part) => part.type === "file");
    if (files.length) this.bubble.before(attachmentList(files));
    this.appendText(parts?.some((part) => part.type === "text") ? text : content);
  }
}

const replies = new WeakMap(); // assistant <li> → its Reply

function messageItem({ id, role, content = "", parts, status = "complete", metadata, ...details }) {
  const item = el("li", { class: `message ${role}`, "data-id": id },
    el("span", { class: "role" }, { user: "You", assistant: "Assistant" }[role] ?? "System"),
    el("small", { class: "meta" }));
  if (role === "assistant") {
    const reply = new Reply(item);
    replies.set(item, reply);
    reply.showParts(parts, content);
    item.append(feedbackControls(item, metadata?.feedback ?? null)); // shown once it is complete
  } else {
    const files = (parts ?? []).filter((part) => part.type === "file");
    const text = parts?.some((part) => part.type === "text")
      ? parts.filter((part) => part.type === "text").map((part) => part.text).join("")
      : content;
    item.querySelector(".meta").before(
      ...(files.length ? [attachmentList(files)] : []),
      el("div", { class: "bubble" }, text),
    );
  }
  setStatus(item, status, details);
  return item;
}

/** Marks a message complete, streaming, interrupted or error, with its model and token count. */
function setStatus(item, status, { model, total_tokens: tokens, finish_reason: reason } = {}) {
  item.dataset.status = status;
  const notes = [
    status !== "complete" && status,
    reason && reason !== "stop" && `finish: ${reason}`,
    model,
    tokens && `${tokens} tokens`,
  ];
  item.querySelector(".meta").textContent = notes.filter(Boolean).join(" · ");
}

function updateControls() {
  const streaming = run !== null;
  $("#send").hidden = streaming;
  $("#send").disabled = sending; // waiting for the attachments' uploads to finish
  $("#stop").hidden = !streaming;
  const answered = log.lastElementChild?.classList.contains("assistant");
  $("#regenerate").hidden = streaming || sending || !lastUserMessage || !answered;
  $("#chat-actions").hidden = !conversationId || !renameForm.hidden;
}

// Streaming ---------------------------------------------------------------------------------------

/** Reads one reply's stream into `item`. Returns when the stream ends. */
async function readReply(response, item, { userText = null } = {}) {
  const reply = replies.get(item);
  let unsure = false; // whether the stream's end leaves the reply's status in doubt
  for await (const chunk of readFrames(response)) {
    if (chunk.type === "start") {
      item.dataset.id = chunk.messageId;
      const { conversationId: id, userMessageId } = chunk.messageMetadata ?? {};
      if (userText) lastUserMessage = { id: userMessageId, text: userText };
      if (id && id !== conversationId) {
        conversationId = id; // a new chat: the server made the conversation
        history.replaceState(null, "", `#/chat/${id}`);
      }
      if (run?.stopping) stop(); // Stop was pressed before the conversation was known
      loadConversations().catch(() => {});
    } else if (chunk.type === "reasoning-start") {
      reply.startReasoning();
    } else if (chunk.type === "reasoning-delta") {
      reply.appendReasoning(chunk.delta);
    } else if (chunk.type === "reasoning-end") {
      reply.endReasoning();
    } else if (chunk.type === "text-delta") {
      reply.appendText(chunk.delta);
      item.scrollIntoView({ block: "end" });
    } else if (chunk.type === "source-url") {
      reply.addSource(chunk);
    } else if (chunk.type === "data-title") {
      showTitle(chunk.data?.title); // the server titled the new chat after its first reply
    } else if (chunk.type === "finish") {
      const usage = chunk.messageMetadata?.usage ?? {};
      const status = item.dataset.status === "error" ? "error" : "complete";
      setStatus(item, status, { total_tokens: usage.totalTokens, finish_reason: chunk.finishReason });
      // "other": stopped (here or in another tab) or cut short; the stored message tells which.
      if (chunk.finishReason === "other") unsure = true;
    } else if (chunk.type === "abort") {
      setStatus(item, "interrupted");
    } else if (chunk.type === "error") {
      setStatus(item, "error");
      showError(errorBox, `The model failed: ${chunk.errorText}`);
    }
  }
  reply.endReasoning();
  if (item.dataset.status === "streaming") setStatus(item, "interrupted"); // the stream was cut
  if (unsure && !run?.stopping) await refreshMessage(conversationId, item);
}

/**
 * Runs `open(signal)` (which fetches a reply's stream) and reads it into `item`, with the Stop
 * button shown meanwhile. `onRefused(error)` handles an error before the stream began; it returns
 * whether it did.
 */
async function streamInto(item, open, { userText = null, onRefused = () => false } = {}) {
  const current = (run = { controller: new AbortController(), stopping: false });
  updateControls();
  try {
    const response = await open(current.controller.signal);
    if (response) await readReply(response, item, { userText });
  } catch (error) {
    if (error.name === "AbortError") {
      setStatus(item, "interrupted");
    } else {
      if (!replies.get(item).text) item.remove();
      if (!onRefused(error)) showError(errorBox, error);
    }
  } finally {
    replies.get(item).endReasoning();
    if (current.stopping && item.isConnected) setStatus(item, "interrupted"); // Stop was pressed
    if (run === current) run = null;
    updateControls();
    loadConversations().catch(() => {});
  }
}

function appendReply() {
  const item = log.appendChild(messageItem({ role: "assistant", status: "streaming" }));
  item.scrollIntoView({ block: "end" });
  return item;
}

/** Sends a message (or a regenerate request) and streams the reply into a new bubble. */
async function sendMessage(body, { userText = null, files = [], onRefused } = {}) {
  showError(errorBox, null);
  const parts = [{ type: "text", text: userText }, ...files];
  const userItem = userText !== null && log.appendChild(messageItem({ role: "user", parts }));
  const item = appendReply();
  const refused = (error) => {
    // Refused before it was saved (or a reply is already running): the user's message comes back.
    if (![400, 409, 413, 429].includes(error.status)) return false;
    if (userItem) userItem.remove();
    onRefused?.();
    if (error.status === 409 && conversationId) {
      openConversation(conversationId).then(() => showError(errorBox, error), () => {});
      return true; // the running reply is shown instead
    }
    return false;
  };
  const open = (signal) => request("/api/chat/stream/", { method: "POST", body, signal });
  await streamInto(item, open, { userText, onRefused: refused });
}

/** Joins the reply running in conversation `id`, if any, from its first chunk. */
function resumeReply(id) {
  const last = log.lastElementChild;
  const item = last?.classList.contains("assistant") && last.dataset.status === "streaming"
    ? last : appendReply();
  const open = async (signal) => {
    const response = await request(`/api/chat/stream/${id}/stream`, { signal });
    if (response.status !== 204) {
      replies.get(item).clear(); // the stream replays the reply from its start
      return response;
    }
    if (item === last) refreshMessage(id, item); // it finished while the page loaded
    else item.remove(); // nothing is running
    return null;
  };
  return streamInto(item, open);
}

/** Replaces `item` with the stored version of the conversation's last message (if it is). */
async function refreshMessage(id, item) {
  const page = await api(`/api/chat/conversations/${id}/messages/?page_size=1&page=last`)
    .catch(() => null);
  const message = page?.results?.at(-1);
  const same = message && (!item.dataset.id || message.id === item.dataset.id);
  if (same && conversationId === id && item.isConnected) item.replaceWith(messageItem(message));
  updateControls();
}

/**
 * Catches up with what another tab did in the open conversation while this one was hidden (a
 * message sent, a reply now running or finished): shows the conversation again, joining its
 * running reply.
 */
async function catchUp() {
  const id = conversationId;
  if (!id || run || sending || $("#chat-view").hidden) return;
  const page = await api(`/api/chat/conversations/${id}/messages/?page_size=1&page=last`)
    .catch(() => null);
  const last = page?.results?.at(-1);
  const shown = log.lastElementChild;
  if (!last || id !== conversationId || run || sending) return;
  if (last.id !== shown?.dataset.id || last.status !== shown?.dataset.status) openConversation(id);
}

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") catchUp();
});

/** Asks the server to stop the running reply, then stops reading it. */
async function stop() {
  if (!run) return;
  const current = run;
  current.stopping = true;
  if (!conversationId) return; // a new chat's id comes with the first chunk: stop() runs again then
  try {
    const url = `/api/chat/conversations/${conversationId}/stop/`;
    const { stopped } = await api(url, { method: "POST" });
    if (!stopped) {
      current.stopping = false; // it had just finished: its stream ends by itself
      return;
    }
  } catch (error) {
    if (error.status !== 404) showError(errorBox, error); // 404: a server without the endpoint
  }
  current.controller.abort();
}

// Attachments -------------------------------------------------------------------------------------

/** Starts uploading `files` and lists them above the message box until it is sent. */
function attach(files) {
  const maxBytes = Number(composer.dataset.maxBytes) || Infinity;
  for (const file of files) {
    if (file.size > maxBytes) {
      showError(errorBox, `${file.name} is larger than ${Math.floor(maxBytes / 2 ** 20)} MiB.`);
      continue;
    }
    const remove = el("button", { type: "button", class: "ghost remove", "aria-label": `Remove ${file.name}` }, "×");
    const progress = el("progress", { max: "1", value: "0", "aria-label": `Uploading ${file.name}` });
    const preview = file.type.startsWith("image/")
      ? el("img", { src: URL.createObjectURL(file), alt: "" })
      : el("span", { class: "chip" }, file.type || "file");
    const item = el("li", { class: "attachment pending" }, preview,
      el("span", { class: "filename" }, file.name), progress, remove);
    const controller = new AbortController();
    const form = new FormData();
    form.append("file", file);
    if (file.type) form.append("mediaType", file.type);
    const entry = { file, item, controller };
    entry.part = upload("/api/chat/attachments/", form, {
      signal: controller.signal,
      onProgress: (fraction) => { progress.value = fraction; },
    }).then(({ mediaType, url, filename }) => {
      progress.value = 1;
      item.classList.add("uploaded");
      return { type: "file", mediaType, url, filename: filename || file.name };
    });
    entry.part.catch((error) => {
      discard(entry);
      if (error.name !== "AbortError") showError(errorBox, `${file.name}: ${error.message}`);
    });
    remove.addEventListener("click", () => { controller.abort(); discard(entry); });
    pending.push(entry);
    pendingList.append(item);
  }
  pendingList.hidden = pending.length === 0;
}

function discard(entry) {
  pending = pending.filter((other) => other !== entry);
  const preview = entry.item.querySelector("img");
  if (preview) URL.revokeObjectURL(preview.src);
  entry.item.remove();
  pendingList.hidden = pending.length === 0;
}

$("#attach").addEventListener("change", (event) => {
  attach([...event.target.files]);
  event.target.value = ""; // choosing the same file again is a new attachment
});

prompt.addEventListener("paste", (event) => {
  const files = [...(event.clipboardData?.files ?? [])];
  if (!files.length) return; // plain text pastes as usual
  event.preventDefault();
  attach(files);
});

const composer = $("#composer");
composer.addEventListener("dragover", (event) => {
  if (!event.dataTransfer?.types.includes("Files")) return;
  event.preventDefault();
  composer.classList.add("dropping");
});
composer.addEventListener("dragleave", () => composer.classList.remove("dropping"));
composer.addEventListener("drop", (event) => {
  composer.classList.remove("dropping");
  if (!event.dataTransfer?.files.length) return;
  event.preventDefault();
  attach([...event.dataTransfer.files]);
});

// Controls ----------------------------------------------------------------------------------------

composer.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = prompt.value.trim();
  if (!text || run || sending) return;
  const chosen = pending;
  sending = true;
  updateControls();
  let files;
  try {
    files = await Promise.all(chosen.map((entry) => entry.part)); // uploads still running
  } catch {
    return; // the failed upload is explained and removed: the message waits for another Send
  } finally {
    sending = false;
    updateControls();
  }
  prompt.value = "";
  pending = [];
  pendingList.replaceChildren();
  pendingList.hidden = true;
  const body = {
    message: text,
    ...(conversationId && { conversation_id: conversationId }),
    ...(files.length && { files }),
    ...(webSearch.checked && { webSearch: true }),
  };
  const giveBack = () => {
    prompt.value ||= text;
    pending = chosen;
    pendingList.replaceChildren(...chosen.map((entry) => entry.item));
    pendingList.hidden = chosen.length === 0;
  };
  await sendMessage(body, { userText: text, files, onRefused: giveBack });
});

prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    composer.requestSubmit();
  }
});

$("#stop").addEventListener("click", () => stop());

$("#regenerate").addEventListener("click", () => {
  log.lastElementChild.remove(); // the server replaces the last reply too
  const { id, text } = lastUserMessage;
  const message = { id, role: "user", parts: [{ type: "text", text }] };
  const body = { id: conversationId, messages: [message], trigger: "regenerate-message" };
  if (webSearch.checked) body.webSearch = true;
  sendMessage(body);
});

$("#more-conversations").addEventListener("click", async () => {
  try {
    const page = await api(relative(nextPage));
    list.append(...page.results.map(conversationItem));
    nextPage = page.next;
    $("#more-conversations").hidden = !nextPage;
  } catch (error) {
    showError(errorBox, error);
  }
});

$("#rename").addEventListener("click", () => {
  renameForm.hidden = false;
  title.hidden = true;
  updateControls();
  $("#rename-input").value = title.textContent;
  $("#rename-input").select();
});

function closeRename() {
  renameForm.hidden = true;
  title.hidden = false;
  updateControls();
}

$("#rename-cancel").addEventListener("click", closeRename);
renameForm.addEventListener("keydown", (event) => event.key === "Escape" && closeRename());

renameForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const body = { title: $("#rename-input").value.trim() };
    const url = `/api/chat/conversations/${conversationId}/`;
    const conversation = await api(url, { method: "PATCH", body });
    title.textContent = conversation.title;
    closeRename();
    $("#rename").focus();
    await loadConversations();
  } catch (error) {
    showError(errorBox, error);
  }
});

$("#delete").addEventListener("click", async () => {
  if (!confirm(`Delete "${title.textContent}" and all its messages?`)) return;
  try {
    await api(`/api/chat/conversations/${conversationId}/`, { method: "DELETE" });
    location.hash = "#/chat"; // the router opens a new chat and reloads the list
  } catch (error) {
    showError(errorBox, error);
  }
});
