// chat-host's client helper: the delivery guarantee without re-reading the
// protocol. It wraps a stock socket.io-client 4.x socket and
//
// - acknowledges every `chat:message` (what sets the receipt's deliveredAt),
// - drops duplicates by message id (delivery is at least once),
// - keeps the resume cursor (the highest message id seen) and sends it as
//   `auth.lastMessageId` on every (re)connect, so a reconnect gets what it missed,
// - turns every event's ack into a promise that resolves to the ack or rejects
//   with a `ChatError` carrying the contract's code,
// - retries a send that timed out with the same clientMessageId (stored once),
// - with `token` a function: refreshes the token before it expires
//   (`chat:refresh-token`), and reconnects with a fresh one when the server
//   closes the socket anyway (`chat:closing`).
//
// No dependency of its own: pass socket.io-client's `io` (browser or Node).
//
//   import { io } from 'socket.io-client';
//   import { ChatClient } from './chat-client.mjs';
//   const chat = new ChatClient(io, 'http://127.0.0.1:3000', { token });
//   chat.on('message', (m) => show(m));
//   await chat.ready;
//   await chat.send(threadId, 'hello');

/** How long before a token expires it is refreshed, at most. */
const REFRESH_EARLY_MS = 30_000;
/** How long a socket closed for flooding waits before it reconnects. */
const FLOOD_PAUSE_MS = 5_000;

/** An event refused by the server: `code` is one of the contract's ack codes. */
export class ChatError extends Error {
  constructor(code, message, details = {}) {
    super(message);
    this.name = 'ChatError';
    this.code = code;
    Object.assign(this, details);
  }
}

/** How many message ids are remembered to drop duplicates. */
const SEEN_MAX = 10_000;
/** Error codes after which the same send may succeed: no ack, or a backend outage. */
const RETRYABLE = new Set(['timeout', 'unavailable']);

/** A decimal message id as a BigInt (ids may exceed 2^53). */
const idOf = (id) => BigInt(id);

