// Test data through the HTTP API, with fresh random ids (MariaDB and Redis are
// shared between runs, so nothing may depend on a fixed id), plus shared assertions.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';

import { connect } from './client.mjs';
import { assertOk, postThread, upsertUser } from './http.mjs';
import { mintToken } from './tokens.mjs';

/** A fresh id in the user/thread id format: `<prefix>_<16 hex>`. */
export function rid(prefix = 'x') {
  return `${prefix}_${randomBytes(8).toString('hex')}`;
}

/**
 * Creates a user profile through `PUT /api/users/{id}` and mints its token.
 * @returns {Promise<{id:string, role:string, displayName:string, avatarUrl?:string, token:string}>}
 */
export async function newUser(server, { role = 'client', prefix, displayName, avatarUrl } = {}) {
  const id = rid(prefix ?? `u${role[0]}`);
  const profile = { role, displayName: displayName ?? `User ${id}` };
  if (avatarUrl !== undefined) profile.avatarUrl = avatarUrl;
  assertOk(await upsertUser(server, id, profile), `PUT /api/users/${id}`);
  return { id, ...profile, token: mintToken(server.jwtSecret, id, role, { name: profile.displayName }) };
}

/** Creates a thread with these participants (user objects or ids) through `POST /api/threads`. */
export async function newThread(server, participants, { title, id = rid('t') } = {}) {
  const participantIds = participants.map((p) => (typeof p === 'string' ? p : p.id));
  const res = await postThread(server, { id, title: title ?? `Thread ${id}`, participantIds });
  assert.equal(res.status, 201, `POST /api/threads: ${res.status} ${res.text}`);
  return res.json;
}

/**
 * The usual cast: a client and a freelancer sharing a fresh thread, plus a
 * non-participant admin and a non-participant client.
 */
export async function cast(server) {
  const [client, freelancer, admin, stranger] = await Promise.all([
    newUser(server, { role: 'client' }),
    newUser(server, { role: 'freelancer' }),
    newUser(server, { role: 'admin' }),
    newUser(server, { role: 'client', prefix: 'us' }),
  ]);
  const thread = await newThread(server, [client, freelancer]);
  return { client, freelancer, admin, stranger, thread };
}

/** Connects a user (object with `token`) and waits for `chat:ready`. */
export function online(server, user, opts = {}) {
  return connect(server, user.token, { label: opts.label ?? user.id, ...opts });
}

/** Connects a user and joins the given threads. */
export async function onlineIn(server, user, threadIds, opts = {}) {
  const c = await online(server, user, opts);
  for (const t of [threadIds].flat()) await c.join(typeof t === 'string' ? t : t.id);
  return c;
}

export const RFC3339_MS_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
export const DECIMAL_ID = /^[1-9][0-9]*$/;

/** Asserts an RFC 3339 UTC timestamp with milliseconds, within `slackMs` of this machine's clock. */
export function assertTimestamp(value, what = 'timestamp', slackMs = 120_000) {
  assert.equal(typeof value, 'string', `${what} is a string`);
  assert.match(value, RFC3339_MS_UTC, `${what} is RFC 3339 UTC with milliseconds`);
  const t = Date.parse(value);
  assert.ok(Number.isFinite(t), `${what} parses`);
  assert.ok(Math.abs(t - Date.now()) < slackMs, `${what} ${value} is close to now`);
}

/** Asserts the contract's `message` shape (and, with `expected`, its fields). */
export function assertMessage(m, expected = {}) {
  assert.ok(m && typeof m === 'object', `message is an object: ${JSON.stringify(m)}`);
  for (const k of ['id', 'threadId', 'senderId', 'body', 'clientMessageId', 'createdAt']) {
    assert.ok(k in m, `message has ${k}: ${JSON.stringify(m)}`);
  }
  assert.equal(typeof m.id, 'string', 'message.id is a string');
  assert.match(m.id, DECIMAL_ID, 'message.id is a decimal integer string');
  assertTimestamp(m.createdAt, 'message.createdAt');
  for (const [k, v] of Object.entries(expected)) assert.deepEqual(m[k], v, `message.${k}`);
}

/** Numeric comparison of decimal message ids. */
export function idCompare(a, b) {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Asserts message ids strictly increase. */
export function assertIncreasing(ids, what = 'ids') {
  for (let i = 1; i < ids.length; i++) {
    assert.equal(idCompare(ids[i - 1], ids[i]), -1, `${what} increase: ${ids[i - 1]} < ${ids[i]}`);
  }
}

/**
 * Polls `fn` (sync or async) until it returns a truthy value or stops throwing,
 * for state the contract sets "eventually" (receipts, Redis keys). Resolves to that value.
 */
export async function eventually(fn, { timeout = 5_000, interval = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let lastError;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      lastError = new Error(`${what}: still false`);
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      lastError.message = `${what} not met within ${timeout} ms: ${lastError.message}`;
      throw lastError;
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** Sends `n` messages one after another (ids in order); resolves to the acked messages. */
export async function sendMany(client, threadId, n, bodyOf = (i) => `message ${i + 1}`) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await client.send(threadId, bodyOf(i)));
  return out;
}

/** A participant entry of a joined thread view. */
export function participant(thread, userId) {
  const p = thread.participants.find((x) => x.userId === userId);
  assert.ok(p, `participant ${userId} in ${JSON.stringify(thread.participants)}`);
  return p;
}
