// chat:history: pages oldest first, beforeId paging, limits, access.
// This server allows 1000 sends a minute so a test can store more than 100 messages.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { closeAll } from './lib/client.mjs';
import { cast, online, onlineIn, rid, sendMany } from './lib/fixtures.mjs';
import { startServer } from './lib/server.mjs';

let server;
before(async () => {
  server = await startServer({ label: 'history', env: { CHAT_RATE_LIMIT_PER_MINUTE: '1000' } });
});
after(async () => {
  await server?.stop();
});

const ids = (messages) => messages.map((m) => m.id);

describe('chat:history', () => {
  it('returns the messages oldest first, exactly as they were acked', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await online(server, client);
    const f = await online(server, freelancer);
    try {
      const sent = [await c.send(thread.id, 'one'), await f.send(thread.id, 'two'), await c.send(thread.id, 'three')];
      const page = await f.ok('chat:history', { threadId: thread.id });
      assert.deepEqual(page.messages, sent);
      assert.equal(page.hasMore, false);
    } finally {
      await closeAll(c, f);
    }
  });

  it('an empty thread has no messages and no more', async () => {
    const { client, thread } = await cast(server);
    const c = await online(server, client);
    try {
      const page = await c.ok('chat:history', { threadId: thread.id });
      assert.deepEqual(page, { ok: true, messages: [], hasMore: false });
    } finally {
      await c.close();
    }
  });

  it('pages backwards with beforeId: 7 messages, limit 3', async () => {
    const { client, thread } = await cast(server);
    const c = await online(server, client);
    try {
      const sent = await sendMany(c, thread.id, 7);
      const p1 = await c.ok('chat:history', { threadId: thread.id, limit: 3 });
      assert.deepEqual(ids(p1.messages), ids(sent.slice(4, 7)), 'the newest page first, oldest first within it');
      assert.equal(p1.hasMore, true);
      const p2 = await c.ok('chat:history', { threadId: thread.id, limit: 3, beforeId: p1.messages[0].id });
      assert.deepEqual(ids(p2.messages), ids(sent.slice(1, 4)));
      assert.equal(p2.hasMore, true);
      const p3 = await c.ok('chat:history', { threadId: thread.id, limit: 3, beforeId: p2.messages[0].id });
      assert.deepEqual(ids(p3.messages), ids(sent.slice(0, 1)));
      assert.equal(p3.hasMore, false);
      assert.deepEqual([...p3.messages, ...p2.messages, ...p1.messages], sent);
    } finally {
      await c.close();
    }
  });

  it('limit 1 returns the newest message; beforeId the oldest returns nothing', async () => {
    const { client, thread } = await cast(server);
    const c = await online(server, client);
    try {
      const sent = await sendMany(c, thread.id, 2);
      const p = await c.ok('chat:history', { threadId: thread.id, limit: 1 });
      assert.deepEqual(p.messages, [sent[1]]);
      assert.equal(p.hasMore, true);
      const empty = await c.ok('chat:history', { threadId: thread.id, beforeId: sent[0].id });
      assert.deepEqual(empty.messages, []);
      assert.equal(empty.hasMore, false);
    } finally {
      await c.close();
    }
  });

  it('a beforeId newer than every message returns the newest page', async () => {
    const { client, thread } = await cast(server);
    const c = await online(server, client);
    try {
      const mine = await sendMany(c, thread.id, 2);
      const page = await c.ok('chat:history', { threadId: thread.id, beforeId: '999999999999999' });
      assert.deepEqual(page.messages, mine);
      assert.equal(page.hasMore, false);
    } finally {
      await c.close();
    }
  });

  it('default limit 50; limit over 100 is capped to 100', async () => {
    const { client, thread } = await cast(server);
    const c = await online(server, client);
    try {
      const sent = await sendMany(c, thread.id, 105, (i) => `bulk ${i}`);
      const def = await c.ok('chat:history', { threadId: thread.id });
      assert.equal(def.messages.length, 50);
      assert.deepEqual(ids(def.messages), ids(sent.slice(-50)));
      assert.equal(def.hasMore, true);
      const capped = await c.ok('chat:history', { threadId: thread.id, limit: 500 });
      assert.equal(capped.messages.length, 100);
      assert.deepEqual(ids(capped.messages), ids(sent.slice(-100)));
      assert.equal(capped.hasMore, true);
      const exact = await c.ok('chat:history', { threadId: thread.id, limit: 100 });
      assert.deepEqual(ids(exact.messages), ids(sent.slice(-100)));
      const rest = await c.ok('chat:history', { threadId: thread.id, limit: 100, beforeId: exact.messages[0].id });
      assert.deepEqual(ids(rest.messages), ids(sent.slice(0, 5)));
      assert.equal(rest.hasMore, false);
    } finally {
      await c.close();
    }
  });

  for (const limit of [0, -1, 1.5, 'x', true, {}]) {
    it(`limit ${JSON.stringify(limit)} is invalid_payload`, async () => {
      const { client, thread } = await cast(server);
      const c = await online(server, client);
      try {
        await c.fails('chat:history', { threadId: thread.id, limit }, 'invalid_payload');
      } finally {
        await c.close();
      }
    });
  }

  it('a malformed beforeId, thread id or payload is invalid_payload', async () => {
    const { client, thread } = await cast(server);
    const c = await online(server, client);
    try {
      await c.fails('chat:history', { threadId: thread.id, beforeId: 'abc' }, 'invalid_payload');
      await c.fails('chat:history', { threadId: thread.id, beforeId: 12 }, 'invalid_payload');
      await c.fails('chat:history', { threadId: thread.id, beforeId: '-3' }, 'invalid_payload');
      await c.fails('chat:history', { threadId: 'bad id!' }, 'invalid_payload');
      await c.fails('chat:history', {}, 'invalid_payload');
      await c.fails('chat:history', undefined, 'invalid_payload');
    } finally {
      await c.close();
    }
  });

  it('an admin who is not a participant may read the history, with or without joining', async () => {
    const { admin, client, thread } = await cast(server);
    const c = await online(server, client);
    const a = await online(server, admin);
    try {
      const sent = await sendMany(c, thread.id, 3);
      assert.deepEqual((await a.ok('chat:history', { threadId: thread.id })).messages, sent);
      await a.join(thread.id);
      assert.deepEqual((await a.ok('chat:history', { threadId: thread.id, limit: 2 })).messages, sent.slice(1));
    } finally {
      await closeAll(c, a);
    }
  });

  it('a non-participant gets not_found, like an unknown thread', async () => {
    const { stranger, thread } = await cast(server);
    const s = await online(server, stranger);
    try {
      await s.fails('chat:history', { threadId: thread.id }, 'not_found');
      await s.fails('chat:history', { threadId: rid('missing') }, 'not_found');
    } finally {
      await s.close();
    }
  });

  it('a participant may read the history without joining the room', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await onlineIn(server, client, thread.id);
    const f = await online(server, freelancer);
    try {
      const m = await c.send(thread.id, 'read me later');
      assert.deepEqual((await f.ok('chat:history', { threadId: thread.id })).messages, [m]);
    } finally {
      await closeAll(c, f);
    }
  });
});
