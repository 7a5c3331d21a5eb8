// Graceful shutdown on SIGTERM: connected sockets are disconnected, the process
// exits 0, the data survives a restart, and (mysql-redis) users of the stopped
// instance go offline for everyone on the other instances.

import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, describe, it } from 'node:test';

import { closeAll } from './lib/client.mjs';
import { backend, needsMysqlRedis } from './lib/config.mjs';
import { assertTimestamp, cast, eventually, online, onlineIn, participant } from './lib/fixtures.mjs';
import { request } from './lib/http.mjs';
import { PluginDir, auditTrail, kvSet } from './lib/plugins.mjs';
import { newSecrets, startServer } from './lib/server.mjs';

const started = [];
async function start(opts) {
  const s = await startServer(opts);
  started.push(s);
  return s;
}
after(async () => {
  await Promise.all(started.map((s) => s.stop()));
});

describe('graceful shutdown (SIGTERM)', () => {
  it('disconnects the sockets, exits 0, and the data is still there after a restart', async () => {
    const secrets = newSecrets();
    const first = await start({ label: 'shutdown-first', secrets });
    const { client, freelancer, thread } = await cast(first);
    const c = await onlineIn(first, client, thread.id);
    const f = await onlineIn(first, freelancer, thread.id);
    const m = await c.send(thread.id, 'said before the restart');
    await f.nextMessage(m.id);

    const disconnected = Promise.all([c, f].map((x) => x.next('disconnect', { timeout: 15_000 })));
    const exit = await first.stop({ removeData: false });
    assert.equal(exit.killed, false, `exited by itself after SIGTERM\n${first.logs()}`);
    assert.equal(exit.code, 0, `exit code 0 (got ${exit.code}, signal ${exit.signal})\n${first.logs()}`);
    const reasons = await disconnected;
    for (const r of reasons) assert.ok(r.reason, 'the client saw the disconnect');

    // A new process on the same data (embedded: the same data directory).
    const second = await start({ label: 'shutdown-second', secrets, dataDir: first.dataDir ?? undefined });
    try {
      const f2 = await online(second, freelancer);
      try {
        const page = await f2.ok('chat:history', { threadId: thread.id });
        assert.deepEqual(page.messages, [m]);
        const t = await f2.join(thread.id);
        assert.equal(participant(t, client.id).online, false, 'the user of the stopped server is offline');
      } finally {
        await f2.close();
      }
    } finally {
      await second.stop();
      if (backend === 'embedded' && first.dataDir) rmSync(first.dataDir, { recursive: true, force: true });
    }
  });

  it('with CHAT_DRAIN_DELAY_MS, /readyz answers 503 draining first while sockets, sends and new connections are still served; then the sockets close', async () => {
    const DRAIN_MS = 1500;
    const s = await start({ label: 'shutdown-drain', env: { CHAT_DRAIN_DELAY_MS: String(DRAIN_MS) } });
    const { client, freelancer, thread } = await cast(s);
    const c = await onlineIn(s, client, thread.id);
    const disconnected = c.next('disconnect', { timeout: 15_000 });
    assert.deepEqual((await request(s, 'GET', '/readyz', { token: null })).json, { database: 'ok', state: 'ok', draining: false });
    const signalled = performance.now();
    s.child.kill('SIGTERM');
    const draining = await eventually(async () => {
      const res = await request(s, 'GET', '/readyz', { token: null });
      return res.status === 503 && res.json?.draining === true ? res : null;
    }, { timeout: DRAIN_MS, what: '/readyz 503 draining' });
    assert.deepEqual(draining.json, { database: 'ok', state: 'ok', draining: true });
    // Still serving: a send on an open socket, and a new connection.
    const f = await onlineIn(s, freelancer, thread.id);
    const m = await c.send(thread.id, 'sent while draining');
    await f.nextMessage(m.id);
    assert.equal(c.connected, true, 'the socket is still open');
    await disconnected;
    const drained = performance.now() - signalled;
    assert.ok(drained >= DRAIN_MS - 100, `the sockets closed ${drained.toFixed(0)} ms after SIGTERM, after the drain delay`);
    const exit = await s.exited;
    assert.equal(exit.code, 0, `exit code 0 (got ${exit.code}, signal ${exit.signal})\n${s.logs()}`);
    await closeAll(c, f);
  });

  it('the events plugins drain before exit: the audit row of a send acked just before SIGTERM is there after a restart', async () => {
    const secrets = newSecrets();
    const dir = new PluginDir({ 'dispute-audit': {} });
    const env = { CHAT_PLUGIN_DIR: dir.path };
    const first = await start({ label: 'shutdown-audit-first', secrets, env });
    try {
      const { client, thread } = await cast(first);
      await kvSet(first, 'dispute-audit', `audit:${thread.id}`, 'D-1');
      const c = await online(first, client);
      const sent = [];
      for (let i = 0; i < 20; i++) sent.push(await c.send(thread.id, `evidence ${i}`));
      // No waiting for the audit rows: SIGTERM right after the last ack.
      const exit = await first.stop({ removeData: false });
      assert.equal(exit.code, 0, `exit code 0 (got ${exit.code}, signal ${exit.signal})\n${first.logs()}`);
      await c.close();

      const second = await start({ label: 'shutdown-audit-second', secrets, env, dataDir: first.dataDir ?? undefined });
      try {
        const audited = (await auditTrail(second, thread.id))
          .filter((e) => e.kind === 'message_sent')
          .map((e) => JSON.parse(e.detail).message);
        assert.deepEqual(audited, sent.map((m) => m.id), 'every acked send has its audit row, in order');
      } finally {
        await second.stop();
      }
    } finally {
      if (backend === 'embedded' && first.dataDir) rmSync(first.dataDir, { recursive: true, force: true });
      dir.remove();
    }
  });

  it('users of the stopped instance go offline for the others (chat:presence)', { skip: needsMysqlRedis }, async () => {
    const secrets = newSecrets();
    const stays = await start({ label: 'shutdown-stays', secrets });
    const goes = await start({ label: 'shutdown-goes', secrets });
    const { client, freelancer, thread } = await cast(stays);
    const watcher = await onlineIn(stays, client, thread.id, { label: 'watcher@stays' });
    const leaving = await online(goes, freelancer, { label: 'leaving@goes' });
    try {
      await watcher.next('chat:presence', { where: (d) => d.userId === freelancer.id && d.online === true });
      const exit = await goes.stop();
      assert.equal(exit.killed, false, `exited by itself after SIGTERM\n${goes.logs()}`);
      assert.equal(exit.code, 0, `exit code 0 (got ${exit.code}, signal ${exit.signal})\n${goes.logs()}`);
      const off = await watcher.next('chat:presence', { where: (d) => d.userId === freelancer.id, timeout: 10_000 });
      assert.equal(off.online, false);
      assertTimestamp(off.lastSeenAt, 'lastSeenAt');
      assert.equal(participant(await watcher.join(thread.id), freelancer.id).online, false);
      assert.ok(!leaving.connected);
    } finally {
      await closeAll(watcher, leaving);
    }
  });
});
