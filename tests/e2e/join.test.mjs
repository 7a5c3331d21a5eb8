// chat:join (thread view, access rules, id validation) and chat:leave.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { closeAll, connect, newClientMessageId } from './lib/client.mjs';
import { assertMessage, cast, newThread, newUser, online, onlineIn, participant, rid } from './lib/fixtures.mjs';
import { startServer } from './lib/server.mjs';
import { mintToken } from './lib/tokens.mjs';

let server;
before(async () => {
  server = await startServer({ label: 'join' });
});
after(async () => {
  await server?.stop();
});

describe('chat:join', () => {
  it('a participant gets the thread view: participants with profiles, no last message, nothing unread, not read-only', async () => {
    const client = await newUser(server, { role: 'client', displayName: 'Clara Client', avatarUrl: 'https://example.com/clara.png' });
    const freelancer = await newUser(server, { role: 'freelancer', displayName: 'Fred Freelancer' });
    const thread = await newThread(server, [client, freelancer], { title: 'Logo design' });
    const c = await online(server, client);
    try {
      const ack = await c.ok('chat:join', { threadId: thread.id });
      const t = ack.thread;
      assert.equal(t.id, thread.id);
      assert.equal(t.title, 'Logo design');
      assert.equal(t.readOnly, false);
      assert.equal(t.unreadCount, 0);
      assert.equal(t.lastMessage ?? null, null, 'no message yet');
      assert.deepEqual(t.participants.map((p) => p.userId).sort(), [client.id, freelancer.id].sort());

      const pc = participant(t, client.id);
      assert.equal(pc.displayName, 'Clara Client');
      assert.equal(pc.avatarUrl, 'https://example.com/clara.png');
      assert.equal(pc.role, 'client');
      assert.equal(pc.online, true, 'the joining user is connected');
      assert.equal(pc.lastReadMessageId ?? null, null);

      const pf = participant(t, freelancer.id);
      assert.equal(pf.displayName, 'Fred Freelancer');
      assert.equal(pf.avatarUrl ?? null, null, 'no avatar given');
      assert.equal(pf.role, 'freelancer');
      assert.equal(pf.online, false, 'the freelancer has no socket');
      assert.equal(pf.lastReadMessageId ?? null, null);
      for (const p of t.participants) {
        for (const k of ['userId', 'displayName', 'avatarUrl', 'role', 'online', 'lastReadMessageId']) {
          assert.ok(k in p, `participant has ${k}: ${JSON.stringify(p)}`);
        }
      }
    } finally {
      await c.close();
    }
  });

  it('shows every connected participant online', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await online(server, client);
    const f = await online(server, freelancer);
    try {
      const t = await c.join(thread.id);
      assert.equal(participant(t, client.id).online, true);
      assert.equal(participant(t, freelancer.id).online, true);
    } finally {
      await closeAll(c, f);
    }
  });

  it('shows the last message, the unread count and the read marks', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await online(server, client);
    try {
      await c.send(thread.id, 'first');
      const last = await c.send(thread.id, 'second');

      const mine = await c.join(thread.id);
      assertMessage(mine.lastMessage, last);
      assert.equal(mine.unreadCount, 0, 'own messages are not unread');
      assert.equal(participant(mine, client.id).lastReadMessageId, last.id, "sending moves the sender's own read mark");

      const f = await online(server, freelancer);
      try {
        const theirs = await f.join(thread.id);
        assert.deepEqual(theirs.lastMessage, last);
        assert.equal(theirs.unreadCount, 2);
        assert.equal(participant(theirs, freelancer.id).lastReadMessageId ?? null, null);
        assert.equal(participant(theirs, client.id).lastReadMessageId, last.id);
      } finally {
        await f.close();
      }
    } finally {
      await c.close();
    }
  });

  it('an admin who is not a participant may join read-only', async () => {
    const { admin, client, freelancer, thread } = await cast(server);
    const a = await online(server, admin);
    try {
      const t = await a.join(thread.id);
      assert.equal(t.id, thread.id);
      assert.equal(t.readOnly, true);
      assert.deepEqual(t.participants.map((p) => p.userId).sort(), [client.id, freelancer.id].sort());
    } finally {
      await a.close();
    }
  });

  it('an admin who is a participant joins with full rights (readOnly false)', async () => {
    const admin = await newUser(server, { role: 'admin' });
    const client = await newUser(server, { role: 'client' });
    const thread = await newThread(server, [admin, client]);
    const a = await online(server, admin);
    try {
      const t = await a.join(thread.id);
      assert.equal(t.readOnly, false);
    } finally {
      await a.close();
    }
  });

  it('a client who is not a participant gets not_found', async () => {
    const { stranger, thread } = await cast(server);
    const s = await online(server, stranger);
    try {
      await s.fails('chat:join', { threadId: thread.id }, 'not_found');
    } finally {
      await s.close();
    }
  });

  it('a freelancer who is not a participant gets not_found', async () => {
    const { thread } = await cast(server);
    const other = await newUser(server, { role: 'freelancer' });
    const o = await online(server, other);
    try {
      await o.fails('chat:join', { threadId: thread.id }, 'not_found');
    } finally {
      await o.close();
    }
  });

  it('a user without a profile can connect but not join a thread', async () => {
    const { thread } = await cast(server);
    const c = await connect(server, mintToken(server.jwtSecret, rid('ghost'), 'client'));
    try {
      await c.fails('chat:join', { threadId: thread.id }, 'not_found');
    } finally {
      await c.close();
    }
  });

  it('a non-participant cannot probe thread ids: every thread event answers an existing thread exactly like a missing one', async () => {
    const { client, stranger, thread } = await cast(server);
    const c = await online(server, client);
    const s = await online(server, stranger);
    try {
      const m = await c.send(thread.id, 'private');
      const missing = rid('missing');
      const probe = async (threadId) => {
        const calls = [
          ['chat:join', { threadId }],
          ['chat:leave', { threadId }],
          ['chat:history', { threadId }],
          ['chat:typing', { threadId, isTyping: true }],
          ['chat:read', { threadId, messageId: m.id }],
          ['chat:send-message', { threadId, body: 'let me in', clientMessageId: newClientMessageId() }],
        ];
        const out = [];
        for (const [event, payload] of calls) {
          const ack = await s.ack(event, payload);
          out.push([event, ack.ok, ack.error?.code, ack.error?.message.replaceAll(threadId, '<id>')]);
        }
        return out;
      };
      const existing = await probe(thread.id);
      for (const [event, ok, code] of existing) assert.deepEqual([event, ok, code], [event, false, 'not_found']);
      assert.deepEqual(existing, await probe(missing), 'the same answers, word for word');
    } finally {
      await closeAll(c, s);
    }
  });

  it('a well-formed id of a thread that does not exist is not_found (also for an admin)', async () => {
    const { client, admin } = await cast(server);
    const c = await online(server, client);
    const a = await online(server, admin);
    try {
      await c.fails('chat:join', { threadId: rid('missing') }, 'not_found');
      await c.fails('chat:join', { threadId: rid('t').padEnd(64, 'z') }, 'not_found'); // 64 chars: still well-formed
      await a.fails('chat:join', { threadId: rid('missing') }, 'not_found');
    } finally {
      await closeAll(c, a);
    }
  });

  const malformed = [
    ['with a space and "!"', 'bad id!'],
    ['of 65 characters', `t_${'a'.repeat(63)}`],
    ['that is empty', ''],
    ['with a slash', 'a/b'],
    ['with a non-ASCII letter', 'tëst'],
    ['that is a number', 42],
    ['that is null', null],
    ['that is an array', ['t_1']],
  ];
  for (const [what, threadId] of malformed) {
    it(`a thread id ${what} is invalid_payload`, async () => {
      const { client } = await cast(server);
      const c = await online(server, client);
      try {
        await c.fails('chat:join', { threadId }, 'invalid_payload');
      } finally {
        await c.close();
      }
    });
  }

  it('a missing or wrongly shaped payload is invalid_payload, and the socket stays usable', async () => {
    const { client, thread } = await cast(server);
    const c = await online(server, client);
    try {
      await c.fails('chat:join', undefined, 'invalid_payload');
      await c.fails('chat:join', null, 'invalid_payload');
      await c.fails('chat:join', {}, 'invalid_payload');
      await c.fails('chat:join', thread.id, 'invalid_payload');
      await c.fails('chat:join', [thread.id], 'invalid_payload');
      await c.fails('chat:join', { thread: thread.id }, 'invalid_payload');
      assert.ok(c.connected);
      await c.join(thread.id);
    } finally {
      await c.close();
    }
  });
});

