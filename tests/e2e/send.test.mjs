// chat:send-message: the stored message, validation, fan-out to every socket,
// access rules, idempotency, the rate limit, and events without an ack.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { closeAll, newClientMessageId } from './lib/client.mjs';
import { isMysqlRedis, needsMysqlRedis } from './lib/config.mjs';
import { assertIncreasing, assertMessage, cast, eventually, idCompare, newThread, newUser, online, onlineIn, rid } from './lib/fixtures.mjs';
import { fullHistory } from './lib/http.mjs';
import { closeRedis, openRedis, streamEntries } from './lib/redis.mjs';
import { startServer } from './lib/server.mjs';

let server;
before(async () => {
  server = await startServer({ label: 'send' });
});
after(async () => {
  await server?.stop();
});

describe('chat:send-message: the stored message', () => {
  it('acks { message: { id, threadId, senderId, body, clientMessageId, createdAt } } with increasing decimal ids', async () => {
    const { client, thread } = await cast(server);
    const c = await online(server, client);
    try {
      const clientMessageId = newClientMessageId();
      const ack = await c.ok('chat:send-message', { threadId: thread.id, body: 'Hello there', clientMessageId });
      assertMessage(ack.message, { threadId: thread.id, senderId: client.id, body: 'Hello there', clientMessageId });
      const second = await c.send(thread.id, 'second');
      const third = await c.send(thread.id, 'third');
      assertIncreasing([ack.message.id, second.id, third.id], 'message ids');
      assert.ok(Date.parse(third.createdAt) >= Date.parse(ack.message.createdAt), 'createdAt does not go back');
    } finally {
      await c.close();
    }
  });

  it('trims the body, in the ack, the delivered event and the history', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await online(server, client);
    const f = await online(server, freelancer);
    try {
      const m = await c.send(thread.id, '  \n\t hello, trimmed world \t\n ');
      assert.equal(m.body, 'hello, trimmed world');
      assert.equal((await f.nextMessage(m.id)).body, 'hello, trimmed world');
      const page = await c.ok('chat:history', { threadId: thread.id });
      assert.equal(page.messages.at(-1).body, 'hello, trimmed world');
    } finally {
      await closeAll(c, f);
    }
  });

  it('accepts 4000 code points, astral characters (emoji) counting as one each', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await online(server, client);
    const f = await online(server, freelancer);
    try {
      const emoji = '😀'.repeat(4000); // 8000 UTF-16 units, 16000 UTF-8 bytes
      const m1 = await c.send(thread.id, emoji);
      assert.equal(m1.body, emoji);
      assert.equal((await f.nextMessage(m1.id)).body, emoji);
      const mixed = `é${'a'.repeat(3997)}🎉z`;
      assert.equal([...mixed].length, 4000);
      assert.equal((await c.send(thread.id, mixed)).body, mixed);
      const padded = await c.send(thread.id, `   ${'b'.repeat(4000)}   `);
      assert.equal(padded.body, 'b'.repeat(4000), 'the limit applies to the trimmed body');
    } finally {
      await closeAll(c, f);
    }
  });

  const invalidBodies = [
    ['an empty body', ''],
    ['a whitespace-only body', ' \n\t  \r\n '],
    ['a body of 4001 code points', 'a'.repeat(4001)],
    ['a body of 4001 emoji', '😀'.repeat(4001)],
    ['a body that is not a string', 12345],
    ['a null body', null],
  ];
  for (const [what, body] of invalidBodies) {
    it(`${what} is invalid_payload and nothing is delivered`, async () => {
      const { client, freelancer, thread } = await cast(server);
      const c = await online(server, client);
      const f = await online(server, freelancer);
      try {
        await c.fails('chat:send-message', { threadId: thread.id, body, clientMessageId: newClientMessageId() }, 'invalid_payload');
        const later = await c.send(thread.id, 'a valid one');
        assert.deepEqual((await f.next('chat:message')).message, later, 'the first message the recipient sees is the valid one');
        const page = await c.ok('chat:history', { threadId: thread.id });
        assert.deepEqual(page.messages.map((m) => m.id), [later.id]);
      } finally {
        await closeAll(c, f);
      }
    });
  }

  it('rejects other malformed payloads with invalid_payload', async () => {
    const { client, thread } = await cast(server);
    const c = await online(server, client);
    try {
      const ok = { threadId: thread.id, body: 'x', clientMessageId: newClientMessageId() };
      await c.fails('chat:send-message', undefined, 'invalid_payload');
      await c.fails('chat:send-message', 'hello', 'invalid_payload');
      await c.fails('chat:send-message', { ...ok, clientMessageId: undefined }, 'invalid_payload');
      await c.fails('chat:send-message', { ...ok, clientMessageId: '' }, 'invalid_payload');
      await c.fails('chat:send-message', { ...ok, clientMessageId: 'k'.repeat(65) }, 'invalid_payload');
      await c.fails('chat:send-message', { ...ok, clientMessageId: 17 }, 'invalid_payload');
      await c.fails('chat:send-message', { ...ok, threadId: undefined }, 'invalid_payload');
      await c.fails('chat:send-message', { ...ok, threadId: 'bad id!' }, 'invalid_payload');
      await c.fails('chat:send-message', { ...ok, threadId: `t_${'a'.repeat(63)}` }, 'invalid_payload');
      assert.ok(c.connected, 'a bad payload never costs the connection');
      const page = await c.ok('chat:history', { threadId: thread.id });
      assert.deepEqual(page.messages, []);
    } finally {
      await c.close();
    }
  });

  it('a clientMessageId of 64 characters is accepted', async () => {
    const { client, thread } = await cast(server);
    const c = await online(server, client);
    try {
      const key = rid('k').padEnd(64, '0');
      assert.equal(key.length, 64);
      const m = await c.send(thread.id, 'long key', key);
      assert.equal(m.clientMessageId, key);
    } finally {
      await c.close();
    }
  });

  it('a thread that does not exist is not_found', async () => {
    const { client } = await cast(server);
    const c = await online(server, client);
    try {
      await c.fails('chat:send-message', { threadId: rid('missing'), body: 'hi', clientMessageId: newClientMessageId() }, 'not_found');
    } finally {
      await c.close();
    }
  });
});

