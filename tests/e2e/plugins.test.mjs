// WebAssembly policy plugins through the real Socket.IO path and the admin API:
//
// - each hook kind deciding real events: blocklist (access, admin kv), tiered-rate-limit
//   (rate limit stricter and laxer than the host default), contact-filter (message hook:
//   masking and reject mode), dispute-audit (events -> hash-chained audit table);
// - adversarial plugins (evil-*): the host keeps serving, the fail policy applies
//   (closed denies, open skips), faults are counted in /admin/plugins and /metrics, a
//   runaway call is stopped within its time limit, and components that do not match the
//   WIT are refused at load and at upload;
// - hot reload with clients connected: the watched directory, uploads, broken uploads,
//   enable/disable/config/remove through the API, and (mysql-redis) two instances.
//
// Needs the built plugins in $CHAT_E2E_PLUGINS (default $CARGO_TARGET_DIR/plugins):
// scripts/build-plugins.sh. Every server gets its own copy of the plugins in a private
// directory (CHAT_PLUGIN_DIR); manifests are switched by rewriting them there. Uploaded
// plugins get unique names (the MariaDB table of plugins and Redis pub/sub are shared, and
// every server started later loads stored uploads) and are deleted in `finally`.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import { closeAll, newClientMessageId } from './lib/client.mjs';
import { isMysqlRedis, needsMysqlRedis } from './lib/config.mjs';
import { assertTimestamp, cast, eventually, newThread, newUser, online, onlineIn } from './lib/fixtures.mjs';
import { assertHttpError, fullHistory, request } from './lib/http.mjs';
import {
  PluginDir,
  auditTrail,
  builtPlugin,
  editManifest,
  kvDelete,
  kvGet,
  kvSet,
  listPlugins,
  metricValue,
  metricsText,
  pluginView,
  removePlugin,
  uniquePluginName,
  uploadPlugin,
  waitForPlugin,
  waitForVersion,
} from './lib/plugins.mjs';
import { closeRedis, openRedis, streamEntries } from './lib/redis.mjs';
import { newSecrets, startServer } from './lib/server.mjs';

/** Wall-clock budget of one event whose plugin runs away (time-ms = 20). */
const RUNAWAY_ACK_MS = 500;
/** A verdict change (directory write, upload, admin call, other instance) shows within this. */
const SWITCH_MS = 2_000;

// --- helpers ----------------------------------------------------------------------------

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** Runs `fn` and resolves to `{ value, ms }` (wall time). */
async function timed(fn) {
  const started = performance.now();
  const value = await fn();
  return { value, ms: Math.round(performance.now() - started) };
}

/** The raw ack of a send. */
function trySend(c, threadId, body = `probe ${randomBytes(3).toString('hex')}`) {
  return c.ack('chat:send-message', { threadId, body, clientMessageId: newClientMessageId() });
}

/**
 * An access probe that is not rate limited and writes nothing: `chat:history` (every
 * access plugin sees it). Resolves to the raw ack.
 */
function probe(c, threadId) {
  return c.ack('chat:history', { threadId, limit: 1 });
}

/** Asserts an ack is `forbidden` whose message matches `why`. */
function assertForbidden(ack, why, what = 'the event') {
  assert.equal(ack?.ok, false, `${what} should be forbidden, got ${JSON.stringify(ack)}`);
  assert.equal(ack.error?.code, 'forbidden', `${what}: ${JSON.stringify(ack)}`);
  if (why) assert.match(ack.error.message, why, `${what}: the reason`);
}

/**
 * Repeats `attempt()` (an ack) every 25 ms until `done(ack)`, for at most `timeout` ms.
 * Resolves to `{ ack, ms }`.
 */
