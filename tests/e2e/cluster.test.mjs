// Two instances on the same MariaDB + Redis (mysql-redis only): clients on
// different instances see each other's messages, typing, read receipts and
// presence; the rate limit, idempotency and offline queue are cluster-wide.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { closeAll, newClientMessageId } from './lib/client.mjs';
import { isMysqlRedis, needsMysqlRedis } from './lib/config.mjs';
import { cast, newThread, newUser, online, onlineIn, participant } from './lib/fixtures.mjs';
import { newSecrets, startServer } from './lib/server.mjs';

describe('two instances', { skip: needsMysqlRedis }, () => {
  let s1;
  let s2;
  before(async () => {
    if (!isMysqlRedis) return;
    const secrets = newSecrets();
    s1 = await startServer({ label: 'node1', secrets });
    s2 = await startServer({ label: 'node2', secrets });
  });
  after(async () => {
    await Promise.all([s1?.stop(), s2?.stop()]);
  });

  it('messages cross instances, to every socket of the recipient and to the sender\'s other device', async () => {
    const { client, freelancer, thread } = await cast(s1);
    const c = await onlineIn(s1, client, thread.id, { label: 'client@node1' });
    const cOther = await online(s2, client, { label: 'client-other@node2' });
    const f2 = await online(s2, freelancer, { label: 'freelancer@node2' });
    const f1 = await online(s1, freelancer, { label: 'freelancer@node1' });
    try {
      const m = await c.send(thread.id, 'hello from node1');
      for (const s of [f2, f1, cOther]) assert.deepEqual(await s.nextMessage(m.id), m);
      const r = await f2.send(thread.id, 'hello from node2');
      assert.deepEqual(await c.nextMessage(r.id), r);
      assert.deepEqual(await f1.nextMessage(r.id), r);
      const sync = await c.send(thread.id, 'sync point');
      for (const s of [f2, f1, cOther]) {
        await s.nextMessage(sync.id);
        assert.equal(s.count('chat:message', (d) => d.message.id === m.id), 1, `${s.label} got it once`);
      }
      await c.expectNone('chat:message', { where: (d) => d.message.id === m.id || d.message.id === sync.id });
    } finally {
      await closeAll(c, cOther, f1, f2);
    }
  });

  it('an admin watching on the other instance gets the messages', async () => {
    const { admin, client, thread } = await cast(s1);
    const a = await onlineIn(s2, admin, thread.id);
    const c = await online(s1, client);
    try {
      const m = await c.send(thread.id, 'watched across instances');
      assert.deepEqual(await a.nextMessage(m.id), m);
    } finally {
      await closeAll(a, c);
    }
  });

  it('typing crosses instances', async () => {
    const { client, freelancer, thread } = await cast(s1);
    const c = await onlineIn(s1, client, thread.id);
    const f = await onlineIn(s2, freelancer, thread.id);
    try {
      await c.ok('chat:typing', { threadId: thread.id, isTyping: true });
      assert.deepEqual(await f.next('chat:typing'), { threadId: thread.id, userId: client.id, isTyping: true });
      const m = await c.send(thread.id, 'typed');
      await f.nextMessage(m.id);
      assert.deepEqual(await f.next('chat:typing'), { threadId: thread.id, userId: client.id, isTyping: false });
    } finally {
      await closeAll(c, f);
    }
  });

  it('read receipts cross instances', async () => {
    const { client, freelancer, thread } = await cast(s1);
    const c = await onlineIn(s1, client, thread.id);
    const f = await onlineIn(s2, freelancer, thread.id);
    try {
      const m = await c.send(thread.id, 'read me');
      await f.nextMessage(m.id);
      await f.ok('chat:read', { threadId: thread.id, messageId: m.id });
      const ev = await c.next('chat:read');
      assert.equal(ev.userId, freelancer.id);
      assert.equal(ev.messageId, m.id);
      assert.equal((await c.join(thread.id)).unreadCount, 0);
      assert.equal(participant(await c.join(thread.id), freelancer.id).lastReadMessageId, m.id);
    } finally {
      await closeAll(c, f);
    }
  });

  it('presence crosses instances and counts sockets on both', async () => {
    const { client, freelancer, thread } = await cast(s1);
    const watcher = await onlineIn(s1, client, thread.id);
    let f2;
    let f1;
    try {
      f2 = await online(s2, freelancer, { label: 'freelancer@node2' });
      assert.equal((await watcher.next('chat:presence', { where: (d) => d.userId === freelancer.id })).online, true);
      assert.equal(participant(await watcher.join(thread.id), freelancer.id).online, true, 'node1 sees a user connected to node2');

      f1 = await online(s1, freelancer, { label: 'freelancer@node1' });
      await f2.close();
      const sync = await f1.send(thread.id, 'still here on node1');
      await watcher.nextMessage(sync.id);
      await watcher.expectNone('chat:presence', { where: (d) => d.userId === freelancer.id, why: 'one socket remains (on the other instance)' });

      await f1.close();
      const off = await watcher.next('chat:presence', { where: (d) => d.userId === freelancer.id });
      assert.equal(off.online, false);
    } finally {
      await closeAll(watcher, f1, f2);
    }
  });

  it('the rate limit counts sends on both instances', async () => {
    const { client, thread } = await cast(s1);
    const a = await online(s1, client);
    const b = await online(s2, client);
    try {
      for (let i = 0; i < 25; i++) await (i % 2 ? a : b).send(thread.id, `spread ${i}`);
      await a.fails('chat:send-message', { threadId: thread.id, body: 'over', clientMessageId: newClientMessageId() }, 'rate_limited');
      await b.fails('chat:send-message', { threadId: thread.id, body: 'over', clientMessageId: newClientMessageId() }, 'rate_limited');
    } finally {
      await closeAll(a, b);
    }
  });

  it('idempotency holds across instances', async () => {
    const { client, freelancer, thread } = await cast(s1);
    const a = await online(s1, client);
    const b = await online(s2, client);
    const f = await online(s2, freelancer);
    try {
      const key = newClientMessageId();
      const [x, y] = await Promise.all([a.send(thread.id, 'once', key), b.send(thread.id, 'once', key)]);
      assert.equal(x.id, y.id);
      const sync = await a.send(thread.id, 'sync point');
      await f.nextMessage(sync.id);
      assert.equal(f.count('chat:message', (d) => d.message.id === x.id), 1);
    } finally {
      await closeAll(a, b, f);
    }
  });

  it('a message queued through one instance is delivered on connect to the other', async () => {
    const { client, freelancer, thread } = await cast(s1);
    const c = await online(s1, client);
    let f;
    try {
      const m = await c.send(thread.id, 'queued on node1');
      f = await online(s2, freelancer);
      const ready = f.eventNames().indexOf('chat:ready');
      assert.deepEqual(f.log.slice(0, ready).map((e) => e.data.message), [m]);
    } finally {
      await closeAll(c, f);
    }
  });

  it('a participant added through one instance can join through the other', async () => {
    const { thread } = await cast(s1);
    const newcomer = await newUser(s2, { role: 'freelancer' });
    const n = await online(s2, newcomer);
    try {
      await n.fails('chat:join', { threadId: thread.id }, 'not_found');
      const res = await fetch(new URL(`/api/threads/${thread.id}/participants`, s1.url), {
        method: 'POST',
        headers: { authorization: `Bearer ${s1.serviceToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ userId: newcomer.id }),
      });
      assert.ok(res.ok, `add participant: ${res.status}`);
      const t = await n.join(thread.id);
      assert.ok(t.participants.some((p) => p.userId === newcomer.id));
    } finally {
      await n.close();
    }
  });

  it('threads created on one instance are usable on the other', async () => {
    const a = await newUser(s1, { role: 'client' });
    const b = await newUser(s2, { role: 'freelancer' });
    const thread = await newThread(s2, [a, b]);
    const c = await onlineIn(s1, a, thread.id);
    try {
      assert.equal((await c.join(thread.id)).id, thread.id);
    } finally {
      await c.close();
    }
  });
});