describe('chat:send-message: delivery', () => {
  it("reaches every socket of the recipient once, the sender's other device, but not the sending socket", async () => {
    const { client, freelancer, thread } = await cast(server);
    // Joined or not, each socket is in its user's room; a joined one is in the thread room too.
    const sender = await onlineIn(server, client, thread.id, { label: 'sender' });
    const senderOther = await online(server, client, { label: 'sender-other-device' });
    const phone = await onlineIn(server, freelancer, thread.id, { label: 'recipient-phone' });
    const laptop = await online(server, freelancer, { label: 'recipient-laptop' });
    try {
      const m1 = await sender.send(thread.id, 'to all your devices');
      for (const s of [phone, laptop, senderOther]) assert.deepEqual(await s.nextMessage(m1.id), m1);

      // Synchronise on a later message, then count: each socket saw m1 exactly once.
      const m2 = await sender.send(thread.id, 'sync point');
      for (const s of [phone, laptop, senderOther]) await s.nextMessage(m2.id);
      for (const s of [phone, laptop, senderOther]) {
        assert.equal(s.count('chat:message', (d) => d.message.id === m1.id), 1, `${s.label} got m1 once`);
      }
      await sender.expectNone('chat:message', { why: 'the sending socket gets the ack, not the event' });
    } finally {
      await closeAll(sender, senderOther, phone, laptop);
    }
  });

  it('the reply flows back the other way', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await online(server, client);
    const f = await online(server, freelancer);
    try {
      const q = await c.send(thread.id, 'Can you do it by Friday?');
      await f.nextMessage(q.id);
      const a = await f.send(thread.id, 'Yes.');
      const got = await c.nextMessage(a.id);
      assertMessage(got, { senderId: freelancer.id, body: 'Yes.', threadId: thread.id });
      assert.equal(idCompare(q.id, a.id), -1);
    } finally {
      await closeAll(c, f);
    }
  });

  it('an admin watching the thread (joined) gets the messages once; an admin not watching does not', async () => {
    const { admin, client, freelancer, thread } = await cast(server);
    const watching = await onlineIn(server, admin, thread.id, { label: 'admin-watching' });
    const otherAdmin = await newUser(server, { role: 'admin' });
    const notWatching = await online(server, otherAdmin, { label: 'admin-not-watching' });
    const c = await online(server, client);
    const f = await online(server, freelancer);
    try {
      const m = await c.send(thread.id, 'under dispute');
      assert.deepEqual(await watching.nextMessage(m.id), m);
      const sync = await c.send(thread.id, 'sync point');
      await watching.nextMessage(sync.id);
      await f.nextMessage(sync.id);
      assert.equal(watching.count('chat:message', (d) => d.message.id === m.id), 1);
      await notWatching.expectNone('chat:message', { why: 'an admin who did not join is not a recipient' });
    } finally {
      await closeAll(watching, notWatching, c, f);
    }
  });

  it('does not reach users outside the thread', async () => {
    const { client, freelancer, stranger, thread } = await cast(server);
    const c = await online(server, client);
    const f = await online(server, freelancer);
    const s = await online(server, stranger);
    try {
      const m = await c.send(thread.id, 'private');
      await f.nextMessage(m.id);
      await s.expectNone('chat:message');
    } finally {
      await closeAll(c, f, s);
    }
  });

  it('works over HTTP long-polling only', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await onlineIn(server, client, thread.id, { transports: ['polling'] });
    const f = await onlineIn(server, freelancer, thread.id, { transports: ['polling'] });
    try {
      assert.equal(c.socket.io.engine.transport.name, 'polling');
      const m = await c.send(thread.id, 'over polling');
      assert.deepEqual(await f.nextMessage(m.id), m);
      const r = await f.send(thread.id, 'polling back');
      assert.deepEqual(await c.nextMessage(r.id), r);
    } finally {
      await closeAll(c, f);
    }
  });

  it('an event sent without an ack callback is still processed', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await online(server, client);
    const f = await online(server, freelancer);
    try {
      const clientMessageId = newClientMessageId();
      c.emit('chat:send-message', { threadId: thread.id, body: 'fire and forget', clientMessageId });
      const got = (await f.next('chat:message')).message;
      assertMessage(got, { body: 'fire and forget', clientMessageId, senderId: client.id });
      // An invalid one without ack: only logged; the socket keeps working.
      c.emit('chat:send-message', { threadId: thread.id, body: '' });
      c.emit('chat:send-message');
      const after = await c.send(thread.id, 'still here');
      assert.deepEqual((await f.next('chat:message')).message, after);
      assert.ok(c.connected);
    } finally {
      await closeAll(c, f);
    }
  });
});

