// The offline queue: messages for a user without sockets arrive on their next
// connect, in order, before chat:ready, once; deliveredAt follows; an overflowing
// queue keeps the newest 200 and announces chat:resync.
// This server allows 1000 sends a minute so a test can overflow the queue.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { closeAll } from './lib/client.mjs';
import { isMysqlRedis, needsMysqlRedis } from './lib/config.mjs';
import { assertTimestamp, cast, eventually, newThread, newUser, online, onlineIn, sendMany } from './lib/fixtures.mjs';
import { assertOk, fullHistory, getMessages } from './lib/http.mjs';
import { closeRedis, openRedis } from './lib/redis.mjs';
import { startServer } from './lib/server.mjs';

const QUEUE_MAX = 200;
// Owed messages beyond the replay cap in the overflow test (issue 9: 250 to an offline user).
const OLDER = 50;

let server;
before(async () => {
  server = await startServer({ label: 'offline', env: { CHAT_RATE_LIMIT_PER_MINUTE: '1000' } });
});
after(async () => {
  await server?.stop();
});

/** Events a freshly connected client got before chat:ready, in order. */
function beforeReady(client) {
  const names = client.eventNames();
  const ready = names.indexOf('chat:ready');
  assert.ok(ready >= 0, 'chat:ready arrived');
  return client.log.slice(0, ready);
}

/** Receipt of `userId` on message `id` in an admin history page. */
function receipt(messages, id, userId) {
  const m = messages.find((x) => x.id === id);
  assert.ok(m, `message ${id} in the admin history`);
  const r = m.receipts.find((x) => x.userId === userId);
  assert.ok(r, `receipt of ${userId} on ${id}: ${JSON.stringify(m.receipts)}`);
  return r;
}

