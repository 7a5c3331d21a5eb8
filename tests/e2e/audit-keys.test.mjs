// Secrets and audit keys, against the real binary restarted on the same data:
//
// - production mode refuses to start without CHAT_AUDIT_KEY, with a secret under
//   32 bytes, or with the audit key equal to the JWT secret, naming the variable;
// - a `dispute-audit` trail stays valid across a JWT secret rotation (the audit key is
//   its own secret), across an audit key rotation with the old key kept (new entries
//   name the new key), and a host without the old key says which key it lacks;
// - dev mode with no audit key configured keeps a random one in the data directory
//   (mode 0600), so trails stay valid across restarts and JWT secrets.
//
// Needs the built `dispute-audit` plugin ($CHAT_E2E_PLUGINS).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { isMysqlRedis } from './lib/config.mjs';
import { cast, eventually, online } from './lib/fixtures.mjs';
import { request } from './lib/http.mjs';
import { PluginDir, auditTrail, kvSet } from './lib/plugins.mjs';
import { newSecrets, startServer } from './lib/server.mjs';
import { mintToken } from './lib/tokens.mjs';

const secret = (label) => `${label}-${randomBytes(24).toString('hex')}`;

/** `GET /admin/audit/{thread}/verify` (recorded: the trail grows by an `audit_verified` entry a moment later). */
async function verify(server, threadId) {
  const res = await request(server, 'GET', `/admin/audit/${encodeURIComponent(threadId)}/verify`);
  assert.equal(res.status, 200, `verify: ${res.status} ${res.text}`);
  return res.json;
}

/**
 * Restarts of one deployment: every server gets the same database (embedded: the same
 * data directory; mysql-redis: the shared MariaDB) and CHAT_DATA_DIR, and its own secrets.
 */
class Deployment {
  constructor(label) {
    this.label = label;
    this.dataDir = mkdtempSync(join(tmpdir(), 'chat-e2e-audit-keys-'));
    this.plugins = new PluginDir({ 'dispute-audit': {} });
    this.serviceToken = secret('svc');
    this.runs = 0;
  }

  /** Starts a server with this JWT secret and these `env` additions; `auditKey: null` for none. */
  async start({ jwtSecret, auditKey, env = {} }) {
    const secrets = { jwtSecret, serviceToken: this.serviceToken, auditKey };
    const base = { CHAT_PLUGIN_DIR: this.plugins.path };
    // mysql-redis servers keep their data directory (the dev audit key) here too.
    if (isMysqlRedis) base.CHAT_DATA_DIR = this.dataDir;
    this.server = await startServer({
      label: `${this.label}-${++this.runs}`,
      secrets,
      env: { ...base, ...env },
      dataDir: isMysqlRedis ? undefined : this.dataDir,
    });
    return this.server;
  }

  /** Stops the last server and removes the data. */
  async remove() {
    await this.server?.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
    this.plugins.remove();
  }
}

/**
 * Puts a fresh thread under audit and sends `n` messages in it; resolves once the
 * trail has their entries. Returns `{ thread, client }`.
 */
async function auditedThread(server, n) {
  const { client, thread } = await cast(server);
  await sendAudited(server, client, thread.id, n);
  return { client, thread };
}

/**
 * Puts the thread under audit (again: on embedded, plugin kv is in-process state and
 * does not survive a restart), sends `n` messages as `user` and waits for their
 * `message_sent` entries; returns those entries.
 */
async function sendAudited(server, user, threadId, n) {
  await kvSet(server, 'dispute-audit', `audit:${threadId}`, 'case-1');
  const c = await online(server, user);
  try {
    const ids = [];
    for (let i = 0; i < n; i++) ids.push((await c.send(threadId, `evidence ${i}`)).id);
    return await eventually(async () => {
      const entries = (await auditTrail(server, threadId)).filter((e) => e.kind === 'message_sent' && ids.includes(JSON.parse(e.detail).message));
      return entries.length === n && entries;
    }, { what: `${n} message_sent entries in ${threadId}` });
  } finally {
    await c.close();
  }
}

/**
 * Asserts a valid chain of at least `entries` entries (reading the trail appends an
 * `audit_viewed` entry a moment later, so the count only grows); returns the report.
 */
async function assertValid(server, threadId, entries, what) {
  const v = await verify(server, threadId);
  assert.equal(v.valid, true, `${what}: ${JSON.stringify(v)}`);
  assert.equal(v.problem, null);
  assert.ok(v.entries >= entries, `${what}: ${v.entries} entries, at least ${entries} expected`);
  return v;
}

/** Waits until the server's stderr matches `pattern`. */
const logged = (server, pattern) =>
  eventually(() => pattern.test(server.stderr.text), { what: `${server.label} logs ${pattern}` });

/** The key ids of a thread's entries, in order. */
const keyIds = async (server, threadId) => (await auditTrail(server, threadId)).map((e) => e.keyId);

