// The admin API (/api/v1) as the page's session cookie may read it; a 401 goes back to sign-in.

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * GET /api/v1 + path. `optional`: a 404 (a function or key deleted meanwhile) gives null
 * instead of an error. `bytes`: the raw body as an ArrayBuffer.
 */
export async function api(path, { optional = false, bytes = false } = {}) {
  const res = await fetch('/api/v1' + path, {
    credentials: 'same-origin',
    headers: { accept: bytes ? '*/*' : 'application/json' },
  });
  if (res.status === 401) {
    location.assign('/dashboard');
    throw new ApiError(401, 'signed out');
  }
  if (res.status === 404 && optional) return null;
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try {
      message = (await res.json()).error.message || message;
    } catch (_) { /* not JSON: keep the status line */ }
    throw new ApiError(res.status, message);
  }
  return bytes ? res.arrayBuffer() : res.json();
}

export const enc = encodeURIComponent;
/** A KV key as path segments: keys may hold '/', which the route takes as the rest. */
export const encKey = (key) => key.split('/').map(enc).join('/');
