// Three instances behind HAProxy running deploy/haproxy.cfg (mysql-redis only):
// stock clients through the balancer over WebSocket and over long-polling
// (socket.io-client and python-socketio), sticky sessions, health checks on
// /readyz, and an instance drained and stopped mid-session.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

import { closeAll } from './lib/client.mjs';
import { isMysqlRedis, needsMysqlRedis } from './lib/config.mjs';
import { cast, eventually, online, onlineIn } from './lib/fixtures.mjs';
import { Haproxy } from './lib/haproxy.mjs';
import { newSecrets, startServer } from './lib/server.mjs';

/** Two failed checks 1 s apart (deploy/haproxy.cfg) take an instance out; the drain outlasts them. */
const DRAIN_MS = 4_000;

/** Sockets open on one instance (its `chat_connections` gauge). */
async function connections(server) {
  const res = await fetch(`${server.url}/metrics`);
  const m = /^chat_connections (\d+)/m.exec(await res.text());
  assert.ok(m, `${server.label}: chat_connections in /metrics`);
  return Number(m[1]);
}

async function allConnections(servers) {
  return Promise.all(servers.map(connections));
}

/** Runs tests/python/smoke.py against `url`; resolves to its stdout or rejects with its output. */
function pythonSmoke(url, secrets, env) {
  const script = fileURLToPath(new URL('../python/smoke.py', import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn('python3', [script], {
      env: { ...process.env, CHAT_URL: url, CHAT_SERVICE_TOKEN: secrets.serviceToken, CHAT_JWT_SECRET: secrets.jwtSecret, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c) => { out += c; });
    child.stderr.on('data', (c) => { out += c; });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`smoke.py exited ${code}:\n${out}`))));
  });
}

