// Two deployments on one Redis server (mysql-redis only): X (two instances, the
// default CHAT_REDIS_PREFIX `chat`, database CHAT_E2E_DATABASE_URL) and Y (two
// instances, prefix `e2e-y-<hex>`, database CHAT_E2E_DATABASE_URL_2), on the same
// redis-server of the test's own and the same database number. Both have the
// same users, thread ids and JWT secret, so anything crossing over would reach
// a socket. Within each deployment the two instances see each other (the
// positive controls); nothing of X reaches Y or the other way round: messages,
// typing, presence, plugin changes. Every key and channel on the server is
// under one of the two prefixes.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import { closeAll } from './lib/client.mjs';
import { isMysqlRedis, needsMysqlRedis, secondDatabaseUrl } from './lib/config.mjs';
import { newThread, newUser, onlineIn, participant } from './lib/fixtures.mjs';
import { assertOk, request, upsertUser } from './lib/http.mjs';
import {
  builtPlugin, editManifest, PluginDir, pluginView, removePlugin, uniquePluginName, uploadPlugin, waitForPlugin, waitForVersion,
} from './lib/plugins.mjs';
import { closeRedis, openRedis } from './lib/redis.mjs';
import { RedisServer } from './lib/redis-server.mjs';
import { newSecrets, startServer } from './lib/server.mjs';

/** How long a change may take to reach the deployment's other instance. */
const SYNC_MS = 5_000;

