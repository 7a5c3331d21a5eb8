// chat:typing: relayed to the other sockets of the thread's participants (joined or
// not) and of the thread room; a send ends it.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { closeAll } from './lib/client.mjs';
import { cast, eventually, online, onlineIn, rid } from './lib/fixtures.mjs';
import { isMysqlRedis, needsMysqlRedis } from './lib/config.mjs';
import { closeRedis, openRedis } from './lib/redis.mjs';
import { startServer } from './lib/server.mjs';

let server;
before(async () => {
  server = await startServer({ label: 'typing' });
});
after(async () => {
  await server?.stop();
});

describe('chat:typing', () => {
  it('the other participants\' sockets, joined or not, get { threadId, userId, isTyping }; the typist and users outside the thread do not', async () => {
    const { client, freelancer, stranger, thread } = await cast(server);
    const typist = await onlineIn(server, client, thread.id, { label: 'typist' });
    const watcher = await onlineIn(server, freelancer, thread.id, { label: 'watcher' });
    const notJoined = await online(server, freelancer, { label: 'freelancer-not-joined' });
    const outside = await online(server, stranger, { label: 'stranger' });
    try {
      const ack = await typist.ok('chat:typing', { threadId: thread.id, isTyping: true });
      assert.deepEqual(ack, { ok: true });
      for (const s of [watcher, notJoined]) {
        assert.deepEqual(await s.next('chat:typing'), { threadId: thread.id, userId: client.id, isTyping: true }, s.label);
      }

      await typist.ok('chat:typing', { threadId: thread.id, isTyping: false });
      for (const s of [watcher, notJoined]) {
        assert.deepEqual(await s.next('chat:typing'), { threadId: thread.id, userId: client.id, isTyping: false }, s.label);
      }

      // Sync on events every socket gets, then nothing else may have arrived.
      const m = await watcher.send(thread.id, 'sync point');
      await typist.nextMessage(m.id);
      await notJoined.nextMessage(m.id);
      await outside.ack('chat:sync-point', {}); // a round trip: what was sent before it has arrived
      await typist.expectNone('chat:typing', { why: 'a typist does not get its own typing state' });
      await outside.expectNone('chat:typing', { why: 'typing goes to the thread\'s participants only' });
    } finally {
      await closeAll(typist, watcher, notJoined, outside);
    }
  });

  it('a participant who has not joined the room may still type', async () => {
    const { client, freelancer, thread } = await cast(server);
    const typist = await online(server, client);
    const watcher = await onlineIn(server, freelancer, thread.id);
    try {
      await typist.ok('chat:typing', { threadId: thread.id, isTyping: true });
      assert.deepEqual(await watcher.next('chat:typing'), { threadId: thread.id, userId: client.id, isTyping: true });
    } finally {
      await closeAll(typist, watcher);
    }
  });

  it('sending a message ends typing: the others get isTyping false', async () => {
    const { client, freelancer, thread } = await cast(server);
    const typist = await onlineIn(server, client, thread.id);
    const watcher = await onlineIn(server, freelancer, thread.id);
    try {
      await typist.ok('chat:typing', { threadId: thread.id, isTyping: true });
      await watcher.next('chat:typing', { where: (d) => d.isTyping === true });
      const m = await typist.send(thread.id, 'done typing');
      await watcher.nextMessage(m.id);
      assert.deepEqual(await watcher.next('chat:typing'), { threadId: thread.id, userId: client.id, isTyping: false });
    } finally {
      await closeAll(typist, watcher);
    }
  });

  it('an admin watching the thread gets forbidden, and nothing is relayed', async () => {
    const { admin, client, freelancer, thread } = await cast(server);
    const a = await onlineIn(server, admin, thread.id);
    const c = await onlineIn(server, client, thread.id);
    const f = await onlineIn(server, freelancer, thread.id);
    try {
      await a.fails('chat:typing', { threadId: thread.id, isTyping: true }, 'forbidden');
      // The admin's attempt was not relayed: the first typing state anyone gets is the client's.
      await c.ok('chat:typing', { threadId: thread.id, isTyping: true });
      assert.deepEqual(await f.next('chat:typing'), { threadId: thread.id, userId: client.id, isTyping: true });
      assert.deepEqual(await a.next('chat:typing'), { threadId: thread.id, userId: client.id, isTyping: true }, 'an admin watching sees typing');
    } finally {
      await closeAll(a, c, f);
    }
  });

  it('a non-participant gets not_found', async () => {
    const { stranger, thread } = await cast(server);
    const s = await online(server, stranger);
    try {
      await s.fails('chat:typing', { threadId: thread.id, isTyping: true }, 'not_found');
    } finally {
      await s.close();
    }
  });

  it('an unknown thread is not_found; a malformed payload is invalid_payload', async () => {
    const { client, thread } = await cast(server);
    const c = await online(server, client);
    try {
      await c.fails('chat:typing', { threadId: rid('missing'), isTyping: true }, 'not_found');
      await c.fails('chat:typing', { threadId: 'bad id!', isTyping: true }, 'invalid_payload');
      await c.fails('chat:typing', { threadId: thread.id, isTyping: 'yes' }, 'invalid_payload');
      await c.fails('chat:typing', { threadId: thread.id }, 'invalid_payload');
      await c.fails('chat:typing', undefined, 'invalid_payload');
    } finally {
      await c.close();
    }
  });

  it('Redis holds chat:typing:<thread>:<user> with a TTL of a few seconds while typing', { skip: needsMysqlRedis }, async () => {
    const { client, thread } = await cast(server);
    const c = await online(server, client);
    const redis = isMysqlRedis ? await openRedis() : null;
    try {
      const key = `chat:typing:${thread.id}:${client.id}`;
      await c.ok('chat:typing', { threadId: thread.id, isTyping: true });
      const ttl = await redis.pTTL(key);
      assert.ok(ttl > 0 && ttl <= 10_000, `${key} has a TTL of a few seconds (got ${ttl} ms)`);
      await c.ok('chat:typing', { threadId: thread.id, isTyping: false });
      await eventually(async () => (await redis.exists(key)) === 0, { what: `${key} removed after isTyping false` });
    } finally {
      await c.close();
      await closeRedis(redis);
    }
  });
});
