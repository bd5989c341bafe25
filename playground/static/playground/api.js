// The API client: JSON requests with a bearer token that is refreshed shortly before it expires.
const STORAGE_KEY = "playground.tokens";
const REFRESH_MARGIN_MS = 60_000;

let tokens = JSON.parse(localStorage.getItem(STORAGE_KEY) || "null"); // {access, refresh} or null
let refreshing = null; // the refresh in flight, shared by concurrent requests
let sessionExpired = () => {};

/** A refused request: HTTP status, the API's error code, a message to show, Retry-After seconds. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    Object.assign(this, { name: "ApiError", status, code, retryAfter });
  }
}

export const isLoggedIn = () => tokens !== null;
export const onSessionExpired = (handler) => { sessionExpired = handler; };
export const logOut = () => saveTokens(null);

export async function logIn(username, password) {
  const body = { username, password };
  saveTokens(await api("/api/auth/token/", { method: "POST", body, auth: false }));
}

export async function signUp(username, password, email) {
  const body = { username, password, ...(email && { email }) };
  await api("/api/auth/register/", { method: "POST", body, auth: false });
  await logIn(username, password);
}

/** fetch() for the API: sends `body` as JSON, adds the token, throws ApiError unless 2xx. */
export async function request(path, { method = "GET", body, headers = {}, signal, auth = true } = {}) {
  const init = { method, signal, headers: { "Content-Type": "application/json", ...headers } };
  if (body !== undefined) init.body = JSON.stringify(body);
  if (auth) init.headers.Authorization = `Bearer ${await accessToken()}`;
  const response = await fetch(path, init);
  if (response.status === 401 && auth) throw expire();
  if (!response.ok) throw await errorFrom(response);
  return response;
}

/** request(), then the parsed JSON body (null for 204 No Content). */
export async function api(path, options) {
  const response = await request(path, options);
  return response.status === 204 ? null : response.json();
}

/** A JWT's claims (its payload is readable by anyone; only the server checks the signature). */
function claims(jwt) {
  return JSON.parse(atob(jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
}

/** Whether the access token expires within a minute (or a quarter of its lifetime, if shorter). */
function accessExpiresSoon() {
  const { exp, iat } = claims(tokens.access);
  const margin = Math.min(REFRESH_MARGIN_MS, ((exp - iat) * 1000) / 4);
  return exp * 1000 - Date.now() < margin;
}

async function accessToken() {
  if (!tokens || claims(tokens.refresh).exp * 1000 < Date.now()) throw expire();
  if (accessExpiresSoon()) {
    refreshing ??= refresh().finally(() => { refreshing = null; });
    await refreshing;
  }
  return tokens.access;
}

async function refresh() {
  const response = await fetch("/api/auth/token/refresh/", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh: tokens.refresh }),
  });
  if (!response.ok) throw expire();
  saveTokens({ ...tokens, ...(await response.json()) }); // a rotated refresh token replaces ours
}

function saveTokens(value) {
  tokens = value;
  if (value) localStorage.setItem(STORAGE_KEY, JSON.stringify(value));
  else localStorage.removeItem(STORAGE_KEY);
}

function expire() {
  saveTokens(null);
  sessionExpired();
  return new ApiError(401, "session_expired", "Your session has expired: please log in again.");
}

/**
 * POSTs a FormData as multipart and resolves to the JSON answer; `onProgress(fraction)` follows
 * the upload. XMLHttpRequest rather than fetch() because only XHR reports upload progress.
 */
export async function upload(path, form, { onProgress = () => {}, signal } = {}) {
  const authorization = `Bearer ${await accessToken()}`;
  const xhr = new XMLHttpRequest();
  const done = new Promise((resolve, reject) => {
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => resolve());
    xhr.addEventListener("error", () => reject(new TypeError("Network error")));
    xhr.addEventListener("abort", () => reject(new DOMException("Upload aborted", "AbortError")));
  });
  signal?.addEventListener("abort", () => xhr.abort());
  xhr.open("POST", path);
  xhr.setRequestHeader("Authorization", authorization);
  xhr.responseType = "text";
  xhr.send(form);
  await done;
  let body = null;
  try {
    body = JSON.parse(xhr.responseText);
  } catch {
    // not JSON (a proxy's error page): the status alone explains it below
  }
  if (xhr.status === 401) throw expire();
  if (xhr.status < 200 || xhr.status >= 300) {
    throw errorFromBody(xhr.status, xhr.statusText, body ?? {}, xhr.getResponseHeader("Retry-After"));
  }
  return body;
}

/** The API's JSON error {"error": {code, message, details?}} as an ApiError. */
async function errorFrom(response) {
  const body = await response.json().catch(() => ({}));
  const { status, statusText, headers } = response;
  return errorFromBody(status, statusText, body, headers.get("Retry-After"));
}

function errorFromBody(status, statusText, body, retryAfterHeader) {
  const { code = `http_${status}`, details } = body.error ?? {};
  let message = body.error?.message ?? (statusText || "Request failed.");
  if (status === 400 && details && typeof details === "object") { // which fields were wrong
    const problems = Object.entries(details).map(([field, text]) => `${field}: ${[text].flat().join(" ")}`);
    message += " " + problems.join("; ");
  }
  const retryAfter = Number(retryAfterHeader) || null;
  if (status === 429) message = `Too many requests: wait ${retryAfter ?? "a few"} seconds and try again.`;
  if (status >= 500) message = `The server failed (${status}): ${message}`;
  return new ApiError(status, code, message, retryAfter);
}
