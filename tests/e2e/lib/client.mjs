// A socket.io-client wrapper that records every server event from the first
// packet on, so tests can await events without racing the listener, check their
// order, and prove that an event did NOT arrive.

import assert from 'node:assert/strict';

import { io } from 'socket.io-client';

export const ACK_TIMEOUT_MS = 5_000;
export const EVENT_TIMEOUT_MS = 3_000;
/** How long a negative wait listens, always after a positive synchronisation point. */
export const QUIET_MS = 300;

let nextClientNo = 1;

const describeEntry = (e) => `#${e.seq} ${e.event} ${JSON.stringify(e.data)}`;

export class TestClient {
  /**
   * @param {import('socket.io-client').Socket} socket
   * @param {string} label
   */
  constructor(socket, label, { ackMessages = true } = {}) {
    this.socket = socket;
    this.label = label;
    /** Whether `chat:message` is acknowledged (what marks it delivered), as the protocol asks. */
    this.ackMessages = ackMessages;
    /** Every event received, in order: `{ seq, event, data, consumed }`. */
    this.log = [];
    this.waiters = new Set();
    this.seq = 0;
    socket.onAny((event, ...args) => {
      this.#record(event, args[0]);
      const ack = args.at(-1);
      if (event === 'chat:message' && this.ackMessages && typeof ack === 'function') ack();
    });
    socket.on('disconnect', (reason) => this.#record('disconnect', { reason }));
  }

  #record(event, data) {
    const entry = { seq: this.seq++, event, data, consumed: false };
    this.log.push(entry);
    for (const w of this.waiters) {
      if (!entry.consumed && w.matches(entry)) {
        entry.consumed = true;
        this.waiters.delete(w);
        w.resolve(entry.data);
      }
    }
  }

  /** Data of every received `event` so far (consumed or not), oldest first. */
  received(event, where = () => true) {
    return this.log.filter((e) => e.event === event && where(e.data)).map((e) => e.data);
  }

  /** The event names received so far, in order (for ordering assertions). */
  eventNames() {
    return this.log.map((e) => e.event);
  }

  /**
   * The oldest not yet consumed `event` (matching `where`), waiting up to `timeout` ms
   * for it. Each entry is handed out once, so repeated calls walk through the events.
   */
  next(event, { where = () => true, timeout = EVENT_TIMEOUT_MS } = {}) {
    const matches = (e) => e.event === event && where(e.data);
    const found = this.log.find((e) => !e.consumed && matches(e));
    if (found) {
      found.consumed = true;
      return Promise.resolve(found.data);
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        matches,
        resolve: (data) => {
          clearTimeout(timer);
          resolve(data);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        const recent = this.log.slice(-8).map(describeEntry).join('\n  ');
        reject(new Error(`${this.label}: no "${event}" within ${timeout} ms; last events:\n  ${recent || '(none)'}`));
      }, timeout);
      this.waiters.add(waiter);
    });
  }

  /** `next('chat:message')` for the message with this id; resolves to the message. */
  async nextMessage(id, timeout = EVENT_TIMEOUT_MS) {
    const data = await this.next('chat:message', { where: (d) => d?.message?.id === id, timeout });
    return data.message;
  }

  /**
   * Asserts that no unconsumed `event` matching `where` has arrived and none arrives
   * within `ms`. Call it only after a positive synchronisation point (an ack, or a
   * later event that was awaited), so the window is not what makes it pass.
   */
  async expectNone(event, { where = () => true, ms = QUIET_MS, why = '' } = {}) {
    const matches = (e) => e.event === event && where(e.data);
    const early = this.log.find((e) => !e.consumed && matches(e));
    assert.equal(early, undefined, `${this.label}: unexpected ${early ? describeEntry(early) : ''} ${why}`);
    await new Promise((resolve, reject) => {
      const waiter = {
        matches,
        resolve: (data) => {
          clearTimeout(timer);
          reject(new Error(`${this.label}: unexpected "${event}" ${JSON.stringify(data)} ${why}`));
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        resolve();
      }, ms);
      this.waiters.add(waiter);
    });
  }

  /** Number of received events `event` matching `where`. */
  count(event, where = () => true) {
    return this.received(event, where).length;
  }

  /** Emits with an ack and resolves to the ack payload. `payload === undefined` sends no argument at all. */
  ack(event, payload, timeout = ACK_TIMEOUT_MS) {
    const s = this.socket.timeout(timeout);
    return payload === undefined ? s.emitWithAck(event) : s.emitWithAck(event, payload);
  }

  /** Emits without an ack callback (fire and forget). */
  emit(event, payload) {
    this.socket.emit(event, payload);
  }

  /** Emits, asserts `{ ok: true }` and returns the ack. */
  async ok(event, payload, timeout = ACK_TIMEOUT_MS) {
    const res = await this.ack(event, payload, timeout);
    assert.equal(res?.ok, true, `${this.label}: ${event} ${JSON.stringify(payload)} should succeed, got ${JSON.stringify(res)}`);
    return res;
  }

  /** Emits, asserts `{ ok: false, error: { code, message } }` and returns the error. */
  async fails(event, payload, code, timeout = ACK_TIMEOUT_MS) {
    const res = await this.ack(event, payload, timeout);
    assert.equal(res?.ok, false, `${this.label}: ${event} ${JSON.stringify(payload)} should fail with ${code}, got ${JSON.stringify(res)}`);
    assert.equal(res.error?.code, code, `${this.label}: ${event} ${JSON.stringify(payload)} error code; got ${JSON.stringify(res)}`);
    assert.equal(typeof res.error.message, 'string', 'error.message is a string');
    return res.error;
  }

  /** `chat:join`, asserted ok; resolves to the `thread`. */
  async join(threadId) {
    return (await this.ok('chat:join', { threadId })).thread;
  }

  /** `chat:send-message`, asserted ok; resolves to the stored `message`. */
  async send(threadId, body, clientMessageId = newClientMessageId()) {
    return (await this.ok('chat:send-message', { threadId, body, clientMessageId })).message;
  }

  /** True while connected. */
  get connected() {
    return this.socket.connected;
  }

  /** Disconnects (client side) and waits for the socket to be closed. */
  async close() {
    if (this.socket.connected) {
      const gone = new Promise((resolve) => this.socket.once('disconnect', resolve));
      this.socket.disconnect();
      await gone;
    } else {
      this.socket.disconnect();
    }
  }
}

