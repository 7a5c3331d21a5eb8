// chat:presence: a user's first socket announces online, the last one gone
// announces offline (with lastSeenAt), to the rooms of every thread they are in.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { closeAll } from './lib/client.mjs';
import { isMysqlRedis, needsMysqlRedis } from './lib/config.mjs';
import { assertTimestamp, cast, eventually, newThread, newUser, online, onlineIn, participant } from './lib/fixtures.mjs';
import { closeRedis, openRedis } from './lib/redis.mjs';
import { startServer } from './lib/server.mjs';

let server;
before(async () => {
  server = await startServer({ label: 'presence' });
});
after(async () => {
  await server?.stop();
});

const about = (userId) => (d) => d.userId === userId;

describe('chat:presence', () => {
  it("first socket → online; a second device → nothing; last socket gone → offline with lastSeenAt", async () => {
    const { client, freelancer, thread } = await cast(server);
    const watcher = await onlineIn(server, client, thread.id, { label: 'watcher' });
    let phone;
    let laptop;
    try {
      phone = await online(server, freelancer, { label: 'phone' });
      const on = await watcher.next('chat:presence', { where: about(freelancer.id) });
      assert.equal(on.online, true);
      assert.equal(on.userId, freelancer.id);

      laptop = await online(server, freelancer, { label: 'laptop' });
      const sync1 = await laptop.send(thread.id, 'second device here');
      await watcher.nextMessage(sync1.id);
      await watcher.expectNone('chat:presence', { where: about(freelancer.id), why: 'a second device is not a presence change' });

      await phone.close();
      const sync2 = await laptop.send(thread.id, 'phone gone, laptop still here');
      await watcher.nextMessage(sync2.id);
      await watcher.expectNone('chat:presence', { where: about(freelancer.id), why: 'one socket is still connected' });

      await laptop.close();
      const off = await watcher.next('chat:presence', { where: about(freelancer.id) });
      assert.equal(off.online, false);
      assertTimestamp(off.lastSeenAt, 'lastSeenAt');
    } finally {
      await closeAll(watcher, phone, laptop);
    }
  });

  it('goes to the room of every thread the user is in, and not to unrelated threads', async () => {
    const subject = await newUser(server, { role: 'freelancer' });
    const [a, b, outsider, outsiderPeer] = await Promise.all([
      newUser(server, { role: 'client' }),
      newUser(server, { role: 'client' }),
      newUser(server, { role: 'client' }),
      newUser(server, { role: 'freelancer' }),
    ]);
    const t1 = await newThread(server, [a, subject]);
    const t2 = await newThread(server, [b, subject]);
    const t3 = await newThread(server, [outsider, outsiderPeer]);
    const wa = await onlineIn(server, a, t1.id, { label: 'watcher-t1' });
    const wb = await onlineIn(server, b, t2.id, { label: 'watcher-t2' });
    const wo = await onlineIn(server, outsider, t3.id, { label: 'outsider' });
    let s;
    try {
      s = await online(server, subject);
      assert.equal((await wa.next('chat:presence', { where: about(subject.id) })).online, true);
      assert.equal((await wb.next('chat:presence', { where: about(subject.id) })).online, true);
      await s.close();
      assert.equal((await wa.next('chat:presence', { where: about(subject.id) })).online, false);
      assert.equal((await wb.next('chat:presence', { where: about(subject.id) })).online, false);
      await wo.expectNone('chat:presence', { where: about(subject.id), why: 'the outsider shares no thread with the user' });
    } finally {
      await closeAll(wa, wb, wo, s);
    }
  });

  it('an admin watching a thread sees its participants come and go', async () => {
    const { admin, freelancer, thread } = await cast(server);
    const a = await onlineIn(server, admin, thread.id);
    let f;
    try {
      f = await online(server, freelancer);
      assert.equal((await a.next('chat:presence', { where: about(freelancer.id) })).online, true);
      await f.close();
      assert.equal((await a.next('chat:presence', { where: about(freelancer.id) })).online, false);
    } finally {
      await closeAll(a, f);
    }
  });

  it('the online flags of chat:join follow presence', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await onlineIn(server, client, thread.id);
    let f;
    try {
      assert.equal(participant(await c.join(thread.id), freelancer.id).online, false);
      f = await online(server, freelancer);
      await c.next('chat:presence', { where: (d) => d.userId === freelancer.id && d.online === true });
      assert.equal(participant(await c.join(thread.id), freelancer.id).online, true);
      await f.close();
      await c.next('chat:presence', { where: (d) => d.userId === freelancer.id && d.online === false });
      assert.equal(participant(await c.join(thread.id), freelancer.id).online, false);
    } finally {
      await closeAll(c, f);
    }
  });

  it('Redis holds chat:presence:<user> (instance -> "<count>@<ms>", the count and when it was written) with a TTL while connected', { skip: needsMysqlRedis }, async () => {
    const { client, freelancer, thread } = await cast(server);
    const redis = isMysqlRedis ? await openRedis() : null;
    const watcher = await onlineIn(server, client, thread.id);
    const key = `chat:presence:${freelancer.id}`;
    let f1;
    let f2;
    try {
      f1 = await online(server, freelancer);
      f2 = await online(server, freelancer);
      const fields = async () => Object.values(await redis.hGetAll(key)).map((v) => v.match(/^(\d+)@(\d+)$/));
      await eventually(async () => (await fields()).reduce((n, f) => n + Number(f?.[1]), 0) === 2, { what: `${key} counts 2 connections` });
      const [field, ...others] = await fields();
      assert.equal(others.length, 0, 'both on this one instance');
      assert.ok(Math.abs(Number(field[2]) - Date.now()) < 60_000, `written just now (Redis time): ${field[0]}`);
      const ttl = await redis.pTTL(key);
      assert.ok(ttl > 0, `${key} has a TTL (got ${ttl})`);
      await closeAll(f1, f2);
      await watcher.next('chat:presence', { where: (d) => d.userId === freelancer.id && d.online === false });
      await eventually(async () => (await redis.exists(key)) === 0, { what: `${key} gone after the last socket` });
    } finally {
      await closeAll(watcher, f1, f2);
      await closeRedis(redis);
    }
  });
});