function randomKey() {
  return `c-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

export class ChatClient {
  /**
   * @param {typeof import('socket.io-client').io} io socket.io-client's `io`
   * @param {string} url the server
   * @param {object} options
   * @param {string | (() => string)} options.token the JWT, or a function returning a fresh one
   * @param {string} [options.lastMessageId] a cursor kept from an earlier session
   * @param {number} [options.ackTimeout] ms to wait for an event's ack (default 5000)
   * @param {object} [options.socketOptions] more socket.io-client options
   */
  constructor(io, url, { token, lastMessageId, ackTimeout = 5_000, socketOptions = {} } = {}) {
    this.lastMessageId = lastMessageId;
    this.ackTimeout = ackTimeout;
    this.token = typeof token === 'function' ? token : null;
    this.refreshTimer = null;
    this.seen = new Set();
    this.listeners = new Map();
    this.socket = io(url, {
      transports: ['websocket'],
      ...socketOptions,
      // Evaluated on every (re)connect: the cursor is always the newest.
      auth: (cb) => {
        const auth = { token: typeof token === 'function' ? token() : token };
        if (this.lastMessageId) auth.lastMessageId = this.lastMessageId;
        cb(auth);
      },
    });
    this.socket.on('chat:message', ({ message }, ack) => {
      if (typeof ack === 'function') ack();
      if (this.seen.has(message.id)) return;
      this.remember(message.id);
      if (!this.lastMessageId || idOf(message.id) > idOf(this.lastMessageId)) {
        this.lastMessageId = message.id;
      }
      this.emit('message', message);
    });
    for (const [event, name] of [
      ['chat:typing', 'typing'],
      ['chat:read', 'read'],
      ['chat:presence', 'presence'],
      ['chat:resync', 'resync'],
      ['chat:ready', 'ready'],
      ['chat:closing', 'closing'],
    ]) {
      this.socket.on(event, (data) => this.emit(name, data));
    }
    this.socket.on('chat:ready', ({ tokenExpiresAt }) => this.scheduleRefresh(tokenExpiresAt));
    this.socket.on('disconnect', () => clearTimeout(this.refreshTimer));
    this.socket.on('chat:closing', ({ reason }) => {
      // socket.io-client does not reconnect after a server-side disconnect: with a
      // token source, reconnect (a flooder after a pause) with a fresh token.
      if (!this.token) return;
      this.socket.once('disconnect', () => {
        const timer = setTimeout(() => this.socket.connect(), reason === 'flooding' ? FLOOD_PAUSE_MS : 0);
        timer.unref?.();
      });
    });
    /** Resolves with the first `chat:ready` (after what the connection was owed). */
    this.ready = new Promise((resolve, reject) => {
      this.socket.once('chat:ready', resolve);
      this.socket.once('connect_error', reject);
    });
  }

  /**
   * With a token source: sends a fresh token before `expiresAt` (half-way
   * there, at most 30 s early), again before the new one expires.
   */
  scheduleRefresh(expiresAt) {
    clearTimeout(this.refreshTimer);
    if (!this.token || !expiresAt) return;
    const left = Date.parse(expiresAt) - Date.now();
    this.refreshTimer = setTimeout(async () => {
      try {
        const refreshed = await this.request('chat:refresh-token', { token: this.token() });
        this.emit('refreshed', refreshed);
        this.scheduleRefresh(refreshed.expiresAt);
      } catch (e) {
        // Not refreshed: the server closes the socket at expiry and it reconnects.
        this.emit('refresh-failed', e);
      }
    }, Math.max(0, left - Math.min(REFRESH_EARLY_MS, left / 2)));
    this.refreshTimer.unref?.();
  }

  remember(id) {
    this.seen.add(id);
    if (this.seen.size > SEEN_MAX) this.seen.delete(this.seen.values().next().value);
  }

  /** Subscribes to `message`, `typing`, `read`, `presence`, `resync` or `ready`. */
  on(name, listener) {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name).add(listener);
    return () => this.listeners.get(name).delete(listener);
  }

  emit(name, data) {
    for (const listener of this.listeners.get(name) ?? []) listener(data);
  }

  /**
   * Emits `event` and resolves to its ack (`ok` removed), or rejects with a
   * `ChatError` (the server's code) or a timeout error (`code: 'timeout'`).
   */
  async request(event, payload) {
    let ack;
    try {
      ack = await this.socket.timeout(this.ackTimeout).emitWithAck(event, payload);
    } catch (e) {
      throw new ChatError('timeout', `${event}: no ack within ${this.ackTimeout} ms`, { cause: e });
    }
    if (!ack?.ok) {
      const error = ack?.error ?? {};
      throw new ChatError(error.code ?? 'internal', error.message ?? 'refused', error);
    }
    const { ok: _ok, ...rest } = ack;
    return rest;
  }

  /** Joins a thread's room; resolves to the thread view. */
  async join(threadId) {
    return (await this.request('chat:join', { threadId })).thread;
  }

  /** Leaves a thread's room. */
  leave(threadId) {
    return this.request('chat:leave', { threadId });
  }

  /**
   * Sends a message; resolves to the stored message. A send whose ack did not
   * come (`timeout`) or that the server could not store for now (`unavailable`:
   * a backend outage) is retried with the same clientMessageId, which the
   * server stores once, after 250 ms, 500 ms, 1 s, … (at most 4 s).
   */
  async send(threadId, body, { clientMessageId = randomKey(), attempts = 3 } = {}) {
    for (let attempt = 1; ; attempt++) {
      try {
        const { message } = await this.request('chat:send-message', { threadId, body, clientMessageId });
        this.remember(message.id);
        return message;
      } catch (e) {
        if (!RETRYABLE.has(e.code) || attempt >= attempts) throw e;
        await new Promise((r) => setTimeout(r, Math.min(4_000, 250 * 2 ** (attempt - 1))));
      }
    }
  }

  /** Moves the user's read mark. */
  read(threadId, messageId) {
    return this.request('chat:read', { threadId, messageId });
  }

  /** Starts or stops the typing indicator. */
  typing(threadId, isTyping) {
    return this.request('chat:typing', { threadId, isTyping });
  }

  /** A page of history: `{ beforeId }`, `{ afterId }` or the newest. */
  history(threadId, { beforeId, afterId, limit } = {}) {
    return this.request('chat:history', { threadId, beforeId, afterId, limit });
  }

  /** Closes the socket. */
  close() {
    clearTimeout(this.refreshTimer);
    this.socket.disconnect();
  }
}
