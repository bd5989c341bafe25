// Chat: the conversation list, one conversation's messages, and replies streamed from
// POST /api/chat/stream/ (Vercel AI SDK UI message stream: start, text-delta…, finish | error).
import { api, request } from "./api.js";
import { readFrames } from "./stream.js";
import { $, allPages, el, formatDate, relative, showError } from "./ui.js";

const list = $("#conversations");
const log = $("#messages");
const title = $("#chat-title");
const prompt = $("#prompt");
const errorBox = $("#chat-error");
const renameForm = $("#rename-form");

let conversationId = null; // the open conversation; null for a new chat
let lastUserMessage = null; // {id, text}: what Regenerate answers again
let controller = null; // aborts the reply being streamed
let nextPage = null; // the conversation list's next page

export async function loadConversations() {
  const page = await api("/api/chat/conversations/");
  list.replaceChildren(...page.results.map(conversationItem));
  const current = page.results.find((conversation) => conversation.id === conversationId);
  if (current) title.textContent = current.title || "Untitled"; // the server titles a new chat
  nextPage = page.next;
  $("#more-conversations").hidden = !nextPage;
}

export async function openConversation(id) {
  controller?.abort();
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
    title.textContent = conversation.title || "Untitled";
    log.replaceChildren(...messages.map(messageItem));
    const last = messages.findLast((message) => message.role === "user");
    lastUserMessage = last && { id: last.id, text: last.content };
    log.lastElementChild?.scrollIntoView({ block: "end" });
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

function markCurrent() {
  for (const item of list.children) {
    const link = item.querySelector("a");
    if (item.dataset.id === conversationId) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function messageItem({ role, content = "", status = "complete", ...details }) {
  const item = el("li", { class: `message ${role}` },
    el("span", { class: "role" }, role === "user" ? "You" : "Assistant"),
    el("div", { class: "bubble" }, content),
    el("small", { class: "meta" }));
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
  const streaming = controller !== null;
  $("#send").hidden = streaming;
  $("#stop").hidden = !streaming;
  const answered = log.lastElementChild?.classList.contains("assistant");
  $("#regenerate").hidden = streaming || !lastUserMessage || !answered;
  $("#chat-actions").hidden = !conversationId || !renameForm.hidden;
}

/** Streams one reply into a new assistant bubble. `userText` is shown first unless regenerating. */
async function streamReply(body, userText = null) {
  showError(errorBox, null);
  const userItem = userText && log.appendChild(messageItem({ role: "user", content: userText }));
  const reply = log.appendChild(messageItem({ role: "assistant", status: "streaming" }));
  const bubble = reply.querySelector(".bubble");
  reply.scrollIntoView({ block: "end" });
  const abort = (controller = new AbortController());
  updateControls();
  try {
    const options = { method: "POST", body, signal: abort.signal };
    const response = await request("/api/chat/stream/", options);
    for await (const chunk of readFrames(response)) {
      if (chunk.type === "start") {
        const { conversationId: id, userMessageId } = chunk.messageMetadata ?? {};
        if (userText) lastUserMessage = { id: userMessageId, text: userText };
        if (id && id !== conversationId) {
          conversationId = id; // a new chat: the server made the conversation
          history.replaceState(null, "", `#/chat/${id}`);
        }
        loadConversations().catch(() => {});
      } else if (chunk.type === "text-delta") {
        bubble.append(chunk.delta);
        reply.scrollIntoView({ block: "end" });
      } else if (chunk.type === "finish") {
        const usage = chunk.messageMetadata?.usage ?? {};
        const status = reply.dataset.status === "error" ? "error" : "complete";
        const details = { total_tokens: usage.totalTokens, finish_reason: chunk.finishReason };
        setStatus(reply, status, details);
      } else if (chunk.type === "error") {
        setStatus(reply, "error");
        showError(errorBox, `The model failed: ${chunk.errorText}`);
      }
    }
    if (reply.dataset.status === "streaming") setStatus(reply, "interrupted"); // the stream was cut
  } catch (error) {
    if (error.name === "AbortError") {
      setStatus(reply, "interrupted");
    } else {
      if (!bubble.textContent) reply.remove();
      if (error.status === 429 || error.status === 400) {
        userItem?.remove(); // refused before it was saved: give the text back to resend
        prompt.value ||= userText ?? "";
      }
      showError(errorBox, error);
    }
  } finally {
    if (controller === abort) controller = null;
    updateControls();
    loadConversations().catch(() => {});
  }
}

$("#composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = prompt.value.trim();
  if (!text || controller) return;
  prompt.value = "";
  const body = conversationId ? { message: text, conversation_id: conversationId } : { message: text };
  streamReply(body, text);
});

prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("#composer").requestSubmit();
  }
});

$("#stop").addEventListener("click", () => controller?.abort());

$("#regenerate").addEventListener("click", () => {
  log.lastElementChild.remove(); // the server replaces the last reply too
  const { id, text } = lastUserMessage;
  const message = { id, role: "user", parts: [{ type: "text", text }] };
  streamReply({ id: conversationId, messages: [message], trigger: "regenerate-message" });
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
