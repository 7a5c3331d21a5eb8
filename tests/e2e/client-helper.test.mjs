// The client helper (clients/js/chat-client.mjs) over a real server: it
// acknowledges deliveries, keeps the cursor across a reconnect through a dead
// connection, drops duplicates by id and turns acks into promises. And what a
// client without it must do, with the bare stock socket.io-client.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { io } from 'socket.io-client';

import { ChatClient, ChatError } from '../../clients/js/chat-client.mjs';
import { closeAll } from './lib/client.mjs';
import { cast, eventually, online } from './lib/fixtures.mjs';
import { getMessages } from './lib/http.mjs';
import { TcpProxy } from './lib/proxy.mjs';
import { startServer } from './lib/server.mjs';
import { mintToken } from './lib/tokens.mjs';

let server;
before(async () => {
  server = await startServer({ label: 'client-helper', env: { CHAT_PING_INTERVAL_MS: '1000', CHAT_PING_TIMEOUT_MS: '1000' } });
});
after(async () => {
  await server?.stop();
});

/** Resolves when `chat` has handed `n` messages to the app. */
function collect(chat) {
  const got = [];
  const waiters = [];
  chat.on('message', (m) => {
    got.push(m);
    for (const w of waiters.splice(0)) w();
  });
  got.until = async (n, what = `${n} messages`) => {
    const deadline = Date.now() + 10_000;
    while (got.length < n) {
      if (Date.now() > deadline) throw new Error(`${what}: got ${got.length}`);
      await new Promise((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 500);
      });
    }
    return got;
  };
  return got;
}

async function delivered(s, threadId, userId) {
  const res = await getMessages(s, threadId, { limit: 100 });
  return res.json.messages.filter((m) => m.receipts.find((r) => r.userId === userId)?.deliveredAt).map((m) => m.id);
}

/** The next `name` the helper emits. */
const nextFrom = (chat, name) => new Promise((resolve) => {
  const off = chat.on(name, (data) => {
    off();
    resolve(data);
  });
});

