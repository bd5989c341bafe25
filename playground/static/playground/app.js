// The page: sign in, then route between the chat, agents and usage views by the URL's hash:
// #/chat, #/chat/<conversation id>, #/agents, #/agents/<run id>, #/usage.
import { api, isLoggedIn, logIn, logOut, onSessionExpired, signUp } from "./api.js";
import { loadRuns, openRun } from "./agents.js";
import { loadConversations, openConversation } from "./chat.js";
import { $, showError } from "./ui.js";
import { loadUsage } from "./usage.js";

const VIEWS = ["auth", "chat", "agents", "usage"];

function show(view) {
  for (const name of VIEWS) $(`#${name}-view`).hidden = name !== view;
  for (const link of document.querySelectorAll("#tabs a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const signedIn = view !== "auth";
  $("#tabs").hidden = $("#logout").hidden = !signedIn;
  $("#sidebar-toggle").hidden = !["chat", "agents"].includes(view);
  toggleSidebar(false);
}

async function route() {
  if (!isLoggedIn()) return show("auth");
  const [, view = "chat", id = null] = location.hash.split("/");
  const current = ["agents", "usage"].includes(view) ? view : "chat";
  show(current);
  try {
    if (current === "agents") await Promise.all([loadRuns(), openRun(id)]);
    else if (current === "usage") await loadUsage();
    else await Promise.all([loadConversations(), openConversation(id)]);
  } catch (error) {
    showError($(`#${current}-error`), error);
  }
}

async function signedIn() {
  $("#auth-form").reset();
  showError($("#auth-error"), null);
  const me = await api("/api/auth/me/");
  $("#whoami").textContent = me.username;
  await route();
}

function toggleSidebar(open = !document.body.classList.contains("sidebar-open")) {
  document.body.classList.toggle("sidebar-open", open);
  $("#sidebar-toggle").setAttribute("aria-expanded", String(open));
}

$("#auth-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const { username, password, email } = Object.fromEntries(new FormData(event.target));
  try {
    if (event.submitter?.value === "register") await signUp(username, password, email);
    else await logIn(username, password);
    await signedIn();
  } catch (error) {
    showError($("#auth-error"), error);
  }
});

$("#logout").addEventListener("click", () => {
  logOut();
  history.replaceState(null, "", location.pathname);
  location.reload(); // drops the last user's page state and any stream in flight
});

onSessionExpired(() => {
  $("#whoami").textContent = "";
  show("auth");
  showError($("#auth-error"), "Your session has expired: please log in again.");
});

$("#sidebar-toggle").addEventListener("click", () => toggleSidebar());
document.addEventListener("click", (event) => {
  const link = event.target.closest("a");
  if (link || !event.target.closest(".sidebar, #sidebar-toggle")) toggleSidebar(false);
  if (link?.matches(".sidebar .button") && link.hash === location.hash) route(); // "New" again
});
document.addEventListener("keydown", (event) => event.key === "Escape" && toggleSidebar(false));
window.addEventListener("hashchange", route);

fetch("/healthz").then((response) => response.json()).then(({ provider }) => {
  $("#provider").hidden = false;
  $("#provider").textContent = provider === "offline" ? "offline model (no API key)" : provider;
}, () => {});

if (isLoggedIn()) signedIn().catch((error) => showError($("#auth-error"), error));
else route();
