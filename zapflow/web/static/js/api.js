// The public REST API (/api/v1). A person signs in with e-mail and password: the session lives
// in an HttpOnly cookie scripts cannot read, and every state-changing request echoes the CSRF
// token the API gave (GET /api/v1/me). An integration's API key instead lives in sessionStorage
// (this tab only) and travels in the Authorization header, never in a URL.

const KEY = "zapflow.apiKey";
const listeners = new Set();
const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

export const auth = {
  csrf: null, // the signed-in session's CSRF token (memory only: GET /me tells it again)
  get key() {
    return sessionStorage.getItem(KEY);
  },
  get signedIn() {
    return Boolean(this.key || this.csrf);
  },
  set(key) {
    sessionStorage.setItem(KEY, key);
  },
  session(csrf) {
    this.csrf = csrf;
  },
  // the credential headers of a request (the cookie goes by itself)
  headers(method = "GET", key = this.key) {
    if (key) return { Authorization: `Bearer ${key}` };
    return this.csrf && !SAFE.has(method) ? { "X-CSRF-Token": this.csrf } : {};
  },
  clear() {
    sessionStorage.removeItem(KEY);
    this.csrf = null;
    for (const fn of listeners) fn();
  },
  onSignOut(fn) {
    listeners.add(fn);
  },
};

// Sign-in and link routes live outside /api/v1 (they hand out the credential).
export async function signInRequest(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  }).catch((error) => {
    throw new ApiError(0, { error: { code: "network", message: error.message } });
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export class ApiError extends Error {
  constructor(status, body) {
    const error = body?.error ?? {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || (status ? "http_error" : "network");
    this.details = error.details;
  }
}

export function qs(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value == null || value === "") continue;
    for (const one of Array.isArray(value) ? value : [value]) search.append(name, one);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

// A body is sent as JSON, except a file (Blob) or a form (FormData), sent as they are.
export async function api(path, { method = "GET", body, key = auth.key, signal, text = false } = {}) {
  const headers = auth.headers(method, key);
  const raw = body instanceof Blob || body instanceof FormData;
  if (body !== undefined && !raw) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined || raw ? body : JSON.stringify(body),
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, { error: { code: "network", message: error.message } });
  }
  if (response.status === 204) return null;
  if (text && response.ok) return response.text();
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    if (response.status === 401 && key === auth.key && auth.signedIn) auth.clear();
    throw new ApiError(response.status, data);
  }
  return data;
}

// Every page of a cursor-paged list (for short lists such as users or instances).
export async function all(path, params = {}) {
  const rows = [];
  let cursor = null;
  do {
    const page = await api(path + qs({ ...params, limit: 100, cursor }));
    if (Array.isArray(page)) return page;
    rows.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor);
  return rows;
}