describe('chat:leave', () => {
  it('acks { ok: true } for a joined thread', async () => {
    const { client, thread } = await cast(server);
    const c = await onlineIn(server, client, thread.id);
    try {
      const ack = await c.ok('chat:leave', { threadId: thread.id });
      assert.deepEqual(ack, { ok: true });
    } finally {
      await c.close();
    }
  });

  it('acks { ok: true } for an existing thread the socket never joined, not_found for a thread that does not exist', async () => {
    const { client, thread } = await cast(server);
    const c = await online(server, client);
    try {
      assert.deepEqual(await c.ok('chat:leave', { threadId: thread.id }), { ok: true });
      await c.fails('chat:leave', { threadId: rid('never') }, 'not_found');
    } finally {
      await c.close();
    }
  });

  it('a malformed thread id or payload is invalid_payload', async () => {
    const { client } = await cast(server);
    const c = await online(server, client);
    try {
      await c.fails('chat:leave', { threadId: 'bad id!' }, 'invalid_payload');
      await c.fails('chat:leave', { threadId: 7 }, 'invalid_payload');
      await c.fails('chat:leave', undefined, 'invalid_payload');
    } finally {
      await c.close();
    }
  });

  it('a participant\'s socket that left the room still gets the thread\'s messages and typing (through its user room)', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await onlineIn(server, client, thread.id);
    const leaves = await onlineIn(server, freelancer, thread.id, { label: 'freelancer-leaves' });
    try {
      await leaves.ok('chat:leave', { threadId: thread.id });
      await c.ok('chat:typing', { threadId: thread.id, isTyping: true });
      assert.equal((await leaves.next('chat:typing')).isTyping, true);
      const m = await c.send(thread.id, 'still delivered after leave');
      await leaves.nextMessage(m.id);
      assert.equal((await leaves.next('chat:typing')).isTyping, false, 'the send ended typing');
    } finally {
      await closeAll(c, leaves);
    }
  });

  it('an admin who leaves stops receiving the thread messages', async () => {
    const { admin, client, freelancer, thread } = await cast(server);
    const a = await onlineIn(server, admin, thread.id);
    const c = await online(server, client);
    const f = await online(server, freelancer);
    try {
      const m1 = await c.send(thread.id, 'admin watches this');
      await a.nextMessage(m1.id);
      await a.ok('chat:leave', { threadId: thread.id });
      const m2 = await c.send(thread.id, 'admin left before this');
      await f.nextMessage(m2.id);
      await a.expectNone('chat:message', { why: 'an admin that left the thread room is not a participant' });
    } finally {
      await closeAll(a, c, f);
    }
  });
});
