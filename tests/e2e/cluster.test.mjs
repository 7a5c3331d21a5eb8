// Several instances on the same MariaDB + Redis (mysql-redis only), on one
// Redis server and on a Redis Cluster of the test's own (3 masters + 3
// replicas, three instances): clients on different instances see each other's
// messages, typing, read receipts and presence; the rate limit, idempotency,
// offline queue and plugin changes are cluster-wide; and on the cluster, a
// master killed mid-traffic loses no acked message.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';

import { closeAll, newClientMessageId } from './lib/client.mjs';
import { databaseUrl, hostBinary, isMysqlRedis, needsMysqlRedis, redisUrl } from './lib/config.mjs';
import { cast, eventually, newThread, newUser, online, onlineIn, participant } from './lib/fixtures.mjs';
import { request } from './lib/http.mjs';
import { assertLedger } from './lib/ledger.mjs';
import { builtPlugin, editManifest, kvSet, removePlugin, uniquePluginName, uploadPlugin, waitForVersion } from './lib/plugins.mjs';
import { RedisCluster } from './lib/redis-cluster.mjs';
import { freePort } from './lib/redis-server.mjs';
import { newSecrets, startServer } from './lib/server.mjs';

const TOPOLOGIES = [
  { title: 'two instances on one Redis server', instances: 2, cluster: false },
  { title: 'three instances on a Redis Cluster (3 masters, 3 replicas; REDIS_CLUSTER_URLS)', instances: 3, cluster: true },
];

