// Delivery you can prove: a chat:message is delivered when a device of the
// recipient acknowledges it (the stock client's callback), never before; what
// was not acknowledged (written into a dead connection, or to a client that
// never confirms) is sent again on the next connect, before chat:ready; a
// device can resume from a cursor (auth.lastMessageId); a connection that
// went silently dead is found by the heartbeat.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { closeAll, connect } from './lib/client.mjs';
import { needsMysqlRedis } from './lib/config.mjs';
import { cast, eventually, online, onlineIn } from './lib/fixtures.mjs';
import { getMessages, request } from './lib/http.mjs';
import { TcpProxy } from './lib/proxy.mjs';
import { newSecrets, startServer } from './lib/server.mjs';

// A fast heartbeat, so a dead connection is found within ~2 s here.
const HEARTBEAT = { CHAT_PING_INTERVAL_MS: '1000', CHAT_PING_TIMEOUT_MS: '1000' };

let server;
before(async () => {
  server = await startServer({ label: 'delivery', env: HEARTBEAT });
});
after(async () => {
  await server?.stop();
});

/** `{ messageId: deliveredAt }` of `user`'s receipts in the thread. */
async function deliveredAt(s, threadId, userId) {
  const res = await getMessages(s, threadId, { limit: 100 });
  assert.equal(res.status, 200, res.text);
  return Object.fromEntries(
    res.json.messages.map((m) => [m.id, m.receipts.find((r) => r.userId === userId)?.deliveredAt ?? null]),
  );
}

/** A socket of `user` whose TCP connection goes through a proxy that can black-hole it. */
async function throughProxy(s, user) {
  const { port } = new URL(s.url);
  const proxy = await new TcpProxy({ host: '127.0.0.1', port: Number(port) }).listen();
  const c = await connect(s, user.token, { url: `http://127.0.0.1:${proxy.port}`, label: `${user.id}@proxy` });
  return { proxy, c };
}

/** The messages received before `chat:ready`, in order. */
function beforeReady(c) {
  const ready = c.log.findIndex((e) => e.event === 'chat:ready');
  return c.log.slice(0, ready).filter((e) => e.event === 'chat:message').map((e) => e.data.message);
}