describe('chat:send-message: access', () => {
  it('a non-participant gets not_found and nothing is delivered', async () => {
    const { client, freelancer, stranger, thread } = await cast(server);
    const s = await online(server, stranger);
    const f = await online(server, freelancer);
    const c = await online(server, client);
    try {
      await s.fails('chat:send-message', { threadId: thread.id, body: 'let me in', clientMessageId: newClientMessageId() }, 'not_found');
      const m = await c.send(thread.id, 'sync point');
      assert.deepEqual((await f.next('chat:message')).message, m, 'the refused message never arrives');
    } finally {
      await closeAll(s, f, c);
    }
  });

  it('an admin watching a thread gets forbidden when sending, and nothing is delivered', async () => {
    const { admin, client, freelancer, thread } = await cast(server);
    const a = await onlineIn(server, admin, thread.id);
    const f = await online(server, freelancer);
    const c = await online(server, client);
    try {
      await a.fails('chat:send-message', { threadId: thread.id, body: 'admin speaking', clientMessageId: newClientMessageId() }, 'forbidden');
      const m = await c.send(thread.id, 'sync point');
      assert.deepEqual((await f.next('chat:message')).message, m);
      const page = await a.ok('chat:history', { threadId: thread.id });
      assert.deepEqual(page.messages.map((x) => x.id), [m.id]);
    } finally {
      await closeAll(a, f, c);
    }
  });

  it('an admin who is a participant may send', async () => {
    const admin = await newUser(server, { role: 'admin' });
    const freelancer = await newUser(server, { role: 'freelancer' });
    const thread = await newThread(server, [admin, freelancer]);
    const a = await online(server, admin);
    const f = await online(server, freelancer);
    try {
      const m = await a.send(thread.id, 'support here');
      assert.deepEqual(await f.nextMessage(m.id), m);
    } finally {
      await closeAll(a, f);
    }
  });
});