describe('audit keys', () => {
  it('production mode refuses missing, short and shared secrets, naming the variable', async () => {
    const jwt = secret('jwt');
    const cases = [
      [{ CHAT_JWT_SECRET: jwt, CHAT_SERVICE_TOKEN: secret('svc') }, /CHAT_AUDIT_KEY is not set/],
      [{ CHAT_JWT_SECRET: '12345', CHAT_SERVICE_TOKEN: 'x', CHAT_AUDIT_KEY: secret('audit') },
        /CHAT_JWT_SECRET is 5 bytes, under the 32 required; CHAT_SERVICE_TOKEN is 1 bytes/],
      [{ CHAT_JWT_SECRET: jwt, CHAT_SERVICE_TOKEN: secret('svc'), CHAT_AUDIT_KEY: jwt }, /CHAT_AUDIT_KEY is the same secret as CHAT_JWT_SECRET/],
    ];
    for (const [env, why] of cases) {
      await assert.rejects(
        startServer({ label: 'audit-keys-production', secrets: { ...newSecrets(), auditKey: null }, env: { CHAT_ENV: 'production', ...env } }),
        (e) => {
          assert.match(e.message, /exited before listening/);
          assert.match(e.message, why);
          assert.match(e.message, /production mode refuses to start/);
          return true;
        },
      );
    }
    const ok = await startServer({ label: 'audit-keys-production-ok', env: { CHAT_ENV: 'production' } });
    await ok.stop();
  });

  it('trails stay valid across a JWT secret rotation and an audit key rotation; a missing old key is named', async () => {
    const d = new Deployment('audit-keys-rotation');
    const [jwtA, jwtB] = [secret('jwt-a'), secret('jwt-b')];
    const [k1, k2] = [secret('audit-k1'), secret('audit-k2')];
    try {
      let server = await d.start({ jwtSecret: jwtA, auditKey: k1 });
      const { client, thread } = await auditedThread(server, 3);
      const [id1] = await keyIds(server, thread.id);
      assert.match(id1, /^k[0-9a-f]{12}$/, 'the default key id: k + 12 hex digits of a hash');
      assert.ok(!k1.includes(id1.slice(1)), 'the id does not show the key');
      assert.deepEqual(new Set(await keyIds(server, thread.id)), new Set([id1]));
      const before = await assertValid(server, thread.id, 3, 'sealed with k1');
      await server.stop({ removeData: false });

      // A new JWT secret, the same audit key: still valid (before key ids: "entry 1 was altered").
      server = await d.start({ jwtSecret: jwtB, auditKey: k1 });
      await assertValid(server, thread.id, before.entries, 'after the JWT secret rotation');
      await server.stop({ removeData: false });

      // A new audit key, the old one kept: still valid; new entries name the new key.
      server = await d.start({ jwtSecret: jwtB, auditKey: k2, env: { CHAT_AUDIT_KEY_ID: 'k2', CHAT_AUDIT_OLD_KEYS: `${id1}:${k1}` } });
      await assertValid(server, thread.id, before.entries, 'old entries with the kept key');
      const reissued = { ...client, token: mintToken(jwtB, client.id, client.role) };
      const fresh = await sendAudited(server, reissued, thread.id, 2);
      assert.deepEqual(fresh.map((e) => e.keyId), ['k2', 'k2'], 'the current key seals');
      const ids = await keyIds(server, thread.id);
      assert.equal(ids[0], id1);
      assert.equal(ids.at(-1), 'k2');
      const mixed = await assertValid(server, thread.id, before.entries + 2, 'a chain of both keys');
      await server.stop({ removeData: false });

      // Without the old key: the report names the key this host lacks.
      server = await d.start({ jwtSecret: jwtB, auditKey: k2, env: { CHAT_AUDIT_KEY_ID: 'k2' } });
      const lacking = await verify(server, thread.id);
      assert.equal(lacking.valid, false);
      assert.equal(lacking.problem, `entry 1 was sealed with key ${id1}, which this host does not have`);
      assert.ok(lacking.entries >= mixed.entries);
      await server.stop();
    } finally {
      await d.remove();
    }
  });

  it('dev mode without CHAT_AUDIT_KEY keeps a private random key in the data directory: trails survive restarts and JWT secrets', async () => {
    const d = new Deployment('audit-keys-dev');
    try {
      let server = await d.start({ jwtSecret: secret('jwt-a'), auditKey: null });
      await logged(server, /DEV MODE: no CHAT_AUDIT_KEY configured; .*audit\.key \(created now\)/);
      const mode = statSync(join(d.dataDir, 'audit.key')).mode & 0o777;
      assert.equal(mode, 0o600, `audit.key mode ${mode.toString(8)}`);
      const { thread } = await auditedThread(server, 2);
      const before = await assertValid(server, thread.id, 2, 'dev key');
      await server.stop({ removeData: false });

      server = await d.start({ jwtSecret: secret('jwt-b'), auditKey: null });
      await logged(server, /audit\.key \(kept from an earlier run\)/);
      await assertValid(server, thread.id, before.entries, 'dev key after a restart with another JWT secret');
      await server.stop();
    } finally {
      await d.remove();
    }
  });
});
