// chat:read: last-read marks that never go backwards, relayed only when they move,
// receipts' readAt, and the unread count of a later join.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { closeAll } from './lib/client.mjs';
import { assertTimestamp, cast, newThread, online, onlineIn, participant, rid, sendMany } from './lib/fixtures.mjs';
import { assertOk, getMessages } from './lib/http.mjs';
import { startServer } from './lib/server.mjs';

let server;
before(async () => {
  server = await startServer({ label: 'read' });
});
after(async () => {
  await server?.stop();
});

/** A thread with three messages from the client; the freelancer is the reader. */
async function threeMessages() {
  const people = await cast(server);
  const c = await onlineIn(server, people.client, people.thread.id, { label: 'author' });
  const messages = await sendMany(c, people.thread.id, 3);
  return { ...people, author: c, messages };
}

describe('chat:read', () => {
  it('acks the stored mark and relays { threadId, userId, messageId, readAt } to the others in the room', async () => {
    const { freelancer, thread, author, messages: [, m2] } = await threeMessages();
    const reader = await onlineIn(server, freelancer, thread.id, { label: 'reader' });
    const readerOther = await onlineIn(server, freelancer, thread.id, { label: 'reader-other-device' });
    try {
      const ack = await reader.ok('chat:read', { threadId: thread.id, messageId: m2.id });
      assert.deepEqual(ack, { ok: true, lastReadMessageId: m2.id });
      for (const s of [author, readerOther]) {
        const ev = await s.next('chat:read');
        assert.deepEqual({ ...ev, readAt: undefined }, { threadId: thread.id, userId: freelancer.id, messageId: m2.id, readAt: undefined });
        assertTimestamp(ev.readAt, 'readAt');
      }
      await reader.expectNone('chat:read', { why: 'the reading socket gets the ack only' });
    } finally {
      await closeAll(author, reader, readerOther);
    }
  });

  it('never moves backwards, and is relayed only when the mark moves', async () => {
    const { freelancer, thread, author, messages: [m1, m2, m3] } = await threeMessages();
    const reader = await onlineIn(server, freelancer, thread.id);
    try {
      await reader.ok('chat:read', { threadId: thread.id, messageId: m2.id });
      assert.equal((await author.next('chat:read')).messageId, m2.id);

      const older = await reader.ok('chat:read', { threadId: thread.id, messageId: m1.id });
      assert.equal(older.lastReadMessageId, m2.id, 'reading an older message returns the later mark');
      const same = await reader.ok('chat:read', { threadId: thread.id, messageId: m2.id });
      assert.equal(same.lastReadMessageId, m2.id);

      await reader.ok('chat:read', { threadId: thread.id, messageId: m3.id });
      // Had the two reads above been relayed, they would come before this one.
      assert.equal((await author.next('chat:read')).messageId, m3.id, 'no relay for reads that did not move the mark');
    } finally {
      await closeAll(author, reader);
    }
  });

  it('the unread count and read marks of a later join reflect the reads', async () => {
    const { client, freelancer, thread, author, messages: [, m2, m3] } = await threeMessages();
    const reader = await online(server, freelancer);
    try {
      let view = await reader.join(thread.id);
      assert.equal(view.unreadCount, 3);
      await reader.ok('chat:read', { threadId: thread.id, messageId: m2.id });
      view = await reader.join(thread.id);
      assert.equal(view.unreadCount, 1);
      assert.equal(participant(view, freelancer.id).lastReadMessageId, m2.id);
      assert.equal(participant(view, client.id).lastReadMessageId, m3.id, "the author's mark moved with its own sends");

      const authorView = await author.join(thread.id);
      assert.equal(participant(authorView, freelancer.id).lastReadMessageId, m2.id, 'others see the mark too');

      await reader.ok('chat:read', { threadId: thread.id, messageId: m3.id });
      assert.equal((await reader.join(thread.id)).unreadCount, 0);
    } finally {
      await closeAll(author, reader);
    }
  });

  it('sets readAt on every receipt of the reader up to the mark (admin history)', async () => {
    const { freelancer, thread, author, messages: [m1, m2, m3] } = await threeMessages();
    const reader = await online(server, freelancer);
    try {
      await reader.ok('chat:read', { threadId: thread.id, messageId: m2.id });
      const page = assertOk(await getMessages(server, thread.id));
      const readAt = (m) => page.messages.find((x) => x.id === m.id).receipts.find((r) => r.userId === freelancer.id).readAt;
      assertTimestamp(readAt(m1), 'readAt of m1');
      assertTimestamp(readAt(m2), 'readAt of m2');
      assert.equal(readAt(m3) ?? null, null, 'm3 is after the mark');
    } finally {
      await closeAll(author, reader);
    }
  });

  it('a message of another thread, or one that does not exist, is not_found', async () => {
    const { client, freelancer, thread, author } = await threeMessages();
    const other = await newThread(server, [client, freelancer]);
    const foreign = await author.send(other.id, 'elsewhere');
    const reader = await online(server, freelancer);
    try {
      await reader.fails('chat:read', { threadId: thread.id, messageId: foreign.id }, 'not_found');
      await reader.fails('chat:read', { threadId: thread.id, messageId: '999999999999999' }, 'not_found');
      await reader.fails('chat:read', { threadId: rid('missing'), messageId: foreign.id }, 'not_found');
      assert.equal((await reader.join(thread.id)).unreadCount, 3, 'nothing was marked');
    } finally {
      await closeAll(author, reader);
    }
  });

  const badIds = [
    ['letters', 'abc'],
    ['a fraction', '1.5'],
    ['a negative number', '-1'],
    ['a hex string', '0x1f'],
    ['an empty string', ''],
    ['a JSON number instead of a string', 1],
    ['null', null],
  ];
  for (const [what, messageId] of badIds) {
    it(`a message id that is ${what} is invalid_payload`, async () => {
      const { freelancer, thread } = await cast(server);
      const reader = await online(server, freelancer);
      try {
        await reader.fails('chat:read', { threadId: thread.id, messageId }, 'invalid_payload');
      } finally {
        await reader.close();
      }
    });
  }

  it('a missing payload or a malformed thread id is invalid_payload', async () => {
    const { freelancer } = await cast(server);
    const reader = await online(server, freelancer);
    try {
      await reader.fails('chat:read', undefined, 'invalid_payload');
      await reader.fails('chat:read', { threadId: 'bad id!', messageId: '1' }, 'invalid_payload');
      await reader.fails('chat:read', { messageId: '1' }, 'invalid_payload');
    } finally {
      await reader.close();
    }
  });

  it('an admin watching gets forbidden, and the reading does not mark anything', async () => {
    const { admin, freelancer, thread, author, messages: [, , m3] } = await threeMessages();
    const a = await onlineIn(server, admin, thread.id);
    try {
      await a.fails('chat:read', { threadId: thread.id, messageId: m3.id }, 'forbidden');
      const page = assertOk(await getMessages(server, thread.id));
      for (const m of page.messages) {
        assert.equal(m.receipts.find((r) => r.userId === admin.id), undefined, 'no receipt for a non-participant admin');
        assert.equal(m.receipts.find((r) => r.userId === freelancer.id).readAt ?? null, null);
      }
      const f = await online(server, freelancer);
      try {
        assert.equal((await f.join(thread.id)).unreadCount, 3);
      } finally {
        await f.close();
      }
      await author.expectNone('chat:read');
    } finally {
      await closeAll(a, author);
    }
  });

  it('a non-participant gets not_found', async () => {
    const { stranger, thread, author, messages: [m1] } = await threeMessages();
    const s = await online(server, stranger);
    try {
      await s.fails('chat:read', { threadId: thread.id, messageId: m1.id }, 'not_found');
    } finally {
      await closeAll(s, author);
    }
  });
});
