// The public REST API (/api/v1). The API key lives in sessionStorage (this tab only) and travels
// in the Authorization header, never in a URL.

const KEY = "zapflow.apiKey";
const listeners = new Set();

export const auth = {
  get key() {
    return sessionStorage.getItem(KEY);
  },
  set(key) {
    sessionStorage.setItem(KEY, key);
  },
  clear() {
    sessionStorage.removeItem(KEY);
    for (const fn of listeners) fn();
  },
  onSignOut(fn) {
    listeners.add(fn);
  },
};

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

export async function api(path, { method = "GET", body, key = auth.key, signal, text = false } = {}) {
  const headers = { Authorization: `Bearer ${key}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
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
    if (response.status === 401 && key === auth.key) auth.clear();
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
