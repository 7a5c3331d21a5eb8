// Backend outages (mysql-redis only): the server talks to MariaDB and Redis through
// TCP proxies the test cuts and restores. Sends answer quickly (`unavailable`, never
// a hang), nothing half-written remains, sockets stay connected, service resumes
// after the restore, and (MariaDB) the delivery ledger holds: every acked send
// stored once, every message reaching the recipient, no false `deliveredAt`.

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';

import { io } from 'socket.io-client';

import { ChatClient } from '../../clients/js/chat-client.mjs';
import { closeAll, newClientMessageId } from './lib/client.mjs';
import { databaseUrl, isMysqlRedis, needsMysqlRedis, redisUrl } from './lib/config.mjs';
import { cast, eventually, online, onlineIn } from './lib/fixtures.mjs';
import { fullHistory, request } from './lib/http.mjs';
import { assertLedger } from './lib/ledger.mjs';
import { proxyFor } from './lib/proxy.mjs';
import { startServer } from './lib/server.mjs';

/** A send must answer within this long while MariaDB is cut ("a few seconds"). */
const MYSQL_DOWN_ANSWER_MS = 8_000;
/** A send must answer within this long while Redis is cut. */
const REDIS_DOWN_ANSWER_MS = 5_000;
/** During a partition (packets silently dropped) the answer may take a little longer. */
const PARTITION_ANSWER_MS = 10_000;
/** How long the server may take to use a restored backend again. */
const RECOVERY_MS = 20_000;

