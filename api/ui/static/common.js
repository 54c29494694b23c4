// What every page's script uses: calls to the JSON API with the session cookie (and its CSRF
// token on state changes), small DOM builders, formatting, polling, and the sign-out button.

const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// fetch() an API path; JSON bodies are sent as JSON, others (a File) as they are. Answers the
// parsed JSON (or the Response, with raw: true); an error answer throws ApiError with its msg.
export async function api(path, { method = "GET", body, raw = false } = {}) {
  // Every call, GETs too: the API takes the cookie only with the token (api/ui/session.py).
  const headers = { "X-CSRF-Token": csrf };
  let payload = body;
  if (body !== undefined && !(body instanceof Blob)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  if (response.status === 401) {
    window.location.assign("/?next=" + encodeURIComponent(location.pathname + location.search));
    throw new ApiError(401, "signed out");
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const error = await response.json();
      if (error.msg) message = error.msg;
    } catch (_) {
      // not JSON: keep the status line
    }
    throw new ApiError(response.status, message);
  }
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, value);
  }
  return search.toString();
}

// el("a", {href: "/x", class: "y"}, "text", child...): an element; attributes starting with
// "on" are listeners.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function clear(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined));
}

export function $(selector) {
  return document.querySelector(selector);
}

export function formatTime(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const moment = new Date(seconds * 1000);
  return moment.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

export function formatIso(value) {
  return value ? formatTime(Date.parse(value) / 1000) : "–";
}

export function formatSize(bytes) {
  if (bytes === null || bytes === undefined) return "–";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

// The seed's state names, shown as words, with a class that colours them.
const STATE_WORDS = {
  RUNNING: "running",
  PAUSED: "paused",
  STOPPED_AT_CHECKPOINT: "stopped at checkpoint",
  COMPLETE: "complete",
  FAILED: "failed",
  CANCELLED: "cancelled",
};

export function stateBadge(state, queued = false) {
  const word = queued ? "queued" : STATE_WORDS[state] || String(state).toLowerCase();
  return el("span", { class: `badge state-${String(state).toLowerCase()}` }, word);
}

export function progressBar(fraction, label) {
  const percent = Math.round((fraction || 0) * 100);
  return el(
    "span",
    { class: "progress-cell" },
    el("progress", { max: "100", value: String(percent), "aria-label": label }),
    el("span", { class: "muted" }, `${percent}%`),
  );
}

// A message in the page's live region; errors stay until the next message.
export function notify(message, kind = "info") {
  const box = $("#notice");
  if (!box) return;
  box.textContent = message;
  box.className = `notice ${kind}`;
  box.hidden = false;
  if (kind === "info") {
    clearTimeout(notify.timer);
    notify.timer = setTimeout(() => {
      box.hidden = true;
    }, 4000);
  }
}

export function showError(error) {
  notify(error instanceof Error ? error.message : String(error), "error");
}

// Run ``refresh`` now and then every ``ms`` while the page is visible; one call at a time.
export function poll(refresh, ms = 2000) {
  let busy = false;
  const tick = async () => {
    if (busy || document.hidden) return;
    busy = true;
    try {
      await refresh();
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) showError(error);
    } finally {
      busy = false;
    }
  };
  tick();
  const timer = setInterval(tick, ms);
  return () => clearInterval(timer);
}

export function drivePath(path) {
  return "/api/v1/drive/" + path.split("/").map(encodeURIComponent).join("/");
}

export const me = {
  username: document.body.dataset.user || "",
  admin: document.body.dataset.admin === "true",
};

$("#sign-out")?.addEventListener("click", async () => {
  try {
    await api("/ui/session", { method: "DELETE" });
  } finally {
    window.location.assign("/");
  }
});