describe('offline queue', () => {
  it('delivers queued messages on the next connect, in order, before chat:ready', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await online(server, client);
    let f;
    try {
      const sent = await sendMany(c, thread.id, 3, (i) => `while you were away ${i}`);
      f = await online(server, freelancer);
      const early = beforeReady(f);
      assert.deepEqual(early.map((e) => e.event), ['chat:message', 'chat:message', 'chat:message']);
      assert.deepEqual(early.map((e) => e.data.message), sent);
    } finally {
      await closeAll(c, f);
    }
  });

  it('queues across threads in send order', async () => {
    const { client, freelancer, thread } = await cast(server);
    const other = await newUser(server, { role: 'client' });
    const t2 = await newThread(server, [other, freelancer]);
    const c = await online(server, client);
    const o = await online(server, other);
    let f;
    try {
      const m1 = await c.send(thread.id, 'first, thread 1');
      const m2 = await o.send(t2.id, 'second, thread 2');
      const m3 = await c.send(thread.id, 'third, thread 1');
      f = await online(server, freelancer);
      assert.deepEqual(beforeReady(f).map((e) => e.data.message), [m1, m2, m3]);
    } finally {
      await closeAll(c, o, f);
    }
  });

  it('delivers each queued message once: the next connect gets nothing', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await online(server, client);
    let f1;
    let f2;
    try {
      const m = await c.send(thread.id, 'only once');
      f1 = await online(server, freelancer, { label: 'first-connect' });
      assert.deepEqual(beforeReady(f1).map((e) => e.data.message), [m]);
      await f1.close();
      f2 = await online(server, freelancer, { label: 'second-connect' });
      assert.deepEqual(beforeReady(f2), [], 'nothing before chat:ready the second time');
      const sync = await c.send(thread.id, 'live now');
      await f2.nextMessage(sync.id);
      assert.equal(f2.count('chat:message', (d) => d.message.id === m.id), 0);
    } finally {
      await closeAll(c, f1, f2);
    }
  });

  it('a user who went offline gets what was sent meanwhile', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await onlineIn(server, client, thread.id);
    let f = await online(server, freelancer, { label: 'before' });
    try {
      await c.next('chat:presence', { where: (d) => d.userId === freelancer.id && d.online === true });
      await f.close();
      await c.next('chat:presence', { where: (d) => d.userId === freelancer.id && d.online === false });
      const m = await c.send(thread.id, 'sent while offline');
      f = await online(server, freelancer, { label: 'after' });
      assert.deepEqual(beforeReady(f).map((e) => e.data.message), [m]);
    } finally {
      await closeAll(c, f);
    }
  });

  it('sets deliveredAt: when an online recipient acknowledges the message, on the next connect for offline ones', async () => {
    const { client, freelancer } = await cast(server);
    const third = await newUser(server, { role: 'freelancer' });
    const group = await newThread(server, [client, freelancer, third]);
    const c = await online(server, client);
    const t = await online(server, third); // online, but never joins the thread
    let f;
    try {
      const m = await c.send(group.id, 'who got it when?');
      await t.nextMessage(m.id);
      let page = await eventually(async () => {
        const p = assertOk(await getMessages(server, group.id));
        return receipt(p.messages, m.id, third.id).deliveredAt ? p : null;
      }, { what: 'deliveredAt of the online recipient, once its client acknowledged the message' });
      assertTimestamp(receipt(page.messages, m.id, third.id).deliveredAt, 'deliveredAt of the online recipient');
      assert.equal(receipt(page.messages, m.id, freelancer.id).deliveredAt ?? null, null, 'not delivered while offline');
      assert.equal(receipt(page.messages, m.id, freelancer.id).readAt ?? null, null);

      f = await online(server, freelancer);
      assert.deepEqual(beforeReady(f).map((e) => e.data.message.id), [m.id]);
      page = await eventually(async () => {
        const p = assertOk(await getMessages(server, group.id));
        return receipt(p.messages, m.id, freelancer.id).deliveredAt ? p : null;
      }, { what: 'deliveredAt set after the queued message was delivered' });
      assertTimestamp(receipt(page.messages, m.id, freelancer.id).deliveredAt, 'deliveredAt after connect');
    } finally {
      await closeAll(c, t, f);
    }
  });

  it(`${QUEUE_MAX + OLDER} messages to an offline user: the newest ${QUEUE_MAX}, then chat:resync { threadIds }, then chat:ready; the older ${OLDER} on the next connect`, async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await online(server, client);
    let f;
    let again;
    try {
      const sent = await sendMany(c, thread.id, QUEUE_MAX + OLDER, (i) => `flood ${i}`);
      f = await online(server, freelancer, { timeout: 20_000 });
      const early = beforeReady(f);
      const messages = early.filter((e) => e.event === 'chat:message').map((e) => e.data.message.id);
      assert.equal(messages.length, QUEUE_MAX);
      assert.deepEqual(messages, sent.slice(-QUEUE_MAX).map((m) => m.id), 'the newest 200, in order');
      const resync = early.filter((e) => e.event === 'chat:resync');
      assert.equal(resync.length, 1, 'one chat:resync');
      assert.deepEqual(resync[0].data, { threadIds: [thread.id] });
      assert.equal(early.at(-1).event, 'chat:resync', 'resync comes after the queued messages, before chat:ready');

      // What fell out of the queue is still in history.
      const history = await fullHistory(server, thread.id);
      assert.deepEqual(history.map((m) => m.id), sent.map((m) => m.id));
      const page = await f.ok('chat:history', { threadId: thread.id, beforeId: sent[OLDER].id });
      assert.deepEqual(page.messages.map((m) => m.id), sent.slice(0, OLDER).map((m) => m.id));

      // No device acknowledged the 50 oldest: the next connection gets them, once;
      // the 200 acknowledged ones do not come again.
      await eventually(async () => {
        const acked = new Set((await fullHistory(server, thread.id))
          .filter((m) => m.receipts.find((r) => r.userId === freelancer.id)?.deliveredAt)
          .map((m) => m.id));
        return sent.slice(OLDER).every((m) => acked.has(m.id));
      }, { what: 'the 200 sent ones acknowledged' });
      await f.close();
      again = await online(server, freelancer, { label: 'reconnect' });
      assert.deepEqual(beforeReady(again).map((e) => e.data.message.id), sent.slice(0, OLDER).map((m) => m.id), 'the older 50, no resync: all 250 recovered');
    } finally {
      await closeAll(c, f, again);
    }
  });

  it('Redis: chat:offline:<user> grows for an offline user, with a TTL, and is removed on delivery', { skip: needsMysqlRedis }, async () => {
    const { client, freelancer, thread } = await cast(server);
    const redis = isMysqlRedis ? await openRedis() : null;
    const c = await online(server, client);
    const key = `chat:offline:${freelancer.id}`;
    let f;
    try {
      await c.send(thread.id, 'one');
      assert.equal(await redis.lLen(key), 1);
      await c.send(thread.id, 'two');
      assert.equal(await redis.lLen(key), 2);
      const ttl = await redis.ttl(key);
      assert.ok(ttl > 29 * 24 * 3600 && ttl <= 30 * 24 * 3600, `${key} expires in about 30 days (got ${ttl} s)`);
      f = await online(server, freelancer);
      await eventually(async () => (await redis.exists(key)) === 0, { what: `${key} removed after delivery` });
    } finally {
      await closeAll(c, f);
      await closeRedis(redis);
    }
  });

  it('Redis: an overflowing queue is capped at 200 and its thread is in chat:offline:<user>:resync', { skip: needsMysqlRedis }, async () => {
    const { client, freelancer, thread } = await cast(server);
    const redis = isMysqlRedis ? await openRedis() : null;
    const c = await online(server, client);
    try {
      await sendMany(c, thread.id, QUEUE_MAX + 2);
      assert.equal(await redis.lLen(`chat:offline:${freelancer.id}`), QUEUE_MAX);
      assert.deepEqual(await redis.sMembers(`chat:offline:${freelancer.id}:resync`), [thread.id]);
    } finally {
      await c.close();
      await closeRedis(redis);
    }
  });
});