async function until(attempt, done, { timeout = SWITCH_MS, what = 'the verdict switched' } = {}) {
  const started = performance.now();
  let ack;
  for (;;) {
    ack = await attempt();
    const ms = Math.round(performance.now() - started);
    if (done(ack)) return { ack, ms };
    if (ms > timeout) assert.fail(`${what}: not within ${timeout} ms; last ack ${JSON.stringify(ack)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
const isForbidden = (ack) => ack?.ok === false && ack.error?.code === 'forbidden';
const isOk = (ack) => ack?.ok === true;

/** `/healthz` is 200 and none of the clients lost its connection. */
async function assertServing(server, ...clients) {
  const health = await request(server, 'GET', '/healthz', { token: null });
  assert.equal(health.status, 200, `/healthz: ${health.status} ${health.text}`);
  for (const c of clients.flat()) {
    assert.equal(c.count('disconnect'), 0, `${c.label} was disconnected: ${JSON.stringify(c.received('disconnect'))}`);
    assert.ok(c.connected, `${c.label} is still connected`);
  }
}

const stripAnsi = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');
/** Lines of the server's stderr tail that match every pattern. */
const logLines = (server, ...patterns) =>
  stripAnsi(server.stderr.text).split('\n').filter((l) => patterns.every((p) => p.test(l)));

// --- each hook kind deciding real events ---------------------------------------------------

describe('plugins: each hook kind decides real events', () => {
  let server;
  let dir;
  before(async () => {
    dir = new PluginDir({
      blocklist: {},
      'tiered-rate-limit': {
        replaceConfig: true,
        config: { client: '3/60s', freelancer: '30/60s', 'new-account': '2/60s', actions: 'send' },
      },
      'contact-filter': {},
      'dispute-audit': {},
    });
    server = await startServer({ label: 'plugins-hooks', env: { CHAT_PLUGIN_DIR: dir.path } });
  });
  after(async () => {
    await server?.stop();
    dir?.remove();
  });

  it('GET /admin/plugins lists the directory\'s plugins with their hooks, manifest, sha256 and stats', async () => {
    const plugins = await listPlugins(server);
    const byName = Object.fromEntries(plugins.map((p) => [p.name, p]));
    const expected = {
      blocklist: ['access'],
      'tiered-rate-limit': ['rate-limit'],
      'contact-filter': ['message-hook'],
      'dispute-audit': ['events'],
    };
    // (On mysql-redis a server also loads the plugins stored in the shared database.)
    if (!isMysqlRedis) assert.deepEqual(Object.keys(byName).sort(), Object.keys(expected).sort());
    for (const [name, hooks] of Object.entries(expected)) {
      const p = byName[name];
      assert.deepEqual(p.hooks, hooks, `${name} hooks`);
      assert.equal(p.version, dir.versions[name], `${name} version from the manifest`);
      assert.equal(p.enabled, true);
      assert.equal(p.sha256, sha256(builtPlugin(name).wasm), `${name} sha256 of the component`);
      assert.ok(['open', 'closed'].includes(p.fail));
      for (const k of ['time-ms', 'memory-mb', 'fuel']) assert.equal(typeof p.limits[k], 'number', `${name} limits.${k}`);
      for (const k of ['calls', 'faults', 'timeouts', 'traps', 'failPolicyApplied', 'meanCallUs']) {
        assert.equal(typeof p.stats[k], 'number', `${name} stats.${k}`);
      }
      assert.ok('lastFault' in p.stats);
    }
    assert.equal(byName['tiered-rate-limit'].config.client, '3/60s', 'config values as the manifest has them');
    assert.equal(byName.blocklist.order, 50);
    assert.equal(byName.blocklist.fail, 'open');

    const anonymous = await request(server, 'GET', '/admin/plugins', { token: null });
    assertHttpError(anonymous, 401, 'unauthorized');
    const { client } = await cast(server);
    const asUser = await request(server, 'GET', '/admin/plugins', { token: client.token });
    assert.ok([401, 403].includes(asUser.status), `a client JWT is not the service token: ${asUser.status}`);
  });

  describe('access: blocklist', () => {
    it('a user an admin blocked through the kv API is forbidden everywhere with the reason; unblocking allows again', async () => {
      const { client, freelancer, admin, thread } = await cast(server);
      const c = await onlineIn(server, client, thread.id);
      const f = await onlineIn(server, freelancer, thread.id);
      try {
        const first = await f.send(thread.id, 'before the block');
        await c.nextMessage(first.id);

        await kvSet(server, 'blocklist', `blocked:${freelancer.id}`, 'spam, case 7');
        assert.deepEqual((await kvGet(server, 'blocklist', `blocked:${freelancer.id}`)).json, { value: 'spam, case 7' });
        const why = /^you are blocked: spam, case 7$/;
        assertForbidden(await trySend(f, thread.id, 'while blocked'), why, 'send');
        assertForbidden(await f.ack('chat:join', { threadId: thread.id }), why, 'join');
        assertForbidden(await probe(f, thread.id), why, 'history');
        assertForbidden(await f.ack('chat:typing', { threadId: thread.id, isTyping: true }), why, 'typing');
        assertForbidden(await f.ack('chat:read', { threadId: thread.id, messageId: first.id }), why, 'read');

        // The others keep chatting, and the blocked user still receives.
        const fromClient = await c.send(thread.id, 'are you there?');
        assert.deepEqual(await f.nextMessage(fromClient.id), fromClient);
        // Admins are exempt (exempt-admins = "true"): blocked, an admin still reads.
        await kvSet(server, 'blocklist', `blocked:${admin.id}`, '1');
        const a = await online(server, admin);
        try {
          assert.equal((await a.join(thread.id)).readOnly, true);
        } finally {
          await a.close();
        }

        await kvDelete(server, 'blocklist', `blocked:${freelancer.id}`);
        assert.equal((await kvGet(server, 'blocklist', `blocked:${freelancer.id}`)).status, 404);
        const unblocked = await f.send(thread.id, 'unblocked');
        await c.nextMessage(unblocked.id);
        assert.deepEqual((await fullHistory(server, thread.id)).map((m) => m.body), ['before the block', 'are you there?', 'unblocked']);
        await assertServing(server, c, f);
      } finally {
        await closeAll(c, f);
      }
    });

    it('blocked:<thread>:<user> blocks in that thread only', async () => {
      const { client, freelancer, thread } = await cast(server);
      const other = await newThread(server, [client, freelancer]);
      const f = await online(server, freelancer);
      try {
        await kvSet(server, 'blocklist', `blocked:${thread.id}:${freelancer.id}`, '1');
        assertForbidden(await trySend(f, thread.id), /^you are blocked in this thread$/, 'send in the thread');
        await f.send(other.id, 'fine elsewhere');
        await kvDelete(server, 'blocklist', `blocked:${thread.id}:${freelancer.id}`);
        await f.send(thread.id, 'fine again');
      } finally {
        await f.close();
      }
    });

    it('the kv admin API refuses what it cannot honour: ttlMs 0 or over a year (400, the key untouched), an unknown plugin (404)', async () => {
      const key = `blocked:${newClientMessageId()}`;
      const path = `/admin/plugins/blocklist/kv/${encodeURIComponent(key)}`;
      await kvSet(server, 'blocklist', key, 'kept');
      for (const ttlMs of [0, 365 * 24 * 3600 * 1000 + 1, 2 ** 53]) {
        const res = await request(server, 'PUT', path, { body: { value: 'x', ttlMs } });
        assertHttpError(res, 400, 'invalid_payload');
        assert.deepEqual((await kvGet(server, 'blocklist', key)).json, { value: 'kept' }, `ttlMs ${ttlMs} changed nothing (no silent unblock)`);
      }
      await kvSet(server, 'blocklist', key, 'a year', 365 * 24 * 3600 * 1000);
      for (const [method, body] of [['PUT', { value: '1' }], ['GET'], ['DELETE']]) {
        const res = await request(server, method, `/admin/plugins/blocklsit/kv/${encodeURIComponent(key)}`, { body });
        assertHttpError(res, 404, 'not_found');
      }
      await kvDelete(server, 'blocklist', key);
    });

    it('an admin lists a plugin\'s entries by prefix, page by page, with values and time left', async () => {
      const tag = newClientMessageId().replace(/[^a-z0-9]/gi, '').slice(-10);
      const keys = Array.from({ length: 7 }, (_, i) => `blocked:list${tag}:u${i}`);
      for (const key of keys) await kvSet(server, 'blocklist', key, `reason ${key.at(-1)}`);
      await kvSet(server, 'blocklist', `note:blocked:list${tag}:u0`, 'not under the prefix');
      await kvSet(server, 'blocklist', `blocked:list${tag}:timed`, 'for a minute', 60_000);
      try {
        const listed = new Map();
        let cursor = null;
        let pages = 0;
        do {
          const query = new URLSearchParams({ prefix: `blocked:list${tag}:`, limit: '3', ...(cursor ? { cursor } : {}) });
          const res = await request(server, 'GET', `/admin/plugins/blocklist/kv?${query}`);
          assert.equal(res.status, 200, res.text);
          const keysOfPage = res.json.entries.map((e) => e.key);
          assert.deepEqual(keysOfPage, [...keysOfPage].sort(), 'each page is sorted by key');
          for (const e of res.json.entries) listed.set(e.key, e);
          cursor = res.json.nextCursor;
          pages++;
          assert.ok(pages < 50, 'the listing ends');
        } while (cursor);
        assert.deepEqual([...listed.keys()].sort(), [...keys, `blocked:list${tag}:timed`].sort(), 'every entry under the prefix, nothing else');
        assert.deepEqual(listed.get(keys[3]), { key: keys[3], value: 'reason 3' });
        const timed = listed.get(`blocked:list${tag}:timed`);
        assert.ok(timed.ttlMs > 50_000 && timed.ttlMs <= 60_000, `the time left: ${timed.ttlMs}`);
        for (const [query, status, code] of [['limit=0', 400, 'invalid_payload'], ['limit=501', 400, 'invalid_payload'], ['limit=abc', 400, 'invalid_payload'], [`prefix=${'k'.repeat(257)}`, 400, 'invalid_payload']]) {
          assertHttpError(await request(server, 'GET', `/admin/plugins/blocklist/kv?${query}`), status, code);
        }
        assertHttpError(await request(server, 'GET', '/admin/plugins/blocklsit/kv'), 404, 'not_found');
      } finally {
        for (const key of keys) await kvDelete(server, 'blocklist', key);
        await kvDelete(server, 'blocklist', `note:blocked:list${tag}:u0`);
        await kvDelete(server, 'blocklist', `blocked:list${tag}:timed`);
      }
    });

    it('a block with ttlMs expires by itself', async (t) => {
      const { freelancer, thread } = await cast(server);
      const f = await online(server, freelancer);
      try {
        await kvSet(server, 'blocklist', `blocked:${freelancer.id}`, '1', 1_000);
        const { ttlMs } = (await kvGet(server, 'blocklist', `blocked:${freelancer.id}`)).json;
        assert.ok(ttlMs > 0 && ttlMs <= 1_000, `a read shows the time left, got ${ttlMs}`);
        assertForbidden(await probe(f, thread.id), /^you are blocked$/);
        const { ms } = await until(() => probe(f, thread.id), isOk, { timeout: 5_000, what: 'the block expired' });
        t.diagnostic(`a 1000 ms block was lifted ${ms} ms after the first denied probe`);
      } finally {
        await f.close();
      }
    });
  });

  describe('rate-limit: tiered-rate-limit (client "3/60s", freelancer "30/60s", new account "2/60s"; host default 25/min)', () => {
    it('a plugin stricter than the host default wins: the 4th send of a client is rate_limited with retryAfterMs', async () => {
      const { client, freelancer, thread } = await cast(server);
      const c = await online(server, client);
      const f = await online(server, freelancer);
      try {
        for (let i = 1; i <= 3; i++) await c.send(thread.id, `client ${i}`);
        const err = await c.fails('chat:send-message', { threadId: thread.id, body: 'client 4', clientMessageId: newClientMessageId() }, 'rate_limited');
        assert.equal(typeof err.retryAfterMs, 'number');
        assert.ok(err.retryAfterMs > 0 && err.retryAfterMs <= 60_000, `retryAfterMs ${err.retryAfterMs} in (0, 60000]`);
        assert.deepEqual((await fullHistory(server, thread.id)).map((m) => m.body), ['client 1', 'client 2', 'client 3']);
        // The limit is the user's: the freelancer still sends.
        await f.send(thread.id, 'freelancer 1');
        const view = await pluginView(server, 'tiered-rate-limit');
        assert.ok(view.stats.calls >= 4, `the plugin was asked for every send: ${JSON.stringify(view.stats)}`);
        const policies = metricValue(await metricsText(server), 'chat_plugin_verdicts_total', { plugin: 'tiered-rate-limit', hook: 'rate-limit', verdict: 'policy' });
        assert.ok(policies >= 4, `chat_plugin_verdicts_total{verdict="policy"} ${policies}`);
      } finally {
        await closeAll(c, f);
      }
    });

    it('a plugin laxer than the host default does not loosen it: the 26th send of a freelancer is rate_limited', async () => {
      const { freelancer, thread } = await cast(server);
      const f = await online(server, freelancer);
      try {
        for (let i = 1; i <= 25; i++) await f.send(thread.id, `burst ${i}`);
        const err = await f.fails('chat:send-message', { threadId: thread.id, body: 'burst 26', clientMessageId: newClientMessageId() }, 'rate_limited');
        assert.ok(err.retryAfterMs > 0 && err.retryAfterMs <= 60_000);
      } finally {
        await f.close();
      }
    });

    it('an account marked new by an admin (kv new:<user>) gets the stricter new-account limit', async () => {
      const { client } = await cast(server);
      const newcomer = await newUser(server, { role: 'freelancer' });
      const t2 = await newThread(server, [client, newcomer]);
      const n = await online(server, newcomer);
      try {
        await kvSet(server, 'tiered-rate-limit', `new:${newcomer.id}`, '1');
        await n.send(t2.id, 'new 1');
        await n.send(t2.id, 'new 2');
        const err = await n.fails('chat:send-message', { threadId: t2.id, body: 'new 3', clientMessageId: newClientMessageId() }, 'rate_limited');
        assert.ok(err.retryAfterMs > 0 && err.retryAfterMs <= 60_000);
      } finally {
        await n.close();
      }
    });
  });

  describe('message-hook: contact-filter', () => {
    it('masks contact details: the ack, the delivered message and the history carry the masked body', async () => {
      const { client, freelancer, thread } = await cast(server);
      const c = await onlineIn(server, client, thread.id);
      const f = await online(server, freelancer);
      try {
        const original = 'mail jd@example.com or call 555-123-4567';
        const masked = 'mail [email hidden] or call [phone hidden]';
        const clientMessageId = newClientMessageId();
        const m = (await c.ok('chat:send-message', { threadId: thread.id, body: original, clientMessageId })).message;
        assert.equal(m.body, masked);
        assert.equal((await f.nextMessage(m.id)).body, masked, 'the recipient sees the masked body');
        const clean = await c.send(thread.id, 'See you on Monday at 10:30');
        assert.equal(clean.body, 'See you on Monday at 10:30', 'text without contact details passes untouched');
        assert.equal((await f.nextMessage(clean.id)).body, clean.body);

        const page = await c.ok('chat:history', { threadId: thread.id });
        assert.deepEqual(page.messages.map((x) => x.body), [masked, clean.body]);
        const stored = await fullHistory(server, thread.id);
        assert.deepEqual(stored.map((x) => x.body), [masked, clean.body]);
        assert.ok(!JSON.stringify(stored).includes('jd@example.com'), 'the address is stored nowhere');

        // A retry of the same request returns the stored (rewritten) message.
        const retry = await c.ok('chat:send-message', { threadId: thread.id, body: original, clientMessageId });
        assert.deepEqual(retry.message, m);

        // The rewrite is a decision of the thread, for admins: the plugin, its version, the message.
        const { decisions } = (await request(server, 'GET', `/admin/threads/${thread.id}`)).json;
        const version = (await pluginView(server, 'contact-filter')).version;
        assert.deepEqual(decisions.map(({ at, ...d }) => (assertTimestamp(at, 'decision at'), d)), [{
          userId: client.id, plugin: 'contact-filter', version, hook: 'message-hook', verdict: 'rewrite', reason: null, messageId: m.id,
          inputSha256: createHash('sha256').update(`${thread.id}\0${original}`).digest('hex'),
        }], 'one decision: the rewrite (the clean message and the retry are none)');
        const view = await pluginView(server, 'contact-filter');
        assert.equal(view.stats.faults, 0);
      } finally {
        await closeAll(c, f);
      }
    });
  });

  describe('message-hook: contact-filter in reject mode (its own server)', () => {
    const REASON = 'e2e: keep contact details on the platform';
    let rejecting;
    let rejectDir;
    before(async () => {
      rejectDir = new PluginDir({ 'contact-filter': { config: { reject: 'true', 'reject-reason': REASON } } });
      rejecting = await startServer({ label: 'plugins-reject', env: { CHAT_PLUGIN_DIR: rejectDir.path } });
    });
    after(async () => {
      await rejecting?.stop();
      rejectDir?.remove();
    });

    it('a message the plugin refuses gets rejected with the reason, and is neither stored nor delivered', async () => {
      const { client, freelancer, thread } = await cast(rejecting);
      const c = await online(rejecting, client);
      const f = await online(rejecting, freelancer);
      try {
        const err = await c.fails(
          'chat:send-message',
          { threadId: thread.id, body: 'mail me at someone@example.com', clientMessageId: newClientMessageId() },
          'rejected',
        );
        assert.ok(err.message.includes(REASON), `the message says why: ${err.message}`);
        assert.match(err.message, /e-mail/, 'and what was found');
        const ok = await c.send(thread.id, 'plain text is fine');
        assert.deepEqual((await f.next('chat:message')).message, ok, 'the first message delivered is the accepted one');
        assert.deepEqual((await fullHistory(rejecting, thread.id)).map((m) => m.id), [ok.id]);
        const { decisions } = (await request(rejecting, 'GET', `/admin/threads/${thread.id}`)).json;
        assert.deepEqual(decisions.map((d) => [d.userId, d.plugin, d.verdict, d.reason, d.messageId]), [[client.id, 'contact-filter', 'reject', err.message, null]],
          'the refusal is a decision of the thread, with the reason the sender got');
        const verdicts = metricValue(await metricsText(rejecting), 'chat_plugin_verdicts_total', { plugin: 'contact-filter', hook: 'message-hook', verdict: 'reject' });
        assert.equal(verdicts, 1, 'chat_plugin_verdicts_total{verdict="reject"}');
      } finally {
        await closeAll(c, f);
      }
    });
  });

  describe('events: dispute-audit', () => {
    it('the events of a thread under audit are appended to its verifiable audit trail; other threads get none', async (t) => {
      const { client, freelancer, admin, thread } = await cast(server);
      const quiet = await newThread(server, [client, freelancer]);
      const syncThread = await newThread(server, [client, freelancer]);
      const CASE = `D-${randomBytes(3).toString('hex')}`;
      const c = await online(server, client);
      const f = await online(server, freelancer);
      const a = await online(server, admin);
      try {
        await kvSet(server, 'dispute-audit', `audit:${thread.id}`, CASE);
        // Activity in a thread that is not under audit first: events are handled in order,
        // so once the audited thread's entries are there, these were seen (and skipped).
        await c.join(quiet.id);
        const q = await c.send(quiet.id, 'not audited');
        await f.ok('chat:read', { threadId: quiet.id, messageId: q.id });

        const started = performance.now();
        await c.join(thread.id);
        const m = await c.send(thread.id, 'under audit');
        await f.ok('chat:read', { threadId: thread.id, messageId: m.id });
        await a.join(thread.id);

        const want = ['thread_joined', 'message_sent', 'message_read', 'admin_viewed_thread'];
        const entries = await eventually(async () => {
          const trail = await auditTrail(server, thread.id);
          return want.every((k) => trail.some((e) => e.kind === k)) && trail;
        }, { what: `audit entries ${want.join(', ')} for ${thread.id}` });
        t.diagnostic(`audit entries complete ${Math.round(performance.now() - started)} ms after the first audited event`);

        const kinds = entries.map((e) => e.kind).filter((k) => k !== 'audit_viewed');
        assert.deepEqual(kinds.slice(0, 4), want, 'in the order they happened');
        entries.forEach((e, i) => {
          assert.equal(e.seq, i + 1, 'seq counts from 1 without gaps');
          assert.equal(e.plugin, 'dispute-audit');
          assert.match(e.mac, /^[0-9a-f]{64}$/);
          assertTimestamp(e.createdAt, 'audit createdAt');
          const detail = JSON.parse(e.detail);
          assert.equal(detail.thread, thread.id);
          assert.equal(detail.case, CASE, 'the case reference from the kv value');
          assert.equal(detail.kind, e.kind);
        });
        const byKind = Object.fromEntries(entries.map((e) => [e.kind, e]));
        assert.equal(byKind.thread_joined.actorId, client.id);
        assert.equal(byKind.message_sent.actorId, client.id);
        assert.equal(JSON.parse(byKind.message_sent.detail).message, m.id);
        assert.equal(byKind.message_read.actorId, freelancer.id);
        assert.equal(byKind.admin_viewed_thread.actorId, admin.id);

        assert.deepEqual(await auditTrail(server, quiet.id), [], 'a thread not under audit has no entries');
        assert.deepEqual((await request(server, 'GET', `/admin/audit/${quiet.id}/verify`)).json, { entries: 0, valid: true, problem: null, messagesChecked: null });

        // Ending the audit: later events of the thread are not recorded. The sync point is
        // an event of another audited thread after them.
        await kvDelete(server, 'dispute-audit', `audit:${thread.id}`);
        const unaudited = await f.send(thread.id, 'after the audit');
        await kvSet(server, 'dispute-audit', `audit:${syncThread.id}`, '1');
        await f.join(syncThread.id);
        await eventually(async () => (await auditTrail(server, syncThread.id)).some((e) => e.kind === 'thread_joined'), { what: 'the sync entry' });
        const trail = await auditTrail(server, thread.id);
        assert.ok(!trail.some((e) => e.kind === 'message_sent' && JSON.parse(e.detail).message === unaudited.id), 'no entry after the audit ended');
        assert.ok(trail.some((e) => e.kind === 'audit_viewed'), 'reading the trail of an audited thread is itself audited');
        assert.deepEqual(trail.slice(0, entries.length), entries, 'entries are never rewritten');

        // The chain is complete now (nothing appends to it any more): it verifies.
        const verify = (await request(server, 'GET', `/admin/audit/${thread.id}/verify`)).json;
        assert.deepEqual(verify, { entries: trail.length, valid: true, problem: null, messagesChecked: null });
        assert.equal((await pluginView(server, 'dispute-audit')).stats.faults, 0);
      } finally {
        await closeAll(c, f, a);
      }
    });

    it('verify reports a valid chain while entries are being appended', async () => {
      const { freelancer, thread } = await cast(server);
      const f = await onlineIn(server, freelancer, thread.id);
      try {
        await kvSet(server, 'dispute-audit', `audit:${thread.id}`, '1');
        const results = [];
        let sending = true;
        const sends = (async () => {
          try {
            for (let i = 1; i <= 10; i++) await f.send(thread.id, `busy ${i}`);
          } finally {
            sending = false;
          }
        })();
        while (sending) results.push((await request(server, 'GET', `/admin/audit/${thread.id}/verify`)).json);
        await sends;
        const bad = results.filter((r) => !r.valid);
        assert.deepEqual(bad, [], `${bad.length} of ${results.length} verifications during appends were invalid`);
      } finally {
        await kvDelete(server, 'dispute-audit', `audit:${thread.id}`);
        await f.close();
      }
    });
  });
});

// --- adversarial plugins ---------------------------------------------------------------------

describe('plugins: adversarial plugins', () => {
  // Each scenario gets its own server whose directory holds the plugin with the
  // manifest under test (fail policy, limits, config), so stats start from zero and
  // nothing else decides.

  /** Starts a server on a fresh directory of `plugins` (name -> manifest changes), runs `fn(server)`, stops it. */
  async function withServer(label, plugins, fn) {
    const dir = new PluginDir(plugins);
    const server = await startServer({ label, env: { CHAT_PLUGIN_DIR: dir.path } });
    try {
      return await fn(server);
    } finally {
      await server.stop();
      dir.remove();
    }
  }

  /** Counters of plugin `name`'s `hook` in /metrics now. */
  async function counters(server, name, hook) {
    const text = await metricsText(server);
    const v = (metric, labels = {}) => metricValue(text, metric, { plugin: name, hook, ...labels });
    return {
      calls: v('chat_plugin_calls_total'),
      seconds: v('chat_plugin_call_seconds_count'),
      timeout: v('chat_plugin_faults_total', { fault: 'timeout' }),
      overloaded: v('chat_plugin_faults_total', { fault: 'overloaded' }),
      memory: v('chat_plugin_faults_total', { fault: 'memory' }),
      trap: v('chat_plugin_faults_total', { fault: 'trap' }),
      bad_result: v('chat_plugin_faults_total', { fault: 'bad_result' }),
      closed: v('chat_plugin_fail_policy_total', { policy: 'closed' }),
      open: v('chat_plugin_fail_policy_total', { policy: 'open' }),
    };
  }

  /** Asserts the /metrics counters of the plugin are exactly these (the others 0). */
  async function assertCounters(server, name, hook, expected) {
    const actual = await counters(server, name, hook);
    const want = { ...Object.fromEntries(Object.keys(actual).map((k) => [k, 0])), ...expected };
    assert.deepEqual(actual, want, `/metrics of ${name} (${hook})`);
  }

  /** Asserts the admin API's stats of the plugin (the fields given). */
  async function assertStats(server, name, expected, lastFault) {
    const { stats } = await pluginView(server, name);
    for (const [k, v] of Object.entries(expected)) assert.equal(stats[k], v, `${name} stats.${k}: ${JSON.stringify(stats)}`);
    if (lastFault) assert.match(stats.lastFault ?? '', lastFault, `${name} stats.lastFault`);
    return stats;
  }

  describe('components that do not match the WIT (evil-wrong-wit, evil-wrong-sig)', () => {
    let server;
    let dir;
    before(async () => {
      dir = new PluginDir({ 'evil-wrong-wit': {}, 'evil-wrong-sig': {}, noop: {} });
      server = await startServer({ label: 'plugins-wrong-wit', env: { CHAT_PLUGIN_DIR: dir.path } });
    });
    after(async () => {
      await server?.stop();
      dir?.remove();
    });

    it('are refused at load: the server starts, logs why, lists only the valid plugins and serves', async () => {
      const names = (await listPlugins(server)).map((p) => p.name);
      assert.ok(names.includes('noop'), `the valid plugin is loaded: ${names}`);
      for (const bad of ['evil-wrong-wit', 'evil-wrong-sig']) {
        assert.ok(!names.includes(bad), `${bad} is not loaded: ${names}`);
        assert.ok(logLines(server, /refused/, new RegExp(bad)).length > 0, `the log says ${bad} was refused:\n${server.logs()}`);
      }
      const { client, freelancer, thread } = await cast(server);
      const c = await online(server, client);
      const f = await online(server, freelancer);
      try {
        const m = await c.send(thread.id, 'the host serves');
        await f.nextMessage(m.id);
      } finally {
        await closeAll(c, f);
      }
    });

    it('are refused at upload with 422 and a clear message; nothing is loaded', async () => {
      const cases = [
        ['evil-wrong-wit', /chat:plugin@0\.1\.0|no hook/],
        ['evil-wrong-sig', /mismatch|signature/],
      ];
      for (const [name, why] of cases) {
        const { manifest, wasm } = builtPlugin(name);
        try {
          const err = assertHttpError(await uploadPlugin(server, name, manifest, wasm), 422, 'invalid_payload');
          assert.match(err.message, new RegExp(name), `${name}: the message names the plugin: ${err.message}`);
          assert.match(err.message, why, `${name}: the message says why: ${err.message}`);
        } finally {
          await removePlugin(server, name); // only matters if it was wrongly accepted
        }
      }
      const junk = uniquePluginName('e2e-junk');
      try {
        const err = assertHttpError(
          await uploadPlugin(server, junk, editManifest('noop', { name: junk }).text, randomBytes(4096)),
          422,
          'invalid_payload',
        );
        assert.match(err.message, /compile/, `random bytes: ${err.message}`);
      } finally {
        await removePlugin(server, junk);
      }
      const names = (await listPlugins(server)).map((p) => p.name);
      for (const name of ['evil-wrong-wit', 'evil-wrong-sig', junk]) assert.ok(!names.includes(name), `${name} is not loaded`);
    });
  });

  describe('evil-loop (access hook never returns; time-ms 20)', () => {
    it('fail = "closed": every event is denied within its time limit and counted as a timeout; the host keeps serving', async (t) => {
      await withServer('plugins-evil-loop-closed', { 'evil-loop': { fail: 'closed', limits: { 'time-ms': 20 } } }, async (server) => {
        const casts = await Promise.all([cast(server), cast(server), cast(server)]);
        const clients = await Promise.all(casts.map((x) => online(server, x.client)));
        const freelancers = await Promise.all(casts.map((x) => online(server, x.freelancer)));
        const [c] = clients;
        const { thread } = casts[0];
        try {
          const times = [];
          for (let i = 0; i < 4; i++) {
            const { value: ack, ms } = await timed(() => trySend(c, thread.id));
            assertForbidden(ack, /^the policy plugin evil-loop failed; access is refused$/, 'a send under a runaway access plugin');
            times.push(ms);
          }
          const join = await timed(() => c.ack('chat:join', { threadId: thread.id }));
          assertForbidden(join.value, /evil-loop failed/, 'join');
          times.push(join.ms);
          // Several users at once: nobody waits for another's runaway call beyond the
          // deadline (a call that finds the plugin's slots busy until then is
          // `overloaded` and never runs).
          const parallel = await Promise.all(clients.map((x, i) => timed(() => probe(x, casts[i].thread.id))));
          for (const { value } of parallel) assertForbidden(value, /evil-loop failed/, 'a concurrent history');
          times.push(...parallel.map((p) => p.ms));
          t.diagnostic(`evil-loop (time-ms 20, closed) ack times in ms: ${times.join(', ')}`);
          for (const ms of times) assert.ok(ms < RUNAWAY_ACK_MS, `an ack after ${ms} ms; must be < ${RUNAWAY_ACK_MS} ms (all: ${times.join(', ')})`);

          const calls = 5 + clients.length;
          const stats = await assertStats(server, 'evil-loop', { calls, faults: calls, traps: 0, failPolicyApplied: calls }, /^access: (time limit exceeded|no free call slot before the time limit)$/);
          assert.equal(stats.timeouts + stats.overloaded, calls, `every call timed out or found no free slot: ${JSON.stringify(stats)}`);
          assert.ok(stats.timeouts >= 5, `the sequential calls ran until their deadline: ${JSON.stringify(stats)}`);
          assert.ok(stats.meanCallUs >= 15_000 && stats.meanCallUs < RUNAWAY_ACK_MS * 1000, `meanCallUs ${stats.meanCallUs}`);
          await assertCounters(server, 'evil-loop', 'access', { calls, seconds: calls, timeout: stats.timeouts, overloaded: stats.overloaded, closed: calls });
          await assertServing(server, clients, freelancers);
        } finally {
          await closeAll(clients, freelancers);
        }
      });
    });

    it('fail = "open": the runaway plugin is skipped and users keep chatting', async (t) => {
      await withServer('plugins-evil-loop-open', { 'evil-loop': { fail: 'open', limits: { 'time-ms': 20 } } }, async (server) => {
        const { client, freelancer, thread } = await cast(server);
        const c = await onlineIn(server, client, thread.id);
        const f = await onlineIn(server, freelancer, thread.id);
        try {
          const { value: m, ms } = await timed(() => c.send(thread.id, 'the loop is skipped'));
          t.diagnostic(`a send with evil-loop skipped (fail open) took ${ms} ms`);
          assert.ok(ms < RUNAWAY_ACK_MS, `send acked after ${ms} ms`);
          assert.equal((await f.nextMessage(m.id)).body, 'the loop is skipped');
          const reply = await f.send(thread.id, 'and answered');
          await c.nextMessage(reply.id);
          // Two joins and two sends, each skipped after its timeout.
          await assertStats(server, 'evil-loop', { calls: 4, timeouts: 4, failPolicyApplied: 4 });
          await assertCounters(server, 'evil-loop', 'access', { calls: 4, seconds: 4, timeout: 4, open: 4 });
          await assertServing(server, c, f);
        } finally {
          await closeAll(c, f);
        }
      });
    });
  });

  describe('evil-memory (message hook allocates without bound; memory-mb 16)', () => {
    for (const fail of ['closed', 'open']) {
      it(`fail = "${fail}": the memory cap stops it (fault "memory"); the message is ${fail === 'closed' ? 'rejected' : 'sent unchanged'}`, async (t) => {
        await withServer(`plugins-evil-memory-${fail}`, { 'evil-memory': { fail } }, async (server) => {
          const { client, freelancer, thread } = await cast(server);
          const c = await online(server, client);
          const f = await online(server, freelancer);
          try {
            const { limits } = await pluginView(server, 'evil-memory');
            assert.equal(limits['memory-mb'], 16);
            const { value: ack, ms } = await timed(() => trySend(c, thread.id, 'hoard this'));
            t.diagnostic(`evil-memory (${fail}) ack after ${ms} ms`);
            assert.ok(ms < limits['time-ms'], `stopped by the memory cap, before its ${limits['time-ms']} ms deadline: ${ms} ms`);
            if (fail === 'closed') {
              assert.equal(ack.ok, false, JSON.stringify(ack));
              assert.equal(ack.error.code, 'rejected');
              assert.match(ack.error.message, /evil-memory/);
              assert.deepEqual(await fullHistory(server, thread.id), []);
            } else {
              assert.equal(ack.ok, true, JSON.stringify(ack));
              assert.equal(ack.message.body, 'hoard this');
              assert.equal((await f.nextMessage(ack.message.id)).body, 'hoard this');
            }
            // The failed instance was discarded: the next call starts afresh and fails the same way.
            const again = await trySend(c, thread.id, 'again');
            assert.equal(again.ok, fail === 'open', JSON.stringify(again));
            await assertStats(server, 'evil-memory', { calls: 2, faults: 2, traps: 2, timeouts: 0, failPolicyApplied: 2 }, /^message-hook: memory limit exceeded$/);
            await assertCounters(server, 'evil-memory', 'message-hook', { calls: 2, seconds: 2, memory: 2, [fail]: 2 });
            await assertServing(server, c, f);
          } finally {
            await closeAll(c, f);
          }
        });
      });
    }
  });

  describe('evil-trap (access hook traps)', () => {
    for (const fail of ['closed', 'open']) {
      it(`mode "unreachable", fail = "${fail}": a trap fault each time; the event is ${fail === 'closed' ? 'denied' : 'allowed'}`, async () => {
        await withServer(`plugins-evil-trap-${fail}`, { 'evil-trap': { fail, config: { mode: 'unreachable' } } }, async (server) => {
          const { client, freelancer, thread } = await cast(server);
          const c = await online(server, client);
          const f = await online(server, freelancer);
          try {
            for (let i = 1; i <= 3; i++) {
              const { value: ack, ms } = await timed(() => trySend(c, thread.id, `attempt ${i}`));
              assert.ok(ms < RUNAWAY_ACK_MS, `${ms} ms`);
              if (fail === 'closed') assertForbidden(ack, /^the policy plugin evil-trap failed; access is refused$/, `send ${i}`);
              else assert.equal((await f.nextMessage(ack.message.id)).body, `attempt ${i}`);
            }
            await assertStats(server, 'evil-trap', { calls: 3, faults: 3, traps: 3, timeouts: 0, failPolicyApplied: 3 }, /unreachable/);
            await assertCounters(server, 'evil-trap', 'access', { calls: 3, seconds: 3, trap: 3, [fail]: 3 });
            await assertServing(server, c, f);
          } finally {
            await closeAll(c, f);
          }
        });
      });
    }

    // The guest's stderr goes through WASI into the host log: on the request path too.
    it('mode "panic" (the guest prints its panic message to stderr, then traps), fail = "closed": denied, the ack arrives', async () => {
      await withServer('plugins-evil-trap-panic', { 'evil-trap': { fail: 'closed', config: { mode: 'panic' } } }, async (server) => {
        const { client, freelancer, thread } = await cast(server);
        const c = await online(server, client);
        const f = await online(server, freelancer);
        try {
          const { value: ack, ms } = await timed(() => c.ack('chat:send-message', { threadId: thread.id, body: 'x', clientMessageId: newClientMessageId() }, 2_000));
          assertForbidden(ack, /evil-trap failed/);
          assert.ok(ms < RUNAWAY_ACK_MS, `${ms} ms`);
          await assertStats(server, 'evil-trap', { calls: 1, traps: 1, failPolicyApplied: 1 }, /panic|trap/);
          await assertServing(server, c, f);
        } finally {
          await closeAll(c, f);
        }
      });
    });
  });

  describe('evil-oversized (message hook answers 64 MiB)', () => {
    for (const [kind, fail] of [['rewrite', 'closed'], ['reject', 'closed'], ['rewrite', 'open']]) {
      const outcome = fail === 'closed' ? 'the host rejects the message with its own short reason' : 'the message is sent unchanged';
      it(`kind = "${kind}", fail = "${fail}": the answer is a bad_result; ${outcome}`, async (t) => {
        await withServer(`plugins-evil-oversized-${kind}-${fail}`, { 'evil-oversized': { fail, config: { kind } } }, async (server) => {
          const { client, freelancer, thread } = await cast(server);
          const c = await online(server, client);
          const f = await online(server, freelancer);
          try {
            const { value: ack, ms } = await timed(() => trySend(c, thread.id, 'small is beautiful'));
            t.diagnostic(`evil-oversized (${kind}, ${fail}) ack after ${ms} ms`);
            const text = JSON.stringify(ack);
            assert.ok(text.length < 4_096, `the ack is small: ${text.length} characters`);
            if (fail === 'closed') {
              assert.equal(ack.ok, false, text);
              assert.equal(ack.error.code, 'rejected');
              assert.match(ack.error.message, /evil-oversized/);
              assert.deepEqual(await fullHistory(server, thread.id), []);
            } else {
              assert.equal(ack.ok, true, text);
              assert.equal(ack.message.body, 'small is beautiful');
              assert.equal((await f.nextMessage(ack.message.id)).body, 'small is beautiful');
            }
            await assertStats(server, 'evil-oversized', { calls: 1, faults: 1, traps: 0, timeouts: 0, failPolicyApplied: 1 }, /^message-hook: bad result/);
            await assertCounters(server, 'evil-oversized', 'message-hook', { calls: 1, seconds: 1, bad_result: 1, [fail]: 1 });
            await assertServing(server, c, f);
          } finally {
            await closeAll(c, f);
          }
        });
      });
    }
  });

  describe('a rate-limit plugin answering a malformed policy (tiered-rate-limit with "0/60s")', () => {
    const config = { replaceConfig: true, config: { client: '0/60s', actions: 'send' } };
    it('fail = "closed": a bad_result, and the host applies 1 message per 60 s', async () => {
      await withServer('plugins-bad-policy-closed', { 'tiered-rate-limit': { ...config, fail: 'closed' } }, async (server) => {
        const { client, thread } = await cast(server);
        const c = await online(server, client);
        try {
          await c.send(thread.id, 'the one message');
          const err = await c.fails('chat:send-message', { threadId: thread.id, body: 'a second', clientMessageId: newClientMessageId() }, 'rate_limited');
          assert.ok(err.retryAfterMs > 0 && err.retryAfterMs <= 60_000, `retryAfterMs ${err.retryAfterMs}`);
          await assertStats(server, 'tiered-rate-limit', { calls: 2, faults: 2, failPolicyApplied: 2 }, /^rate-limit: bad result/);
          await assertCounters(server, 'tiered-rate-limit', 'rate-limit', { calls: 2, seconds: 2, bad_result: 2, closed: 2 });
        } finally {
          await c.close();
        }
      });
    });

    it('fail = "open": the plugin is skipped and the host default applies', async () => {
      await withServer('plugins-bad-policy-open', { 'tiered-rate-limit': { ...config, fail: 'open' } }, async (server) => {
        const { client, thread } = await cast(server);
        const c = await online(server, client);
        try {
          for (let i = 1; i <= 5; i++) await c.send(thread.id, `open ${i}`);
          await assertStats(server, 'tiered-rate-limit', { calls: 5, faults: 5, failPolicyApplied: 5 }, /^rate-limit: bad result/);
          await assertCounters(server, 'tiered-rate-limit', 'rate-limit', { calls: 5, seconds: 5, bad_result: 5, open: 5 });
        } finally {
          await c.close();
        }
      });
    });
  });
});

// --- hot reload with clients connected -------------------------------------------------------

describe('plugins: hot reload with clients connected', () => {
  let server;
  let dir;
  before(async () => {
    dir = new PluginDir({ blocklist: { enabled: false }, 'contact-filter': {} });
    server = await startServer({ label: 'plugins-reload', env: { CHAT_PLUGIN_DIR: dir.path } });
  });
  after(async () => {
    await server?.stop();
    dir?.remove();
  });

  /**
   * A client and a freelancer online in a fresh thread; `block()` blocks the
   * freelancer in `plugin`'s kv store (once the plugin exists: a write for an
   * unknown plugin is 404).
   */
  async function blockedPair(plugin) {
    const { client, freelancer, admin, thread } = await cast(server);
    const c = await onlineIn(server, client, thread.id);
    const f = await onlineIn(server, freelancer, thread.id);
    const block = () => kvSet(server, plugin, `blocked:${freelancer.id}`, 'hot reload');
    if (plugin === 'blocklist') await block();
    return { client, freelancer, admin, thread, c, f, block };
  }

  describe('the watched directory', () => {
    it('rewriting the manifest (enabled) switches the verdict for the next event within 2 s; no socket is dropped', async (t) => {
      const { thread, c, f } = await blockedPair('blocklist');
      try {
        assert.equal((await probe(f, thread.id)).ok, true, 'the disabled blocklist does not decide');
        dir.writeManifest('blocklist', { enabled: true });
        const on = await until(() => probe(f, thread.id), isForbidden, { what: 'blocklist enabled from the directory' });
        assertForbidden(on.ack, /^you are blocked: hot reload$/);
        dir.writeManifest('blocklist', { enabled: false });
        const off = await until(() => probe(f, thread.id), isOk, { what: 'blocklist disabled from the directory' });
        t.diagnostic(`directory reload latency (write -> verdict): enable ${on.ms} ms, disable ${off.ms} ms`);
        const m = await f.send(thread.id, 'still connected');
        await c.nextMessage(m.id);
        await assertServing(server, c, f);
      } finally {
        await closeAll(c, f);
      }
    });

    it('rewriting the config switches contact-filter between reject and mask', async (t) => {
      const { client, freelancer, thread } = await cast(server);
      const c = await onlineIn(server, client, thread.id);
      const f = await online(server, freelancer);
      try {
        const masked = await f.send(thread.id, 'write to me@example.org');
        assert.equal(masked.body, 'write to [email hidden]');
        const toReject = await timed(() => waitForVersion(server, 'contact-filter', dir.writeManifest('contact-filter', { config: { reject: 'true' } }), { timeout: SWITCH_MS }));
        await f.fails('chat:send-message', { threadId: thread.id, body: 'write to me@example.org', clientMessageId: newClientMessageId() }, 'rejected');
        const toMask = await timed(() => waitForVersion(server, 'contact-filter', dir.writeManifest('contact-filter', { config: { reject: 'false' } }), { timeout: SWITCH_MS }));
        const again = await f.send(thread.id, 'write to me@example.org');
        assert.equal(again.body, 'write to [email hidden]');
        assert.equal((await c.nextMessage(again.id)).body, 'write to [email hidden]');
        t.diagnostic(`directory reload latency (write -> new version listed): reject ${toReject.ms} ms, mask ${toMask.ms} ms`);
        await assertServing(server, c, f);
      } finally {
        await closeAll(c, f);
      }
    });

    it('a broken component written to the directory is refused and the old version keeps serving', async () => {
      const { thread, c, f } = await blockedPair('blocklist');
      try {
        await waitForVersion(server, 'blocklist', dir.writeManifest('blocklist', { enabled: true }));
        const good = await pluginView(server, 'blocklist');
        const refusals = logLines(server, /plugin change refused/).length;
        dir.writeWasm('blocklist', randomBytes(8192));
        await eventually(() => logLines(server, /plugin change refused/).length > refusals, { what: 'the log reports the refused change' });
        const now = await pluginView(server, 'blocklist');
        assert.equal(now.sha256, good.sha256, 'the old component still serves');
        assert.equal(now.version, good.version);
        assertForbidden(await probe(f, thread.id), /you are blocked/, 'the old version still decides');
        // A good component again (and the plugin off for the next tests).
        const version = dir.install('blocklist', { enabled: false });
        await waitForVersion(server, 'blocklist', version);
        assert.equal((await probe(f, thread.id)).ok, true);
        await assertServing(server, c, f);
      } finally {
        await closeAll(c, f);
      }
    });

    it('one change in the directory reloads the plugin once: no reload loop, its stats keep counting', async () => {
      const own = new PluginDir({ noop: {} });
      const quiet = await startServer({ label: 'plugins-reload-once', env: { CHAT_PLUGIN_DIR: own.path } });
      try {
        await waitForVersion(quiet, 'noop', own.writeManifest('noop', { description: 'changed once' }));
        const { client, thread } = await cast(quiet);
        const c = await online(quiet, client);
        try {
          for (let i = 0; i < 3; i++) assert.equal((await probe(c, thread.id)).ok, true);
        } finally {
          await c.close();
        }
        const counted = (await pluginView(quiet, 'noop')).stats.calls;
        assert.ok(counted >= 3, `noop counted the probes: ${counted}`);
        // A negative check needs a window: for 1 s nothing changes in the directory, so
        // the plugin must not be reloaded (a reload starts its stats from zero).
        const end = Date.now() + 1_000;
        while (Date.now() < end) {
          const { stats } = await pluginView(quiet, 'noop');
          assert.ok(stats.calls >= counted, `noop's stats went from ${counted} calls to ${stats.calls}: it was reloaded without a change`);
          await new Promise((r) => setTimeout(r, 100));
        }
        const reloads = logLines(quiet, /plugin directory: noop reloaded/).length;
        assert.equal(reloads, 1, `"noop reloaded" ${reloads} times after one write`);
      } finally {
        await quiet.stop();
        own.remove();
      }
    });

    it('deleting the .wasm unloads the plugin; writing it back loads it again', async () => {
      const { client, freelancer, thread } = await cast(server);
      const c = await online(server, client);
      const f = await online(server, freelancer);
      try {
        dir.removeWasm('contact-filter');
        await waitForPlugin(server, 'contact-filter', (v) => v === undefined, { timeout: SWITCH_MS, what: 'contact-filter unloaded' });
        const raw = await c.send(thread.id, 'mail raw@example.com');
        assert.equal(raw.body, 'mail raw@example.com', 'no filter any more');
        await waitForVersion(server, 'contact-filter', dir.install('contact-filter'), { timeout: SWITCH_MS });
        const m = await c.send(thread.id, 'mail raw@example.com');
        assert.equal(m.body, 'mail [email hidden]');
        await assertServing(server, c, f);
      } finally {
        await closeAll(c, f);
      }
    });
  });

  describe('the admin API', () => {
    it('uploading a plugin switches the verdict at once; a re-upload replaces it', async (t) => {
      const name = uniquePluginName('e2e-blocklist');
      const { thread, c, f, block } = await blockedPair(name);
      try {
        assert.equal((await probe(f, thread.id)).ok, true, 'nothing decides before the upload');
        const { wasm } = builtPlugin('blocklist');
        // The plugin exists (disabled) before its kv store is written.
        const staged = editManifest('blocklist', { name, enabled: false });
        assert.equal((await uploadPlugin(server, name, staged.text, wasm)).status, 200);
        await block();
        assert.equal((await probe(f, thread.id)).ok, true, 'the disabled version does not decide');
        const first = editManifest('blocklist', { name });
        const { value: res, ms: uploadMs } = await timed(() => uploadPlugin(server, name, first.text, wasm));
        assert.equal(res.status, 200, res.text);
        assert.equal(res.json.name, name);
        assert.equal(res.json.version, first.version);
        assert.deepEqual(res.json.hooks, ['access']);
        assert.equal(res.json.sha256, sha256(wasm));
        assert.equal(res.json.enabled, true);
        const on = await until(() => probe(f, thread.id), isForbidden, { what: 'the uploaded plugin decides' });
        assertForbidden(on.ack, /^you are blocked: hot reload$/);

        const second = editManifest('blocklist', { name, enabled: false });
        assert.equal((await uploadPlugin(server, name, second.text, wasm)).status, 200);
        const off = await until(() => probe(f, thread.id), isOk, { what: 'the re-uploaded (disabled) version decides' });
        assert.equal((await pluginView(server, name)).version, second.version);
        t.diagnostic(`upload: PUT took ${uploadMs} ms; verdict switched ${on.ms} ms after it (re-upload: ${off.ms} ms)`);
        await assertServing(server, c, f);
      } finally {
        await removePlugin(server, name);
        await closeAll(c, f);
      }
    });

    it('a broken upload is 422 and the old version keeps deciding', async () => {
      const name = uniquePluginName('e2e-blocklist');
      const { thread, c, f, block } = await blockedPair(name);
      try {
        const good = editManifest('blocklist', { name });
        assert.equal((await uploadPlugin(server, name, good.text, builtPlugin('blocklist').wasm)).status, 200);
        await block();
        assertForbidden(await probe(f, thread.id), /you are blocked/);
        const serving = await pluginView(server, name);

        const broken = [
          ['random bytes', editManifest('blocklist', { name }).text, randomBytes(65_536), /compile/],
          ['a component of another WIT version', editManifest('evil-wrong-wit', { name }).text, builtPlugin('evil-wrong-wit').wasm, /chat:plugin@0\.1\.0|no hook/],
          ['a hook with the wrong signature', editManifest('evil-wrong-sig', { name }).text, builtPlugin('evil-wrong-sig').wasm, /mismatch|refused/],
          ['a manifest naming another plugin', editManifest('blocklist', { name: `${name}-x` }).text, builtPlugin('blocklist').wasm, /names/],
          ['a manifest with an unknown field', `surprise = "x"\n${good.text}`, builtPlugin('blocklist').wasm, /surprise|unknown/],
          ['a manifest with a time limit out of range', editManifest('blocklist', { name, limits: { 'time-ms': 0 } }).text, builtPlugin('blocklist').wasm, /time-ms/],
        ];
        for (const [what, manifest, wasm, why] of broken) {
          const err = assertHttpError(await uploadPlugin(server, name, manifest, wasm), 422, 'invalid_payload');
          assert.match(err.message, why, `${what}: ${err.message}`);
          assertForbidden(await probe(f, thread.id), /you are blocked/, `after ${what}, the old version`);
        }
        const bad64 = await request(server, 'PUT', `/admin/plugins/${name}`, { body: { manifest: good.text, wasmBase64: '%%% not base64 %%%' } });
        assertHttpError(bad64, 422, 'invalid_payload');
        const still = await pluginView(server, name);
        assert.equal(still.sha256, serving.sha256);
        assert.equal(still.version, serving.version);
        await assertServing(server, c, f);
      } finally {
        await removePlugin(server, name);
        await closeAll(c, f);
      }
    });

    it('enable, disable, config and remove take effect at once; unknown names are 404', async () => {
      const name = uniquePluginName('e2e-blocklist');
      const { admin, thread, c, f, block } = await blockedPair(name);
      const a = await online(server, admin);
      const redis = isMysqlRedis ? await openRedis() : null;
      try {
        assert.equal((await uploadPlugin(server, name, editManifest('blocklist', { name }).text, builtPlugin('blocklist').wasm)).status, 200);
        await block();
        assertForbidden(await probe(f, thread.id), /you are blocked/);

        const disabled = await request(server, 'POST', `/admin/plugins/${name}/disable`);
        assert.equal(disabled.status, 200, disabled.text);
        assert.equal(disabled.json.enabled, false);
        assert.equal((await probe(f, thread.id)).ok, true, 'disabled: no verdict');
        const enabled = await request(server, 'POST', `/admin/plugins/${name}/enable`);
        assert.equal(enabled.status, 200, enabled.text);
        assert.equal(enabled.json.enabled, true);
        assertForbidden(await probe(f, thread.id), /you are blocked/, 'enabled again');

        // Config: blocked admins are exempt unless exempt-admins = "false".
        await kvSet(server, name, `blocked:${admin.id}`, '1');
        assert.equal((await a.ack('chat:join', { threadId: thread.id })).ok, true, 'exempt by default');
        const configured = await request(server, 'PUT', `/admin/plugins/${name}/config`, { body: { 'exempt-admins': 'false' } });
        assert.equal(configured.status, 200, configured.text);
        assert.deepEqual(configured.json.config, { 'exempt-admins': 'false' });
        assertForbidden(await a.ack('chat:join', { threadId: thread.id }), /you are blocked/, 'an admin once not exempt');
        const bad = await request(server, 'PUT', `/admin/plugins/${name}/config`, { body: { 'exempt-admins': false } });
        assert.ok([400, 422].includes(bad.status), `config values must be strings: ${bad.status}`);
        assertForbidden(await a.ack('chat:join', { threadId: thread.id }), /you are blocked/, 'a refused config changes nothing');
        assert.equal((await request(server, 'PUT', `/admin/plugins/${name}/config`, { body: {} })).status, 200);
        assert.equal((await a.ack('chat:join', { threadId: thread.id })).ok, true, 'default config: exempt again');

        const removed = await request(server, 'DELETE', `/admin/plugins/${name}`);
        assert.equal(removed.status, 204, removed.text);
        assert.equal(await pluginView(server, name), undefined);
        assert.equal((await probe(f, thread.id)).ok, true, 'removed: no verdict');

        for (const [method, path, body] of [
          ['DELETE', `/admin/plugins/${name}`],
          ['POST', `/admin/plugins/${name}/enable`],
          ['POST', `/admin/plugins/${name}/disable`],
          ['PUT', `/admin/plugins/${name}/config`, {}],
        ]) {
          assertHttpError(await request(server, method, path, { body }), 404, 'not_found');
        }

        if (redis) {
          // Every admin action is an event on the stream, naming the plugin.
          for (const kind of ['plugin_uploaded', 'plugin_disabled', 'plugin_enabled', 'plugin_configured', 'plugin_kv_set', 'plugin_removed']) {
            await eventually(async () => (await streamEntries(redis, kind, name)).length > 0, { what: `a ${kind} event naming ${name} on chat:logs:events` });
          }
        }
        await assertServing(server, c, f, a);
      } finally {
        await removePlugin(server, name);
        await closeAll(c, f, a);
        await closeRedis(redis);
      }
    });
  });
});