describe('client helper', () => {
  it('with a token source it refreshes short-lived tokens on the live socket, and reconnects after a token_expired close', async () => {
    const { client, freelancer, thread } = await cast(server);
    const f = await online(server, freelancer);
    let lifetime = 3;
    const chat = new ChatClient(io, server.url, {
      token: () => mintToken(server.jwtSecret, client.id, 'client', { exp: Math.floor(Date.now() / 1000) + lifetime }),
      socketOptions: { forceNew: true, reconnection: false },
    });
    try {
      const ready = await chat.ready;
      const firstExpiry = Date.parse(ready.tokenExpiresAt);
      // Refreshed half-way, twice: the socket outlives its first token (and the leeway).
      await nextFrom(chat, 'refreshed');
      const second = await nextFrom(chat, 'refreshed');
      assert.ok(Date.parse(second.expiresAt) > firstExpiry);
      await eventually(() => Date.now() > firstExpiry + 2_500, { timeout: 10_000, what: 'past the first token and its leeway' });
      const m = await chat.send(thread.id, 'on a refreshed token');
      await f.nextMessage(m.id);
      const sid = chat.socket.id;

      // A refresh the server refuses (a token already expired): the server closes
      // the socket when the token runs out, and the helper reconnects with a fresh one.
      lifetime = -60;
      const closing = await nextFrom(chat, 'closing');
      assert.equal(closing.reason, 'token_expired');
      lifetime = 3600;
      await nextFrom(chat, 'ready');
      assert.notEqual(chat.socket.id, sid, 'a new connection');
      const again = await chat.send(thread.id, 'after the reconnect');
      await f.nextMessage(again.id);
    } finally {
      chat.close();
      await closeAll(f);
    }
  });

  it('across a dead connection and a reconnect: every message once, in order, all acknowledged', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await online(server, client);
    const { port } = new URL(server.url);
    const proxy = await new TcpProxy({ host: '127.0.0.1', port: Number(port) }).listen();
    const chat = new ChatClient(io, `http://127.0.0.1:${proxy.port}`, {
      token: freelancer.token,
      socketOptions: { reconnectionDelay: 100, reconnectionDelayMax: 200 },
    });
    const got = collect(chat);
    try {
      await chat.ready;
      const first = await c.send(thread.id, 'before the tunnel');
      await got.until(1);
      // The tunnel: nothing gets through; the heartbeat closes the connection and
      // the helper reconnects (through the proxy again once it forwards).
      proxy.cut('blackhole');
      const tunnel = [];
      for (let i = 0; i < 3; i++) tunnel.push(await c.send(thread.id, `in the tunnel ${i}`));
      await new Promise((resolve) => chat.socket.once('disconnect', resolve));
      proxy.cut('reset');
      proxy.restore();
      await got.until(4, 'the tunnel messages after the reconnect');
      assert.deepEqual(got.map((m) => m.id), [first, ...tunnel].map((m) => m.id), 'each once, in order');
      assert.equal(chat.lastMessageId, tunnel.at(-1).id, 'the cursor follows');
      await eventually(async () => (await delivered(server, thread.id, freelancer.id)).length === 4, { what: 'all four acknowledged' });
    } finally {
      chat.close();
      await c.close();
      await proxy.close();
    }
  });

  it('drops a message it already has when a stale cursor brings it again; acks are promises', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await online(server, client);
    const sent = [];
    for (let i = 0; i < 3; i++) sent.push(await c.send(thread.id, `m${i}`));
    const chat = new ChatClient(io, server.url, { token: freelancer.token });
    const got = collect(chat);
    try {
      await chat.ready;
      await got.until(3);
      // Resume from before all three: the server sends them again, the app sees none twice.
      chat.lastMessageId = '1';
      chat.socket.disconnect().connect();
      await new Promise((resolve) => chat.socket.once('chat:ready', resolve));
      const more = await c.send(thread.id, 'after the reconnect');
      await got.until(4);
      assert.deepEqual(got.map((m) => m.id), [...sent, more].map((m) => m.id));

      const thread2 = await chat.join(thread.id);
      assert.equal(thread2.id, thread.id);
      const mine = await chat.send(thread.id, 'from the helper');
      assert.equal(mine.senderId, freelancer.id);
      await assert.rejects(chat.join('missing-thread'), (e) => e instanceof ChatError && e.code === 'not_found');
      await assert.rejects(chat.request('chat:unknown', {}), (e) => e.code === 'invalid_payload');
      const page = await chat.history(thread.id, { afterId: sent[0].id, limit: 2 });
      assert.deepEqual(page.messages.map((m) => m.id), sent.slice(1).map((m) => m.id));
    } finally {
      chat.close();
      await c.close();
    }
  });

  it('the bare stock client: acknowledge in the handler, drop duplicates by id, keep the cursor in an auth callback', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await online(server, client);
    const m = await c.send(thread.id, 'for the bare client');
    const seen = new Set();
    let lastMessageId;
    const socket = io(server.url, {
      transports: ['websocket'],
      reconnection: false,
      auth: (cb) => cb({ token: freelancer.token, ...(lastMessageId && { lastMessageId }) }),
    });
    try {
      await new Promise((resolve) => {
        socket.on('chat:message', ({ message }, ack) => {
          ack?.(); // sets deliveredAt
          if (seen.has(message.id)) return;
          seen.add(message.id);
          if (!lastMessageId || BigInt(message.id) > BigInt(lastMessageId)) lastMessageId = message.id;
        });
        socket.once('chat:ready', resolve);
      });
      assert.deepEqual([...seen], [m.id], 'owed before chat:ready');
      assert.equal(lastMessageId, m.id);
      await eventually(async () => (await delivered(server, thread.id, freelancer.id)).includes(m.id), { what: 'deliveredAt after the ack' });
    } finally {
      socket.disconnect();
      await closeAll(c);
    }
  });
});