describe('two deployments on one Redis server', { skip: needsMysqlRedis }, () => {
  const yPrefix = `e2e-y-${randomBytes(4).toString('hex')}`;
  // Two plugins in both deployments' directories (not in their databases): X
  // changes one through its admin API, Y the other.
  const xPlugin = uniquePluginName('e2e-iso-x');
  const yPlugin = uniquePluginName('e2e-iso-y');
  let redis;
  let dirX;
  let dirY;
  let x1;
  let x2;
  let y1;
  let y2;
  const directoryVersions = {};
  before(async () => {
    if (!isMysqlRedis) return;
    redis = await RedisServer.start();
    dirX = new PluginDir();
    dirY = new PluginDir();
    for (const dir of [dirX, dirY]) {
      for (const name of [xPlugin, yPlugin]) directoryVersions[name] = dir.install(name, { version: `1.0.0-${name}` }, 'blocklist');
    }
    const secrets = newSecrets();
    const start = (label, env, databaseUrl) => startServer({ label, secrets, redisUrl: redis.url, databaseUrl, env });
    const xEnv = { CHAT_PLUGIN_DIR: dirX.path };
    const yEnv = { CHAT_PLUGIN_DIR: dirY.path, CHAT_REDIS_PREFIX: yPrefix };
    [x1, x2, y1, y2] = await Promise.all([
      start('X1', xEnv),
      start('X2', xEnv),
      start('Y1', yEnv, secondDatabaseUrl),
      start('Y2', yEnv, secondDatabaseUrl),
    ]);
  });
  after(async () => {
    // What the admin API stored would load in every later server on these databases.
    if (x1) await removePlugin(x1, xPlugin);
    if (y1) await removePlugin(y1, yPlugin);
    await Promise.all([x1, x2, y1, y2].map((s) => s?.stop()));
    await redis?.kill();
    dirX?.remove();
    dirY?.remove();
  });

  /** The same users and thread (same ids) in X (through X1) and in Y (through Y1). */
  async function sameCastInBoth() {
    const [client, freelancer, other] = await Promise.all([
      newUser(x1, { role: 'client' }),
      newUser(x1, { role: 'freelancer' }),
      newUser(x1, { role: 'freelancer' }),
    ]);
    for (const u of [client, freelancer, other]) {
      assertOk(await upsertUser(y1, u.id, { role: u.role, displayName: u.displayName }), `PUT /api/users/${u.id} on Y`);
    }
    const thread = await newThread(x1, [client, freelancer, other]);
    await newThread(y1, [client, freelancer, other], { id: thread.id });
    return { client, freelancer, other, thread };
  }

  it('messages, typing and presence reach the other instance of their deployment, never the other deployment', async () => {
    const { client, freelancer, other, thread } = await sameCastInBoth();
    const sockets = [];
    const open = async (server, user) => {
      const s = await onlineIn(server, user, thread.id, { label: `${user.role}@${server.label}` });
      sockets.push(s);
      return s;
    };
    try {
      const cX = await open(x1, client);
      const fX = await open(x2, freelancer);
      const cY = await open(y1, client);
      const fY = await open(y2, freelancer);

      // Messages: X1 -> X2 and Y1 -> Y2 (the other instance), not across.
      const mX = await cX.send(thread.id, 'in X');
      await fX.nextMessage(mX.id);
      const mY = await cY.send(thread.id, 'in Y');
      await fY.nextMessage(mY.id);
      // Both deployments have sent since: a crossing message would be here by now.
      await fY.expectNone('chat:message', { where: (d) => d.message.id === mX.id || d.message.body === 'in X', why: '(from X)' });
      await cY.expectNone('chat:message', { where: (d) => d.message.body === 'in X', why: '(from X)' });
      await fX.expectNone('chat:message', { where: (d) => d.message.body === 'in Y', why: '(from Y)' });
      await cX.expectNone('chat:message', { where: (d) => d.message.body === 'in Y', why: '(from Y)' });

      // Typing, both ways.
      await cX.ok('chat:typing', { threadId: thread.id, isTyping: true });
      assert.deepEqual(await fX.next('chat:typing'), { threadId: thread.id, userId: client.id, isTyping: true });
      await fY.ok('chat:typing', { threadId: thread.id, isTyping: true });
      assert.deepEqual(await cY.next('chat:typing'), { threadId: thread.id, userId: freelancer.id, isTyping: true });
      await fY.expectNone('chat:typing', { where: (d) => d.userId === client.id, why: '(X typing)' });
      await cX.expectNone('chat:typing', { where: (d) => d.userId === freelancer.id, why: '(Y typing)' });

      // Presence: the third user comes online in X only.
      const oX = await open(x2, other);
      assert.equal((await cX.next('chat:presence', { where: (d) => d.userId === other.id })).online, true);
      assert.equal(participant(await cX.join(thread.id), other.id).online, true, 'X1 sees X2\'s socket');
      assert.equal(participant(await cY.join(thread.id), other.id).online, false, 'online in X is not online in Y');
      await oX.close();
      assert.equal((await cX.next('chat:presence', { where: (d) => d.userId === other.id })).online, false);
      await cY.expectNone('chat:presence', { where: (d) => d.userId === other.id, why: '(X presence)' });
      await fY.expectNone('chat:presence', { where: (d) => d.userId === other.id, why: '(X presence)' });

      // Every key and channel on the server is under one of the two prefixes,
      // and each deployment has its own adapter and plugin channels.
      const r = await openRedis(redis.url);
      try {
        const prefixes = ['chat:', `${yPrefix}:`];
        const under = (name) => prefixes.some((p) => name.startsWith(p));
        const keys = await r.keys('*');
        assert.deepEqual(keys.filter((k) => !under(k)), [], 'keys outside the prefixes');
        assert.ok(keys.includes(`${yPrefix}:presence:${client.id}`), `Y's presence key: ${keys.join(', ')}`);
        assert.ok(keys.includes(`chat:presence:${client.id}`), `X's presence key: ${keys.join(', ')}`);
        const channels = await r.pubSubChannels('*');
        assert.deepEqual(channels.filter((c) => !under(c)), [], 'channels outside the prefixes');
        for (const c of ['chat:socket.io-request#/#', 'chat:plugins:changed', `${yPrefix}:socket.io-request#/#`, `${yPrefix}:plugins:changed`]) {
          assert.ok(channels.includes(c), `channel ${c} in ${channels.join(', ')}`);
        }
      } finally {
        await closeRedis(r);
      }
    } finally {
      await closeAll(...sockets);
    }
  });

  it('a plugin changed through the admin API of one deployment changes on its other instance only', async () => {
    const { wasm } = builtPlugin('blocklist');
    // X uploads a new version of xPlugin: X2 loads it from X's database.
    const xVersion = editManifest('blocklist', { name: xPlugin });
    assert.equal((await uploadPlugin(x1, xPlugin, xVersion.text, wasm)).status, 200);
    await waitForVersion(x2, xPlugin, xVersion.version, { timeout: SYNC_MS });
    // Y does the same with yPlugin. Y2 hears its deployment's announcements in
    // the server's order, and it handles them one by one: once it runs the new
    // yPlugin, it would already have handled X's announcement had it heard it
    // (and unloaded xPlugin, which Y's database does not hold).
    const yVersion = editManifest('blocklist', { name: yPlugin });
    assert.equal((await uploadPlugin(y1, yPlugin, yVersion.text, wasm)).status, 200);
    await waitForVersion(y2, yPlugin, yVersion.version, { timeout: SYNC_MS });
    // And X2 once more, after Y's announcement: X disables xPlugin.
    assert.equal((await request(x1, 'POST', `/admin/plugins/${xPlugin}/disable`)).status, 200);
    await waitForPlugin(x2, xPlugin, (v) => v?.enabled === false, { timeout: SYNC_MS, what: `${xPlugin} disabled on X2` });

    for (const y of [y1, y2]) {
      const view = await pluginView(y, xPlugin);
      assert.ok(view, `${y.label} still runs ${xPlugin} (X's changes never reached Y)`);
      assert.equal(view.version, directoryVersions[xPlugin], `${y.label}: ${xPlugin} is its directory's version`);
      assert.equal(view.enabled, true, `${y.label}: ${xPlugin} still enabled`);
    }
    for (const x of [x1, x2]) {
      const view = await pluginView(x, yPlugin);
      assert.ok(view, `${x.label} still runs ${yPlugin} (Y's change never reached X)`);
      assert.equal(view.version, directoryVersions[yPlugin], `${x.label}: ${yPlugin} is its directory's version`);
    }
  });
});