describe('delivery', () => {
  it('messages written into a half-open connection are not delivered, and reach the next connection before chat:ready', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await onlineIn(server, client, thread.id);
    const { proxy, c: phone } = await throughProxy(server, freelancer);
    try {
      await phone.join(thread.id);
      // The phone enters a tunnel: its connection stays open but nothing gets through.
      proxy.cut('blackhole');
      const sent = [];
      for (let i = 0; i < 5; i++) sent.push(await c.send(thread.id, `in the tunnel ${i}`));

      // The heartbeat finds the dead connection: the freelancer goes offline.
      const off = await c.next('chat:presence', { where: (d) => d.userId === freelancer.id && !d.online, timeout: 10_000 });
      assert.equal(off.online, false);
      const receipts = await deliveredAt(server, thread.id, freelancer.id);
      for (const m of sent) assert.equal(receipts[m.id], null, `message ${m.id} is not delivered`);

      const back = await online(server, freelancer, { label: 'freelancer-back' });
      try {
        assert.deepEqual(beforeReady(back), sent, 'all five, in order, each once, before chat:ready');
        await eventually(async () => {
          const r = await deliveredAt(server, thread.id, freelancer.id);
          return sent.every((m) => r[m.id] !== null);
        }, { what: 'deliveredAt set once the new connection acknowledged them' });
      } finally {
        await back.close();
      }
    } finally {
      await closeAll(c, phone);
      await proxy.close();
    }
  });

  it('a client that does not acknowledge gets the message again on every connect; one that does, once', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await online(server, client);
    const silent = await online(server, freelancer, { ackMessages: false, label: 'silent' });
    try {
      const m = await c.send(thread.id, 'do you have it?');
      await silent.nextMessage(m.id);
      await closeAll(silent);
      assert.equal((await deliveredAt(server, thread.id, freelancer.id))[m.id], null, 'never acknowledged');

      const first = await online(server, freelancer, { label: 'acking' });
      assert.deepEqual(beforeReady(first), [m]);
      await eventually(async () => (await deliveredAt(server, thread.id, freelancer.id))[m.id] !== null, { what: 'delivered after the ack' });
      await first.close();
      const second = await online(server, freelancer, { label: 'later' });
      assert.deepEqual(beforeReady(second), [], 'acknowledged: not sent again');
      await second.close();
    } finally {
      await closeAll(c, silent);
    }
  });

  it('a live message acknowledged by one device is delivered; a device resuming from a cursor gets what came after it', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await online(server, client);
    const laptop = await online(server, freelancer, { label: 'laptop' });
    try {
      const sent = [];
      for (let i = 0; i < 3; i++) {
        sent.push(await c.send(thread.id, `live ${i}`));
        await laptop.nextMessage(sent[i].id);
      }
      await eventually(async () => {
        const r = await deliveredAt(server, thread.id, freelancer.id);
        return sent.every((m) => r[m.id] !== null);
      }, { what: 'the laptop acknowledged all three' });

      const phone = await connect(server, freelancer.token, { lastMessageId: sent[0].id, label: 'phone' });
      assert.deepEqual(beforeReady(phone), sent.slice(1), 'after the cursor, though delivered to the laptop');
      await phone.close();
      const fresh = await online(server, freelancer, { label: 'no-cursor' });
      assert.deepEqual(beforeReady(fresh), [], 'without a cursor: only what no device acknowledged');
      await fresh.close();
    } finally {
      await closeAll(c, laptop);
    }
  });

  it('a malformed or impossible cursor is ignored, never an error, never another thread\'s messages', async () => {
    const { freelancer } = await cast(server);
    const other = await cast(server);
    const c = await online(server, other.client);
    try {
      await c.send(other.thread.id, 'not for them');
      for (const lastMessageId of ['abc', '-1', '99999999999999999999', 42, { id: 1 }, '0']) {
        const s = await connect(server, freelancer.token, { lastMessageId, label: `cursor ${JSON.stringify(lastMessageId)}` });
        assert.ok(s.ready, 'chat:ready');
        assert.deepEqual(beforeReady(s), [], `cursor ${JSON.stringify(lastMessageId)}`);
        await s.close();
      }
    } finally {
      await c.close();
    }
  });

  it('one of two sockets of a user dies: the live one acknowledges (delivered), the dead one resumes from its cursor', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await online(server, client);
    const laptop = await online(server, freelancer, { label: 'laptop' });
    const { proxy, c: phone } = await throughProxy(server, freelancer);
    try {
      const before = await c.send(thread.id, 'both have this');
      await Promise.all([laptop.nextMessage(before.id), phone.nextMessage(before.id)]);
      proxy.cut('blackhole');
      const sent = [];
      for (let i = 0; i < 3; i++) {
        sent.push(await c.send(thread.id, `only the laptop ${i}`));
        await laptop.nextMessage(sent[i].id);
      }
      await eventually(async () => {
        const r = await deliveredAt(server, thread.id, freelancer.id);
        return sent.every((m) => r[m.id] !== null);
      }, { what: 'delivered: the laptop acknowledged' });
      assert.ok(laptop.connected, 'the live socket is untouched');

      const back = await connect(server, freelancer.token, { lastMessageId: before.id, label: 'phone-back' });
      assert.deepEqual(beforeReady(back), sent, 'the phone catches up from its cursor');
      await back.close();
    } finally {
      await closeAll(c, laptop, phone);
      await proxy.close();
    }
  });

  it('a reconnected socket gets the typing, read marks and presence of its threads without joining again', async () => {
    const { client, freelancer, thread } = await cast(server);
    const f = await onlineIn(server, freelancer, thread.id, { label: 'freelancer' });
    const before = await online(server, client, { label: 'client-before' });
    await before.close();
    // The client's app reconnects: a new socket, no chat:join.
    const c = await online(server, client, { label: 'client-reconnected' });
    let phone;
    try {
      await f.ok('chat:typing', { threadId: thread.id, isTyping: true });
      assert.deepEqual(await c.next('chat:typing'), { threadId: thread.id, userId: freelancer.id, isTyping: true });
      const m = await c.send(thread.id, 'back again');
      await f.nextMessage(m.id);
      await f.ok('chat:read', { threadId: thread.id, messageId: m.id });
      assert.equal((await c.next('chat:read')).messageId, m.id);
      await f.close();
      assert.equal((await c.next('chat:presence', { where: (d) => d.userId === freelancer.id })).online, false);
      phone = await online(server, freelancer, { label: 'freelancer-phone' });
      assert.equal((await c.next('chat:presence', { where: (d) => d.userId === freelancer.id })).online, true);
    } finally {
      await closeAll(c, f, phone);
    }
  });

  it('acks the server is not waiting for (never sent, twice, garbage) are ignored and counted; the real one delivers', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await online(server, client);
    const f = await online(server, freelancer, { ackMessages: false, label: 'raw-acker' });
    // The ack ids of the server's chat:message packets, as the wire has them.
    const ackIds = new Map();
    f.socket.io.on('packet', (p) => {
      if (p.type === 2 && p.data?.[0] === 'chat:message' && p.id !== undefined) ackIds.set(p.data[1].message.id, p.id);
    });
    const rawAck = (id, data) => f.socket.packet({ type: 3, id, data }); // socket.io ACK packet
    const unknownAcks = async () => {
      const res = await request(server, 'GET', '/metrics', { token: null, headers: { accept: 'text/plain' } });
      return Number(/^chat_unknown_acks_total (\d+)/m.exec(res.text)?.[1] ?? 0);
    };
    try {
      const counted = await unknownAcks();
      const m = await c.send(thread.id, 'ack me once');
      await f.nextMessage(m.id);
      const id = ackIds.get(m.id);
      assert.ok(Number.isInteger(id), 'the message asked for an ack');
      rawAck(id + 1000, []); // never sent
      rawAck(id, [{ garbage: true }, 'x']); // the real one, with a payload nobody reads
      rawAck(id, []); // twice
      rawAck(id, ['more garbage']); // three times
      await eventually(async () => (await deliveredAt(server, thread.id, freelancer.id))[m.id] !== null, { what: 'delivered by the first real ack' });
      await eventually(async () => (await unknownAcks()) - counted >= 3, { what: 'the three acks nobody waited for are counted' });
      const at = (await deliveredAt(server, thread.id, freelancer.id))[m.id];
      await f.ack('chat:sync-point', {});
      assert.equal((await deliveredAt(server, thread.id, freelancer.id))[m.id], at, 'later acks change nothing');
      assert.ok(f.connected, 'the socket stays connected');
      const next = await c.send(thread.id, 'still served');
      await f.nextMessage(next.id);
    } finally {
      await closeAll(c, f);
    }
  });

  it('a reader that stops reading while thousands of 4 KB messages come is closed by the heartbeat; the host keeps serving; nothing is marked delivered that it did not acknowledge; its next connection gets them', async () => {
    // The default heartbeat (10 s + 10 s): a stalled reader is closed within 20 s,
    // its buffer capped at 1,024 packets meanwhile.
    const slowServer = await startServer({ label: 'delivery-slow', env: { CHAT_RATE_LIMIT_PER_MINUTE: '1000000' } });
    try {
      const { client, freelancer, thread } = await cast(slowServer);
      const canary = await cast(slowServer);
      const c = await onlineIn(slowServer, client, thread.id);
      const { proxy, c: reader } = await throughProxy(slowServer, freelancer);
      const cc = await online(slowServer, canary.client, { label: 'canary' });
      try {
        proxy.cut('stall');
        const body = 'x'.repeat(3900);
        const gone = c.next('chat:presence', { where: (d) => d.userId === freelancer.id && !d.online, timeout: 40_000 });
        for (let sent = 0; sent < 4000; sent += 25) {
          await Promise.all(Array.from({ length: 25 }, (_, i) => c.send(thread.id, `${sent + i} ${body}`)));
        }
        await gone;
        const m = await cc.send(canary.thread.id, 'still serving');
        assert.equal(m.body, 'still serving', 'the canary is served');

        const history = await getMessages(slowServer, thread.id, { limit: 100 });
        const newest = history.json.messages;
        assert.ok(newest.every((x) => x.receipts.find((r) => r.userId === freelancer.id).deliveredAt === null), 'none acknowledged, none delivered');
        const back = await online(slowServer, freelancer, { label: 'reader-back', timeout: 30_000 });
        const owed = beforeReady(back);
        assert.equal(owed.length, 200, 'the newest 200 come first');
        assert.ok(owed.every((x, i) => i === 0 || BigInt(x.id) > BigInt(owed[i - 1].id)), 'oldest first, each once');
        assert.deepEqual(owed.slice(-100).map((x) => x.id), newest.map((x) => x.id), 'the newest are the stored newest');
        assert.ok(back.received('chat:resync').length === 1, 'and chat:resync names the thread');
        await back.close();
      } finally {
        await closeAll(c, reader, cc);
        await proxy.close();
      }
    } finally {
      await slowServer.stop();
    }
  });

  it('a message written into a dead connection on one instance reaches the user on another', { skip: needsMysqlRedis }, async () => {
    const secrets = newSecrets();
    const a = await startServer({ label: 'delivery-a', secrets, env: HEARTBEAT });
    const b = await startServer({ label: 'delivery-b', secrets, env: HEARTBEAT });
    try {
      const { client, freelancer, thread } = await cast(a);
      const c = await online(a, client);
      const { proxy, c: phone } = await throughProxy(a, freelancer);
      try {
        proxy.cut('blackhole');
        const m = await c.send(thread.id, 'across instances');
        const back = await online(b, freelancer, { label: 'freelancer@b' });
        assert.deepEqual(beforeReady(back), [m]);
        await eventually(async () => (await deliveredAt(a, thread.id, freelancer.id))[m.id] !== null, { what: 'delivered via instance b' });
        await back.close();
      } finally {
        await closeAll(c, phone);
        await proxy.close();
      }
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it('an instance SIGKILLed mid-traffic: its users go offline for the others within 60 s (40 s typically), a send retried on another instance is stored once, everything reaches them on reconnect', { skip: needsMysqlRedis, timeout: 120_000 }, async (t) => {
    const secrets = newSecrets();
    const a = await startServer({ label: 'crash-a', secrets });
    const b = await startServer({ label: 'crash-b', secrets });
    try {
      const { client, freelancer, thread } = await cast(a);
      const watcher = await onlineIn(a, client, thread.id, { label: 'client@a' });
      const onB = await online(b, freelancer, { label: 'freelancer@b' });
      const sender = await online(b, client, { label: 'client@b' });
      await watcher.next('chat:presence', { where: (d) => d.userId === freelancer.id && d.online });
      const before = await watcher.send(thread.id, 'before the crash');
      await onB.nextMessage(before.id);

      // A send in flight when b dies: the client retries it on a with the same key.
      const clientMessageId = `retry-${Date.now()}`;
      sender.emit('chat:send-message', { threadId: thread.id, body: 'maybe stored', clientMessageId });
      const killedAt = Date.now();
      b.child.kill('SIGKILL');
      await b.exited;
      const retried = await watcher.ok('chat:send-message', { threadId: thread.id, body: 'maybe stored', clientMessageId });
      const during = await watcher.send(thread.id, 'while b is gone');

      const off = await watcher.next('chat:presence', { where: (d) => d.userId === freelancer.id && !d.online, timeout: 60_000 });
      const tookMs = Date.now() - killedAt;
      assert.equal(off.online, false);
      assert.ok(tookMs <= 60_000, `offline after ${tookMs} ms`);
      t.diagnostic(`offline for the others ${tookMs} ms after the SIGKILL`);

      const history = await getMessages(a, thread.id, { limit: 100 });
      const stored = history.json.messages.filter((m) => m.clientMessageId === clientMessageId);
      assert.equal(stored.length, 1, 'the retried send is stored once');
      assert.equal(stored[0].id, retried.message.id);
      const receipts = await deliveredAt(a, thread.id, freelancer.id);
      assert.equal(receipts[during.id], null, 'not delivered to the dead instance\'s socket');

      const back = await online(a, freelancer, { label: 'freelancer-back@a' });
      const owed = beforeReady(back).map((m) => m.id);
      for (const id of [retried.message.id, during.id]) assert.ok(owed.includes(id), `owed ${id}: ${owed}`);
      await closeAll(back, watcher);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});
