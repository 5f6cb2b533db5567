// The JSON API, as the pages call it: one place for tokens, keys, idempotency and errors.
import { navSignal } from "./view.js";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.code) || (status === 0 ? "network" : "error");
    this.fields = (body && body.fields) || {};
    this.retryAfter = null;
  }
}

const TOKEN = "fairseat.token";

export const session = {
  get token() {
    return localStorage.getItem(TOKEN);
  },
  set token(value) {
    if (value) localStorage.setItem(TOKEN, value);
    else localStorage.removeItem(TOKEN);
  },
};

// A random key for one intended action: kept while the user retries the same action, so
// a double tap or a lost answer never books twice. (crypto.randomUUID needs a secure
// context; a phone on the LAN over plain http is not one, getRandomValues works there.)
export function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function api(method, path, opts = {}) {
  const headers = { Accept: "application/json" };
  const auth = opts.key || session.token;
  if (auth) headers.Authorization = "Bearer " + auth;
  if (opts.idem) headers["Idempotency-Key"] = opts.idem;
  Object.assign(headers, opts.headers || {});
  let body;
  if (opts.text !== undefined) {
    headers["Content-Type"] = opts.type || "text/csv";
    body = opts.text;
  } else if (opts.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(opts.body);
  }
  let resp;
  try {
    // Reads belong to the screen on display; writes finish whatever the user does next.
    const signal = opts.signal || (method === "GET" ? navSignal() : undefined);
    resp = await fetch(path, { method, headers, body, signal });
  } catch (exc) {
    if (exc.name === "AbortError") throw exc;
    throw new ApiError(0, null);
  }
  let data = null;
  try {
    data = await resp.json();
  } catch (exc) {
    // Aborted while the body arrived: the screen is gone, as for an aborted request.
    if (exc.name === "AbortError") throw exc;
    data = null; // no body (204) or not JSON
  }
  if (!resp.ok) {
    const err = new ApiError(resp.status, data);
    err.retryAfter = resp.headers.get("Retry-After");
    if (resp.status === 401 && !opts.key) session.token = null;
    throw err;
  }
  return data;
}

export const get = (path, opts) => api("GET", path, opts);
export const post = (path, body, opts = {}) => api("POST", path, { ...opts, body });