/** A fresh idempotency key. */
export function newClientMessageId() {
  return `c-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

/** The socket.io-client options every test uses. */
function options(auth, transports, { reconnection = false, withCredentials = false } = {}) {
  const opts = { transports, forceNew: true, reconnection, withCredentials, timeout: 10_000 };
  if (auth !== undefined) opts.auth = auth;
  return opts;
}

/**
 * Opens a socket and resolves when `chat:ready` arrived (the events before it,
 * e.g. the offline queue, stay in `client.log`). Rejects on `connect_error`.
 *
 * @param {{url:string}} server
 * @param {string} token
 * @param {{transports?: string[], label?: string, timeout?: number, lastMessageId?: string, url?: string, ackMessages?: boolean, reconnection?: boolean, withCredentials?: boolean}} [opts]
 *   `lastMessageId`: the resume cursor of the handshake; `url`: connect through
 *   another address (a fault proxy); `ackMessages: false`: never acknowledge a
 *   `chat:message` (a client that does not confirm deliveries); `reconnection`:
 *   socket.io-client's own reconnection (off by default); `withCredentials`:
 *   keep cookies, such as a load balancer's sticky-session cookie.
 */
export async function connect(server, token, { transports = ['websocket'], label, timeout = 10_000, lastMessageId, url, ackMessages, reconnection, withCredentials } = {}) {
  const auth = lastMessageId === undefined ? { token } : { token, lastMessageId };
  const socket = io(url ?? server.url, options(auth, transports, { reconnection, withCredentials }));
  const client = new TestClient(socket, label ?? `client${nextClientNo++}`, { ackMessages });
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${client.label}: no chat:ready within ${timeout} ms`)), timeout);
      socket.once('connect_error', (err) => {
        clearTimeout(timer);
        reject(new Error(`${client.label}: connect_error "${err.message}"`));
      });
      socket.once('disconnect', (reason) => {
        clearTimeout(timer);
        reject(new Error(`${client.label}: disconnected before chat:ready (${reason})`));
      });
      client.next('chat:ready', { timeout }).then(
        (data) => {
          clearTimeout(timer);
          client.ready = data;
          resolve();
        },
        () => {},
      );
    });
  } catch (e) {
    socket.disconnect();
    throw e;
  }
  return client;
}

/**
 * Tries to connect with `auth` (the raw handshake auth object; `undefined` sends none)
 * and resolves to the `connect_error` Error. Fails if the socket connects instead.
 */
export async function connectError(server, auth, { transports = ['websocket'], timeout = 10_000 } = {}) {
  const socket = io(server.url, options(auth, transports));
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`neither connect nor connect_error within ${timeout} ms`)), timeout);
      socket.once('connect_error', (err) => {
        clearTimeout(timer);
        resolve(err);
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        reject(new Error(`the handshake with auth ${JSON.stringify(auth)} was accepted; it must be refused`));
      });
    });
  } finally {
    socket.disconnect();
  }
}

/** Closes every given client (ignores null/undefined). */
export async function closeAll(...clients) {
  await Promise.all(clients.flat().filter(Boolean).map((c) => c.close()));
}
