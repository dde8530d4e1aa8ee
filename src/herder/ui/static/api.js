// The one way the UI talks to the server: the public /api/v1 routes, JSON in and out. Changes
// carry the session's CSRF value (the readable herder_csrf cookie); a 401 sends the page back
// to sign-in.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)herder_csrf=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : null;
}

export function url(path, query) {
  const target = new URL('/api/v1' + path, location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value === null || value === undefined || value === '') continue;
    for (const one of [value].flat()) target.searchParams.append(key, one);
  }
  return target;
}

export async function api(method, path, {query, body, signal} = {}) {
  const headers = {Accept: 'application/json'};
  if (method !== 'GET') {
    const token = csrfToken();
    if (token) headers['X-CSRF-Token'] = token;
  }
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(url(path, query), {
    method, headers, signal, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = (data && data.error) || {};
    const failure = new ApiError(response.status, error.code || 'error',
      error.message || `${response.status} ${response.statusText}`);
    if (response.status === 401 && path !== '/session') {
      window.dispatchEvent(new CustomEvent('herder:unauthorized', {detail: failure}));
    }
    throw failure;
  }
  return data;
}

export const get = (path, query, options) => api('GET', path, {query, ...options});
export const post = (path, body, query) => api('POST', path, {body, query});
export const del = (path, query) => api('DELETE', path, {query});