describe('chat:send-message: idempotency (clientMessageId)', () => {
  it('the same key, thread and body returns the same stored message and broadcasts nothing new', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await online(server, client);
    const f = await online(server, freelancer);
    try {
      const key = newClientMessageId();
      const first = await c.send(thread.id, 'pay the invoice', key);
      const again = await c.send(thread.id, 'pay the invoice', key);
      const trimmedSame = await c.send(thread.id, '  pay the invoice\n', key);
      assert.deepEqual(again, first);
      assert.deepEqual(trimmedSame, first, 'the trimmed body is what is compared');
      const sync = await c.send(thread.id, 'sync point');
      await f.nextMessage(sync.id);
      assert.equal(f.count('chat:message', (d) => d.message.id === first.id), 1, 'the retry was not broadcast');
      const page = await c.ok('chat:history', { threadId: thread.id });
      assert.deepEqual(page.messages.map((m) => m.id), [first.id, sync.id]);
    } finally {
      await closeAll(c, f);
    }
  });

  it('the same key with another body or another thread is invalid_payload', async () => {
    const { client, freelancer, thread } = await cast(server);
    const other = await newThread(server, [client, freelancer]);
    const c = await online(server, client);
    try {
      const key = newClientMessageId();
      const first = await c.send(thread.id, 'original', key);
      await c.fails('chat:send-message', { threadId: thread.id, body: 'edited', clientMessageId: key }, 'invalid_payload');
      await c.fails('chat:send-message', { threadId: other.id, body: 'original', clientMessageId: key }, 'invalid_payload');
      assert.deepEqual((await c.ok('chat:history', { threadId: thread.id })).messages, [first]);
      assert.deepEqual((await c.ok('chat:history', { threadId: other.id })).messages, []);
    } finally {
      await c.close();
    }
  });

  it('the key is per sender: two users may use the same key', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await online(server, client);
    const f = await online(server, freelancer);
    try {
      const key = newClientMessageId();
      const a = await c.send(thread.id, 'from the client', key);
      const b = await f.send(thread.id, 'from the freelancer', key);
      assert.notEqual(a.id, b.id);
      assert.equal(b.senderId, freelancer.id);
    } finally {
      await closeAll(c, f);
    }
  });

  it('10 concurrent sends with the same key store one message, ack one id and deliver it once', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c1 = await online(server, client, { label: 'c1' });
    const c2 = await online(server, client, { label: 'c2' });
    const f = await online(server, freelancer);
    try {
      const key = newClientMessageId();
      const acks = await Promise.all(
        Array.from({ length: 10 }, (_, i) => (i % 2 ? c1 : c2).ack('chat:send-message', { threadId: thread.id, body: 'only once', clientMessageId: key })),
      );
      for (const a of acks) assert.equal(a.ok, true, JSON.stringify(a));
      const ids = new Set(acks.map((a) => a.message.id));
      assert.equal(ids.size, 1, `one id for all: ${[...ids]}`);
      const sync = await c1.send(thread.id, 'sync point');
      await f.nextMessage(sync.id);
      const [id] = ids;
      assert.equal(f.count('chat:message', (d) => d.message.id === id), 1, 'delivered once');
      const history = await fullHistory(server, thread.id);
      assert.equal(history.filter((m) => m.clientMessageId === key).length, 1, 'exactly one stored message');
    } finally {
      await closeAll(c1, c2, f);
    }
  });

  it('retries of the same key do not count toward the rate limit', async () => {
    const { client, thread } = await cast(server);
    const c = await online(server, client);
    try {
      const key = newClientMessageId();
      const first = await c.send(thread.id, 'retry me', key);
      for (let i = 0; i < 30; i++) assert.deepEqual(await c.send(thread.id, 'retry me', key), first);
      await c.send(thread.id, 'a new message is still allowed');
    } finally {
      await c.close();
    }
  });
});

