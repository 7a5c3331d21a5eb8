// A `rate-limit` plugin sets the budgets of events other than sends too, per
// action: tiered-rate-limit configured for `history` and `join` only makes a
// client's 4th history call `rate_limited`, while its sends keep the host's
// default and a freelancer keeps the host's history budget.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { closeAll } from './lib/client.mjs';
import { cast, online } from './lib/fixtures.mjs';
import { PluginDir } from './lib/plugins.mjs';
import { startServer } from './lib/server.mjs';

let server;
let dir;
before(async () => {
  dir = new PluginDir({
    'tiered-rate-limit': { replaceConfig: true, config: { client: '3/60s', actions: 'history,join' } },
  });
  server = await startServer({ label: 'budget-plugins', env: { CHAT_PLUGIN_DIR: dir.path } });
});
after(async () => {
  await server?.stop();
  dir?.remove();
});

describe('a rate-limit plugin sets per-action budgets', () => {
  it('"3/60s" for a client\'s history: the 4th history call is rate_limited; sends and other roles keep the defaults', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await online(server, client);
    const f = await online(server, freelancer);
    for (let i = 0; i < 3; i++) await c.ok('chat:history', { threadId: thread.id });
    const error = await c.fails('chat:history', { threadId: thread.id }, 'rate_limited');
    assert.ok(error.retryAfterMs > 10_000 && error.retryAfterMs <= 20_000, `one more in ~20 s: retryAfterMs ${error.retryAfterMs}`);
    // Sends are not among the plugin's actions: the host's default (25 a minute) applies.
    for (let i = 0; i < 5; i++) await c.send(thread.id, `send ${i}`);
    // The freelancer has no rate in the plugin's config: the host's history budget (120).
    for (let i = 0; i < 10; i++) await f.ok('chat:history', { threadId: thread.id });
    await closeAll(c, f);
  });
});