for (const topology of TOPOLOGIES) describe(topology.title, { skip: needsMysqlRedis }, () => {
  let s1;
  let s2;
  let servers = [];
  let redisCluster;
  const secrets = newSecrets();
  before(async () => {
    if (!isMysqlRedis) return;
    if (topology.cluster) redisCluster = await RedisCluster.start();
    servers = await Promise.all(
      Array.from({ length: topology.instances }, (_, i) =>
        startServer({ label: `node${i + 1}`, secrets, redisClusterUrls: redisCluster?.urls }),
      ),
    );
    [s1, s2] = [servers[0], servers.at(-1)];
  });
  after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await redisCluster?.stop();
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

  if (topology.cluster) {
    it('a message reaches sockets on all three instances, and typing and receipts cross all of them', async () => {
      const [n1, n2, n3] = servers;
      const { client, freelancer, admin, thread } = await cast(n1);
      const c = await onlineIn(n1, client, thread.id, { label: 'client@node1' });
      const f2 = await onlineIn(n2, freelancer, thread.id, { label: 'freelancer@node2' });
      const a3 = await onlineIn(n3, admin, thread.id, { label: 'admin@node3' });
      try {
        const m = await c.send(thread.id, 'to every instance');
        for (const s of [f2, a3]) assert.deepEqual(await s.nextMessage(m.id), m);
        await c.ok('chat:typing', { threadId: thread.id, isTyping: true });
        for (const s of [f2, a3]) assert.deepEqual(await s.next('chat:typing'), { threadId: thread.id, userId: client.id, isTyping: true });
        await f2.ok('chat:read', { threadId: thread.id, messageId: m.id });
        for (const s of [c, a3]) assert.equal((await s.next('chat:read', { where: (d) => d.userId === freelancer.id })).messageId, m.id);
      } finally {
        await closeAll(c, f2, a3);
      }
    });

    it('a plugin uploaded through one instance decides on the other two within 2 s', async (t) => {
      const name = uniquePluginName('e2e-cluster-blocklist');
      const { freelancer, thread } = await cast(s1);
      const others = servers.slice(1);
      const fs = await Promise.all(others.map((s, i) => onlineIn(s, freelancer, thread.id, { label: `freelancer@node${i + 2}` })));
      try {
        const { wasm } = builtPlugin('blocklist');
        // Staged disabled first, so every instance has compiled the component
        // and the polls below measure the announcement, not the compiler.
        const staged = editManifest('blocklist', { name, enabled: false });
        assert.equal((await uploadPlugin(s1, name, staged.text, wasm)).status, 200);
        await kvSet(s1, name, `blocked:${freelancer.id}`, 'cluster-wide');
        for (const s of others) await waitForVersion(s, name, staged.version, { timeout: 10_000 });
        const live = editManifest('blocklist', { name });
        const started = performance.now();
        assert.equal((await uploadPlugin(s1, name, live.text, wasm)).status, 200);
        const took = [];
        for (const f of fs) {
          for (;;) {
            const ack = await f.ack('chat:history', { threadId: thread.id, limit: 1 });
            const ms = Math.round(performance.now() - started);
            if (ack?.ok === false && ack.error?.code === 'forbidden') {
              assert.match(ack.error.message, /cluster-wide/);
              took.push(ms);
              break;
            }
            assert.ok(ms < 2_000, `${f.label}: still allowed ${ms} ms after the upload: ${JSON.stringify(ack)}`);
            await new Promise((r) => setTimeout(r, 25));
          }
        }
        t.diagnostic(`verdict switched on node2, node3 after ${took.join(', ')} ms`);
      } finally {
        await removePlugin(s1, name);
        await closeAll(...fs);
      }
    });

    it('a user\'s slot moves to another master mid-traffic (ASK while it migrates, MOVED after): every send is acked, once', { timeout: 60_000 }, async (t) => {
      const { client, freelancer, thread } = await cast(s1);
      const c = await online(servers[0], client, { label: 'client@node1' });
      const f = await onlineIn(servers[1], freelancer, thread.id, { label: 'freelancer@node2' });
      const acked = [];
      const send = async (body) => {
        const m = await c.send(thread.id, body);
        acked.push(m);
        assert.deepEqual(await f.nextMessage(m.id), m);
      };
      try {
        await send('before the move');
        // The sender's presence, queue and rate-limit keys share this slot.
        const key = `chat:ratelimit:{${client.id}}`;
        const from = await redisCluster.masterOf(key);
        const to = (await redisCluster.nodes()).find((n) => n.master && !n.failed && n.port !== from).port;
        const moved = await redisCluster.moveSlot(key, to, () => send('while the slot migrates'));
        assert.equal(await redisCluster.masterOf(key), to, 'the slot is served by the other master');
        await send('after the move');
        t.diagnostic(`slot ${moved.slot} (${moved.keys} keys) moved from ${moved.fromPort} to ${moved.toPort}`);
        await assertLedger(s1, thread.id, { acked, received: { [freelancer.id]: [f] } });
      } finally {
        await closeAll(c, f);
      }
    });

    it('seed nodes: an unreachable one is passed over; none reachable, or REDIS_URL beside REDIS_CLUSTER_URLS, is refused at start with a clear message', async () => {
      const dead = `redis://127.0.0.1:${await freePort()}`;
      const s = await startServer({ label: 'dead-seed-first', secrets, redisClusterUrls: `${dead},${redisCluster.urls}` });
      try {
        assert.equal((await request(s, 'GET', '/readyz', { token: null })).status, 200);
        const { client, freelancer, thread } = await cast(s);
        const c = await online(s, client);
        const f = await onlineIn(servers[1], freelancer, thread.id);
        const m = await c.send(thread.id, 'through a server whose first seed is down');
        assert.deepEqual(await f.nextMessage(m.id), m);
        await closeAll(c, f);
      } finally {
        await s.stop();
      }
      const refused = (env) =>
        spawnSync(hostBinary(), [], {
          env: {
            PATH: process.env.PATH,
            CHAT_LISTEN: '127.0.0.1:0',
            DATABASE_URL: databaseUrl,
            CHAT_JWT_SECRET: secrets.jwtSecret,
            CHAT_SERVICE_TOKEN: secrets.serviceToken,
            ...env,
          },
          encoding: 'utf8',
          timeout: 30_000,
        });
      let run = refused({ REDIS_CLUSTER_URLS: dead });
      assert.notEqual(run.status, 0, `no seed answers: exited ${run.status}\n${run.stdout}`);
      assert.match(run.stderr, /connecting to redis cluster redis:\/\/127\.0\.0\.1:\d+/, run.stderr);
      assert.doesNotMatch(run.stdout, /listening on/, 'it never served');
      run = refused({ REDIS_CLUSTER_URLS: redisCluster.urls, REDIS_URL: redisUrl });
      assert.notEqual(run.status, 0);
      assert.match(run.stderr, /REDIS_URL and REDIS_CLUSTER_URLS are both set/, run.stderr);
    });

    it('/readyz answers 503 with the reason while slots have no master, and 200 once they are served again', { timeout: 60_000 }, async () => {
      const nodes = await redisCluster.nodes();
      const master = nodes.find((n) => n.master && !n.failed && nodes.some((r) => r.masterId === n.id && !r.failed));
      const replica = nodes.find((r) => r.masterId === master.id);
      // The replica first, so nothing takes over from the master.
      redisCluster.kill(replica.port);
      redisCluster.kill(master.port);
      const readyz = () => request(s1, 'GET', '/readyz', { token: null });
      await eventually(async () => {
        const r = await readyz();
        return r.status === 503 && /Redis Cluster state is fail: \d+ of 16384 slots served/.test(r.json.errors?.state ?? '');
      }, { timeout: 20_000, interval: 200, what: '/readyz names the uncovered slots' });
      const down = await readyz();
      assert.equal(down.json.state, 'unavailable');
      assert.equal(down.json.database, 'ok');
      await redisCluster.restart(master.port);
      await redisCluster.restart(replica.port);
      // Until the nodes agree again: five probes in a row (each asks a random node) pass.
      const agreed = async () => {
        for (let i = 0; i < 5; i++) {
          const r = await readyz();
          if (r.status !== 200 || r.json.errors !== undefined) return false;
        }
        return true;
      };
      await eventually(agreed, { timeout: 30_000, interval: 200, what: '/readyz back to 200 on every node' });
    });

    it('the master serving the Socket.IO adapter\'s channel is killed mid-traffic: its replica takes over, sends answer ok or unavailable within 5 s meanwhile, and every acked message is stored once and delivered', { timeout: 120_000 }, async (t) => {
      // Six senders (each under the rate limit of 25 a minute), one per instance
      // and user pair, and the recipient on every instance.
      const users = await Promise.all(Array.from({ length: 6 }, () => newUser(s1, { role: 'client' })));
      const recipient = await newUser(s1, { role: 'freelancer' });
      const thread = await newThread(s1, [...users, recipient]);
      const senders = await Promise.all(users.map((u, i) => online(servers[i % 3], u, { label: `sender${i}@node${(i % 3) + 1}` })));
      const live = await Promise.all(servers.map((s, i) => onlineIn(s, recipient, thread.id, { label: `recipient@node${i + 1}` })));
      const victim = await redisCluster.masterOf('chat:socket.io-request#/#');
      const acked = [];
      const answers = []; // { code, ms, at }
      let stop = false;
      const sendLoop = async (sender, n) => {
        for (let i = 0; !stop && i < 20; i++) {
          const payload = { threadId: thread.id, body: `${sender.label} #${i}`, clientMessageId: newClientMessageId() };
          // Retried with the same key until acked, as a client does.
          for (;;) {
            const at = Date.now();
            const res = await sender.ack('chat:send-message', payload, 15_000);
            const ms = Date.now() - at;
            answers.push({ code: res.ok ? 'ok' : res.error?.code, ms, at });
            assert.ok(ms <= 5_000, `${sender.label}: an answer took ${ms} ms`);
            if (res.ok) {
              acked.push(res.message);
              break;
            }
            assert.equal(res.error.code, 'unavailable', `${sender.label}: ${JSON.stringify(res)}`);
            await new Promise((r) => setTimeout(r, 100));
          }
          // Traffic pacing (about 3 sends a second per sender), not a synchronisation.
          await new Promise((r) => setTimeout(r, 300 + n * 10));
        }
      };
      const traffic = senders.map((s, n) => sendLoop(s, n));
      // Some traffic before the fault: the first acked messages.
      while (acked.length < 6) await new Promise((r) => setTimeout(r, 20));
      const killedAt = Date.now();
      redisCluster.kill(victim);
      await redisCluster.waitFailover(victim);
      const recoveredAt = Date.now();
      // Traffic after the failover, then the end of it.
      const after = acked.length;
      while (acked.length < after + 6) await new Promise((r) => setTimeout(r, 20));
      stop = true;
      await Promise.all(traffic);

      const failed = answers.filter((a) => a.code !== 'ok');
      const window = failed.length ? `${Math.max(...failed.map((a) => a.at + a.ms)) - Math.min(...failed.map((a) => a.at))} ms` : 'none';
      t.diagnostic(`master ${victim} killed; cluster ok again after ${recoveredAt - killedAt} ms; ${answers.length} answers, ${failed.length} unavailable (window ${window}); ${acked.length} acked`);
      for (const s of servers) {
        const ready = await request(s, 'GET', '/readyz', { token: null });
        assert.equal(ready.status, 200, `${s.label} /readyz after the failover: ${ready.text}`);
      }

      // What live delivery missed during the failover comes on reconnect.
      await closeAll(...live);
      const back = await online(servers[0], recipient, { label: 'recipient-back@node1' });
      await assertLedger(s1, thread.id, { acked, received: { [recipient.id]: [...live, back] } });
      await closeAll(back, ...senders);
    });
  }
});