describe('chat:send-message: rate limit (default 25 per minute)', () => {
  it('the 26th message within a minute is rate_limited with retryAfterMs, and is not stored', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await online(server, client);
    try {
      for (let i = 1; i <= 25; i++) await c.send(thread.id, `burst ${i}`);
      const err = await c.fails('chat:send-message', { threadId: thread.id, body: 'one too many', clientMessageId: newClientMessageId() }, 'rate_limited');
      assert.equal(typeof err.retryAfterMs, 'number');
      assert.ok(err.retryAfterMs > 0 && err.retryAfterMs <= 60_000, `retryAfterMs ${err.retryAfterMs} in (0, 60000]`);
      const history = await fullHistory(server, thread.id);
      assert.equal(history.length, 25);
      assert.ok(!history.some((m) => m.body === 'one too many'));

      // The limit is per user: the other participant may still send.
      const f = await online(server, freelancer);
      try {
        await f.send(thread.id, 'I am not limited');
      } finally {
        await f.close();
      }
    } finally {
      await c.close();
    }
  });

  it('the limit is per user across all of their sockets', async () => {
    const { client, thread } = await cast(server);
    const sockets = [];
    try {
      for (let i = 0; i < 3; i++) sockets.push(await online(server, client, { label: `device${i}` }));
      for (let i = 0; i < 25; i++) await sockets[i % 3].send(thread.id, `spread ${i}`);
      for (const s of sockets) {
        const err = await s.fails('chat:send-message', { threadId: thread.id, body: 'over', clientMessageId: newClientMessageId() }, 'rate_limited');
        assert.ok(err.retryAfterMs > 0);
      }
    } finally {
      await closeAll(sockets);
    }
  });

  it('the limit covers all threads of the user', async () => {
    const { client, freelancer, thread } = await cast(server);
    const other = await newThread(server, [client, freelancer]);
    const c = await online(server, client);
    try {
      for (let i = 0; i < 25; i++) await c.send(i % 2 ? thread.id : other.id, `t ${i}`);
      await c.fails('chat:send-message', { threadId: other.id, body: 'over', clientMessageId: newClientMessageId() }, 'rate_limited');
      await c.fails('chat:send-message', { threadId: thread.id, body: 'over', clientMessageId: newClientMessageId() }, 'rate_limited');
    } finally {
      await c.close();
    }
  });
});

describe('chat:send-message: event stream', () => {
  it('chat:logs:events gets a message_sent entry for a sent message', { skip: needsMysqlRedis }, async () => {
    const { client, thread } = await cast(server);
    const redis = isMysqlRedis ? await openRedis() : null;
    const c = await online(server, client);
    try {
      const m = await c.send(thread.id, 'log me');
      const entries = await eventually(async () => {
        const found = await streamEntries(redis, 'message_sent', client.id);
        return found.length ? found : null;
      }, { what: 'a message_sent entry mentioning the sender' });
      const fields = Object.values(entries.at(-1).message).join(' ');
      assert.ok(fields.includes('message_sent'), `entry fields contain the type: ${fields}`);
      assert.ok(fields.includes(thread.id) || fields.includes(m.id), `entry names the thread or message: ${fields}`);
    } finally {
      await c.close();
      await closeRedis(redis);
    }
  });
});

describe('CHAT_MAX_BODY_CHARS', () => {
  let small;
  before(async () => {
    small = await startServer({ label: 'send-max-body', env: { CHAT_MAX_BODY_CHARS: '10' } });
  });
  after(async () => {
    await small?.stop();
  });

  it('sets the longest body in code points', async () => {
    const { client, thread } = await cast(small);
    const c = await online(small, client);
    try {
      assert.equal((await c.send(thread.id, '🙂'.repeat(10))).body, '🙂'.repeat(10));
      await c.fails('chat:send-message', { threadId: thread.id, body: 'x'.repeat(11), clientMessageId: newClientMessageId() }, 'invalid_payload');
    } finally {
      await c.close();
    }
  });
});
