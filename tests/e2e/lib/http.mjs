// The service/admin HTTP API, through fetch.

import assert from 'node:assert/strict';

/**
 * One request. `token` defaults to the server's service token; pass `null` for no
 * Authorization header, or `authorization` for a raw header value.
 * `body` is sent as JSON unless `rawBody` is given.
 * Resolves to `{ status, headers, text, json }` (`json` is undefined when the body is not JSON).
 */
export async function request(server, method, path, { body, rawBody, token = server.serviceToken, authorization, headers = {} } = {}) {
  const h = { accept: 'application/json', ...headers };
  if (authorization !== undefined) h.authorization = authorization;
  else if (token !== null) h.authorization = `Bearer ${token}`;
  let payload;
  if (rawBody !== undefined) payload = rawBody;
  else if (body !== undefined) {
    payload = JSON.stringify(body);
    h['content-type'] = 'application/json';
  }
  const res = await fetch(new URL(path, server.url), { method, headers: h, body: payload, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** Asserts `res` is the JSON error `{ error: { code, message } }` with `status` (a number or a list of allowed ones). */
export function assertHttpError(res, status, code) {
  const allowed = Array.isArray(status) ? status : [status];
  assert.ok(allowed.includes(res.status), `expected HTTP ${allowed.join(' or ')}, got ${res.status}: ${res.text}`);
  assert.ok(res.json && typeof res.json.error === 'object', `expected a JSON { error } body, got: ${res.text}`);
  assert.equal(res.json.error.code, code, `error code (body: ${res.text})`);
  assert.equal(typeof res.json.error.message, 'string', 'error.message is a string');
  return res.json.error;
}

/** Asserts a 2xx answer and returns its JSON. */
export function assertOk(res, what = 'request') {
  assert.ok(res.status >= 200 && res.status < 300, `${what}: expected 2xx, got ${res.status}: ${res.text}`);
  return res.json;
}

/** `PUT /api/users/{id}`. */
export async function upsertUser(server, id, { displayName, avatarUrl, role }, opts = {}) {
  const body = { displayName, role };
  if (avatarUrl !== undefined) body.avatarUrl = avatarUrl;
  return request(server, 'PUT', `/api/users/${encodeURIComponent(id)}`, { ...opts, body });
}

/** `POST /api/threads`. */
export async function postThread(server, body, opts = {}) {
  return request(server, 'POST', '/api/threads', { ...opts, body });
}

/** `POST /api/threads/{id}/participants`. */
export async function postParticipant(server, threadId, userId, opts = {}) {
  return request(server, 'POST', `/api/threads/${encodeURIComponent(threadId)}/participants`, { ...opts, body: { userId } });
}

/** `GET /api/threads/{id}/messages` with optional `beforeId` / `limit` (any value, sent as given). */
export async function getMessages(server, threadId, { beforeId, limit } = {}, opts = {}) {
  const q = new URLSearchParams();
  if (beforeId !== undefined) q.set('beforeId', String(beforeId));
  if (limit !== undefined) q.set('limit', String(limit));
  const qs = q.toString();
  return request(server, 'GET', `/api/threads/${encodeURIComponent(threadId)}/messages${qs ? `?${qs}` : ''}`, opts);
}

/** The full admin history of a thread (all pages, oldest first), with receipts. */
export async function fullHistory(server, threadId) {
  const pages = [];
  let beforeId;
  for (;;) {
    const res = await getMessages(server, threadId, { beforeId, limit: 100 });
    const page = assertOk(res, `GET /api/threads/${threadId}/messages`);
    pages.unshift(page.messages);
    if (!page.hasMore || page.messages.length === 0) break;
    beforeId = page.messages[0].id;
  }
  return pages.flat();
}