describe('three instances behind HAProxy (deploy/haproxy.cfg)', { skip: needsMysqlRedis }, () => {
  let secrets;
  let servers = [];
  let lb;
  /** The balancer as the fixtures see a server: its URL, the cluster's secrets. */
  let front;
  before(async () => {
    if (!isMysqlRedis) return;
    secrets = newSecrets();
    // Behind a balancer every client has the balancer's address: no per-address cap.
    const env = { CHAT_DRAIN_DELAY_MS: String(DRAIN_MS), CHAT_MAX_CONNECTIONS_PER_ADDRESS: '0' };
    servers = await Promise.all([1, 2, 3].map((n) => startServer({ label: `lb-node${n}`, secrets, env })));
    lb = await Haproxy.start(servers);
    front = { url: lb.url, jwtSecret: secrets.jwtSecret, serviceToken: secrets.serviceToken, label: 'haproxy' };
    await eventually(async () => Object.values(await lb.servers()).every((s) => s === 'UP'), {
      timeout: 10_000, what: 'all three instances UP in HAProxy',
    });
  });
  after(async () => {
    await lb?.stop();
    await Promise.all(servers.map((s) => s.stop()));
  });

  it('WebSocket and long-polling clients talk through the balancer; a polling session stays on one instance', async () => {
    const { client, freelancer, thread } = await cast(front);
    const base = await allConnections(servers);
    const p = await onlineIn(front, client, thread.id, { transports: ['polling'], withCredentials: true, label: 'client(polling)' });
    const w = await onlineIn(front, freelancer, thread.id, { label: 'freelancer(websocket)' });
    try {
      for (let i = 0; i < 10; i++) {
        const a = await p.send(thread.id, `polling ${i}`);
        assert.deepEqual(await w.nextMessage(a.id), a);
        const b = await w.send(thread.id, `websocket ${i}`);
        assert.deepEqual(await p.nextMessage(b.id), b);
      }
      assert.equal(p.socket.io.engine.transport.name, 'polling', 'the client stayed on long-polling');
      assert.equal(p.count('disconnect'), 0, 'no reconnect: every poll reached the instance holding the session');
      const now = await allConnections(servers);
      assert.equal(now.reduce((a, n) => a + n, 0) - base.reduce((a, n) => a + n, 0), 2, `two sockets in the cluster: ${now}`);
    } finally {
      await closeAll(p, w);
    }
  });

  it('python-socketio over long-polling only, 20 messages each way through the balancer', async () => {
    const out = await pythonSmoke(lb.url, secrets, { CHAT_TRANSPORTS: 'polling', CHAT_ROUNDS: '20' });
    assert.match(out, /smoke: ok \(39 messages delivered over python-socketio, transport polling\)/);
  });

  it('a poll that reaches an instance not holding the session gets engine.io\'s 400 "Session ID unknown", never a 5xx', async () => {
    const open = await fetch(`${lb.url}/socket.io/?EIO=4&transport=polling`);
    assert.equal(open.status, 200);
    const sid = JSON.parse((await open.text()).slice(1)).sid;
    const cookie = /CHATSRV=(chat\d)/.exec(open.headers.get('set-cookie') ?? '');
    assert.ok(cookie, `HAProxy set its sticky cookie: ${open.headers.get('set-cookie')}`);
    const other = ['chat1', 'chat2', 'chat3'].find((c) => c !== cookie[1]);
    const stray = await fetch(`${lb.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { headers: { cookie: `CHATSRV=${other}` } });
    assert.equal(stray.status, 400, 'the other instance refuses the session');
    assert.deepEqual(await stray.json(), { code: '1', message: 'Session ID unknown' });
    const home = await fetch(`${lb.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, {
      method: 'POST', headers: { cookie: `CHATSRV=${cookie[1]}` }, body: '1',
    });
    assert.equal(home.status, 200, 'its own instance still holds it (closed by the client here)');
  });

  it('an instance drained and stopped mid-session: the balancer takes it out first, its polling client reconnects elsewhere and gets every message', { timeout: 60_000 }, async () => {
    const { client, freelancer, thread } = await cast(front);
    const base = await allConnections(servers);
    const p = await onlineIn(front, client, thread.id, {
      transports: ['polling'], withCredentials: true, reconnection: true, label: 'client(polling)',
    });
    const after1 = await allConnections(servers);
    const home = servers.findIndex((_, i) => after1[i] === base[i] + 1);
    assert.notEqual(home, -1, `the polling client's instance: ${base} -> ${after1}`);
    const victim = servers[home];
    const others = servers.filter((_, i) => i !== home);
    const name = `chat${home + 1}`;
    let d;
    try {
      const stopped = victim.stop();
      await eventually(async () => (await lb.servers())[name].startsWith('DOWN'), {
        timeout: DRAIN_MS, interval: 100, what: `HAProxy marks ${name} DOWN while it drains`,
      });
      assert.ok(victim.running, `${victim.label} still runs (draining) when the balancer took it out`);

      // A new connection while it drains lands on another instance.
      const drained = await connections(victim);
      d = await onlineIn(front, freelancer, thread.id, { label: 'freelancer(new, websocket)' });
      assert.equal(await connections(victim), drained, 'the new socket is not on the draining instance');
      const live = [];
      for (let i = 0; i < 3; i++) live.push(await d.send(thread.id, `while draining ${i}`));
      for (const m of live) assert.deepEqual(await p.nextMessage(m.id), m, 'served while draining');

      const exit = await stopped;
      assert.equal(exit.code, 0, `${victim.label} exited 0 after its drain\n${victim.logs()}`);
      await p.next('disconnect', { timeout: 5_000 });
      const gap = [];
      for (let i = 0; i < 3; i++) gap.push(await d.send(thread.id, `while reconnecting ${i}`));

      // socket.io-client reconnects by itself; the cookie names the stopped
      // instance, so HAProxy redispatches it to a live one.
      await p.next('chat:ready', { timeout: 15_000 });
      assert.equal(p.socket.io.engine.transport.name, 'polling');
      const counts = await Promise.all(others.map(connections));
      assert.equal(counts.reduce((a, n) => a + n, 0), 2, `both sockets on the two live instances: ${counts}`);
      for (const m of gap) assert.deepEqual(await p.nextMessage(m.id, 10_000), m, 'sent while it reconnected, then delivered');
      const back = await p.send(thread.id, 'back on another instance');
      assert.deepEqual(await d.nextMessage(back.id), back);
      for (const m of [...live, ...gap]) {
        assert.ok(p.count('chat:message', (x) => x.message.id === m.id) >= 1, `${m.body} reached the client`);
      }
    } finally {
      await closeAll(p, d);
    }
  });
});