describe('backend outages', { skip: needsMysqlRedis }, () => {
  // One server (behind fresh proxies) per test, so an outage that leaves a server
  // broken cannot fail the next test.
  let server;
  let mysql;
  let redis;
  beforeEach(async () => {
    if (!isMysqlRedis) return;
    mysql = await proxyFor(databaseUrl);
    redis = await proxyFor(redisUrl);
    server = await startServer({ label: 'faults', databaseUrl: mysql.url, redisUrl: redis.url });
  });
  afterEach(async () => {
    mysql?.proxy.restore();
    redis?.proxy.restore();
    await server?.stop();
    await mysql?.proxy.close();
    await redis?.proxy.close();
    server = mysql = redis = undefined;
  });

  /** A send with a timing, acked or not: `{ ack, ms }`. */
  async function timedSend(client, payload, timeout) {
    const started = Date.now();
    try {
      const ack = await client.ack('chat:send-message', payload, timeout + 2_000);
      return { ack, ms: Date.now() - started };
    } catch (e) {
      throw new Error(`chat:send-message got no ack within ${timeout + 2_000} ms during the outage (a hang): ${e.message}`);
    }
  }

  /** Retries the same idempotent send until it succeeds (after a restore). */
  function sendUntilOk(client, payload) {
    return eventually(async () => {
      const ack = await client.ack('chat:send-message', payload, 5_000);
      return ack.ok ? ack.message : null;
    }, { timeout: RECOVERY_MS, interval: 250, what: 'a send succeeds after the restore' });
  }

  function assertStillConnected(...clients) {
    for (const c of clients) {
      assert.ok(c.connected, `${c.label} is still connected`);
      assert.equal(c.count('disconnect'), 0, `${c.label} was never disconnected`);
    }
  }

  for (const mode of ['reset', 'blackhole']) {
    const deadline = mode === 'reset' ? MYSQL_DOWN_ANSWER_MS : PARTITION_ANSWER_MS;
    it(`MariaDB cut (${mode}): send is unavailable within ${deadline / 1000} s, nothing half-written, works again after restore`, async () => {
      const { client, freelancer, thread } = await cast(server);
      const c = await onlineIn(server, client, thread.id);
      const f = await onlineIn(server, freelancer, thread.id);
      let fNext;
      try {
        const before = await c.send(thread.id, 'before the outage'); // warms caches, like real traffic
        await f.nextMessage(before.id);

        mysql.proxy.cut(mode);
        const payload = { threadId: thread.id, body: 'during the outage', clientMessageId: newClientMessageId() };
        let res;
        try {
          res = await timedSend(c, payload, deadline);
        } finally {
          if (!res) mysql.proxy.restore();
        }
        assert.ok(res.ms <= deadline, `answered in ${res.ms} ms (limit ${deadline})`);
        assert.equal(res.ack.ok, false, `a send without a database cannot succeed: ${JSON.stringify(res.ack)}`);
        assert.equal(res.ack.error.code, 'unavailable');
        if (mode === 'reset') {
          const ready = await request(server, 'GET', '/readyz', { token: null });
          assert.notEqual(ready.status, 200, '/readyz reports the database down');
        }
        const health = await request(server, 'GET', '/healthz', { token: null });
        assert.equal(health.status, 200, '/healthz: the process is alive');
        assertStillConnected(c, f);

        mysql.proxy.restore();
        // Retrying the same clientMessageId is safe: exactly one message results.
        const retried = await sendUntilOk(c, payload);
        if (mode === 'reset') {
          // The cut connections are gone, so the failed attempt cannot have been stored later:
          // the retry is a new message and is delivered live, once.
          await f.nextMessage(retried.id);
        }
        const after = await sendUntilOk(c, { threadId: thread.id, body: 'after the restore', clientMessageId: newClientMessageId() });
        await f.nextMessage(after.id);
        const history = await fullHistory(server, thread.id);
        assert.deepEqual(
          history.map((m) => m.body),
          ['before the outage', 'during the outage', 'after the restore'],
          'no partial or duplicate rows',
        );
        for (const m of history) assert.equal(m.receipts.length, 2, `message ${m.id} has a receipt per participant`);
        assert.ok(f.count('chat:message', (d) => d.message.body === 'during the outage') <= 1, 'never delivered twice');
        await eventually(async () => (await request(server, 'GET', '/readyz', { token: null })).status === 200, {
          timeout: RECOVERY_MS,
          what: '/readyz is 200 again',
        });
        assertStillConnected(c, f);
        // The freelancer's next connection completes what the live one missed
        // (an ack whose receipt write hit the outage is owed again: at least once).
        fNext = await online(server, freelancer, { label: 'freelancer-next' });
        await assertLedger(server, thread.id, { acked: [before, retried, after], received: { [freelancer.id]: [f, fNext] } });
      } finally {
        mysql.proxy.restore();
        await closeAll(c, f, fNext);
      }
    });
  }

  it('the client helper retries a send refused as unavailable while MariaDB is cut: stored once, delivered once', async () => {
    const { client, freelancer, thread } = await cast(server);
    const chat = new ChatClient(io, server.url, { token: client.token });
    const f = await online(server, freelancer);
    try {
      await chat.ready;
      const warm = await chat.send(thread.id, 'before the outage');
      await f.nextMessage(warm.id);
      // The database comes back once an attempt was refused as unavailable.
      const request = chat.request.bind(chat);
      const refused = new Promise((resolve) => {
        chat.request = async (event, payload) => {
          try {
            return await request(event, payload);
          } catch (e) {
            if (e.code === 'unavailable') resolve();
            throw e;
          }
        };
      });
      mysql.proxy.cut('reset');
      const sending = chat.send(thread.id, 'through the outage', { attempts: 8 });
      await refused;
      mysql.proxy.restore();
      const stored = await sending;
      await f.nextMessage(stored.id, 10_000);
      const history = await fullHistory(server, thread.id);
      assert.deepEqual(history.map((m) => m.body), ['before the outage', 'through the outage'], 'stored once');
    } finally {
      mysql.proxy.restore();
      chat.close();
      await closeAll(f);
    }
  });

  for (const mode of ['reset', 'blackhole']) {
    const deadline = mode === 'reset' ? REDIS_DOWN_ANSWER_MS : PARTITION_ANSWER_MS;
    it(`Redis cut (${mode}): send answers ok or unavailable within ${deadline / 1000} s; service resumes after restore`, async () => {
      const { client, freelancer, thread } = await cast(server);
      const c = await onlineIn(server, client, thread.id);
      const f = await onlineIn(server, freelancer, thread.id);
      try {
        const before = await c.send(thread.id, 'before the outage');
        await f.nextMessage(before.id);

        redis.proxy.cut(mode);
        const payload = { threadId: thread.id, body: 'during the redis outage', clientMessageId: newClientMessageId() };
        let res;
        try {
          res = await timedSend(c, payload, deadline);
        } finally {
          if (!res) redis.proxy.restore();
        }
        assert.ok(res.ms <= deadline, `answered in ${res.ms} ms (limit ${deadline})`);
        if (!res.ack.ok) assert.equal(res.ack.error?.code, 'unavailable', JSON.stringify(res.ack));
        const health = await request(server, 'GET', '/healthz', { token: null });
        assert.equal(health.status, 200, '/healthz: the process is alive');
        assertStillConnected(c, f);

        redis.proxy.restore();
        // Same key: if the first attempt was stored, the retry returns it.
        const retried = await sendUntilOk(c, payload);
        if (res.ack.ok) assert.equal(retried.id, res.ack.message.id);
        const after = await sendUntilOk(c, { threadId: thread.id, body: 'after the restore', clientMessageId: newClientMessageId() });
        await f.nextMessage(after.id);
        const history = await fullHistory(server, thread.id);
        assert.equal(history.filter((m) => m.body === 'during the redis outage').length, 1, 'stored exactly once');
        await eventually(async () => (await request(server, 'GET', '/readyz', { token: null })).status === 200, {
          timeout: RECOVERY_MS,
          what: '/readyz is 200 again',
        });
        // New connections work again too.
        const late = await online(server, freelancer, { label: 'after-restore' });
        await late.close();
        assertStillConnected(c, f);
      } finally {
        redis.proxy.restore();
        await closeAll(c, f);
      }
    });
  }
});