describe('plugins: changes reach every instance (mysql-redis)', { skip: needsMysqlRedis }, () => {
  let a;
  let b;
  let dirB;
  const secrets = newSecrets();
  before(async () => {
    if (!isMysqlRedis) return;
    // B has compiled this component before (its directory holds it, disabled), so the
    // polls below measure the propagation, not the debug build's compiler.
    dirB = new PluginDir({ blocklist: { enabled: false } });
    a = await startServer({ label: 'plugins-A', secrets });
    b = await startServer({ label: 'plugins-B', secrets, env: { CHAT_PLUGIN_DIR: dirB.path } });
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    dirB?.remove();
  });

  it('upload, disable, enable and remove on instance A change the verdict for a client of instance B within 2 s', async (t) => {
    const name = uniquePluginName('e2e-blocklist');
    const { client, freelancer, thread } = await cast(a);
    const fB = await onlineIn(b, freelancer, thread.id, { label: 'freelancer@B' });
    const cA = await onlineIn(a, client, thread.id, { label: 'client@A' });
    let c;
    const timings = [];
    try {
      const { wasm } = builtPlugin('blocklist');
      // Staged disabled (a kv write needs a plugin the instance knows), then the block.
      const staged = editManifest('blocklist', { name, enabled: false });
      assert.equal((await uploadPlugin(a, name, staged.text, wasm)).status, 200);
      await kvSet(a, name, `blocked:${freelancer.id}`, 'cluster');
      await waitForVersion(b, name, staged.version, { timeout: SWITCH_MS });
      assert.equal((await probe(fB, thread.id)).ok, true);

      const manifest = editManifest('blocklist', { name });
      assert.equal((await uploadPlugin(a, name, manifest.text, wasm)).status, 200);
      let r = await until(() => probe(fB, thread.id), isForbidden, { what: 'upload on A reaches B' });
      assertForbidden(r.ack, /^you are blocked: cluster$/);
      timings.push(`upload ${r.ms} ms`);
      const onB = await pluginView(b, name);
      assert.equal(onB.sha256, sha256(wasm));
      assert.equal(onB.version, manifest.version);

      assert.equal((await request(a, 'POST', `/admin/plugins/${name}/disable`)).status, 200);
      r = await until(() => probe(fB, thread.id), isOk, { what: 'disable on A reaches B' });
      timings.push(`disable ${r.ms} ms`);
      assert.equal((await request(a, 'POST', `/admin/plugins/${name}/enable`)).status, 200);
      r = await until(() => probe(fB, thread.id), isForbidden, { what: 'enable on A reaches B' });
      timings.push(`enable ${r.ms} ms`);

      // Stored: a server started now loads the plugin as last changed.
      c = await startServer({ label: 'plugins-C', secrets });
      const onC = await pluginView(c, name);
      assert.ok(onC, `the new instance loaded ${name} from the database`);
      assert.equal(onC.enabled, true);
      assert.equal(onC.sha256, sha256(wasm));

      assert.equal((await request(a, 'DELETE', `/admin/plugins/${name}`)).status, 204);
      r = await until(() => probe(fB, thread.id), isOk, { what: 'remove on A reaches B' });
      timings.push(`remove ${r.ms} ms`);
      await waitForPlugin(b, name, (v) => v === undefined, { timeout: SWITCH_MS });
      await waitForPlugin(c, name, (v) => v === undefined, { timeout: SWITCH_MS });
      t.diagnostic(`A -> B verdict switch after: ${timings.join(', ')}`);

      const m = await fB.send(thread.id, 'from B, unblocked');
      await cA.nextMessage(m.id);
      await assertServing(b, fB);
      await assertServing(a, cA);
    } finally {
      await removePlugin(a, name);
      await closeAll(fB, cA);
      await c?.stop();
    }
  });

  it('an admin kv write on A drops the read B cached (kv-cache-ms = 60000): block and unblock reach B at once', async (t) => {
    const name = uniquePluginName('e2e-kvcache');
    const { freelancer, thread } = await cast(a);
    const fB = await onlineIn(b, freelancer, thread.id, { label: 'freelancer@B' });
    try {
      const { wasm } = builtPlugin('blocklist');
      const manifest = editManifest('blocklist', { name, 'kv-cache-ms': 60_000 });
      assert.equal((await uploadPlugin(a, name, manifest.text, wasm)).status, 200);
      await waitForVersion(b, name, manifest.version, { timeout: SWITCH_MS });
      // B reads "not blocked" and may keep that for a minute.
      assert.equal((await probe(fB, thread.id)).ok, true);
      assert.equal((await probe(fB, thread.id)).ok, true);

      await kvSet(a, name, `blocked:${freelancer.id}`, 'cached on B');
      const blocked = await until(() => probe(fB, thread.id), isForbidden, { timeout: 1_000, what: 'the block on A reaches B' });
      assertForbidden(blocked.ack, /^you are blocked: cached on B$/);
      await kvDelete(a, name, `blocked:${freelancer.id}`);
      const unblocked = await until(() => probe(fB, thread.id), isOk, { timeout: 1_000, what: 'the unblock on A reaches B' });
      t.diagnostic(`kv write on A seen by B after: block ${blocked.ms} ms, unblock ${unblocked.ms} ms`);
    } finally {
      await removePlugin(a, name);
      await closeAll(fB);
    }
  });
});
