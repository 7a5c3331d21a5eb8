// The `rejected` ack code: a policy plugin refuses a message and says why.
//
// Needs the built contact-filter plugin (contact-filter.wasm + contact-filter.toml):
// from $CHAT_E2E_PLUGIN_DIST, else from <repo>/plugins-dist/ (scripts/build-plugins.sh).
// Without it the test is skipped. The plugin is switched to reject mode through a
// copy of its manifest in a private plugin directory.

import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

import { closeAll, newClientMessageId } from './lib/client.mjs';
import { cast, online } from './lib/fixtures.mjs';
import { fullHistory } from './lib/http.mjs';
import { startServer } from './lib/server.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const dist = process.env.CHAT_E2E_PLUGIN_DIST || resolve(here, '../../plugins-dist');
const wasm = join(dist, 'contact-filter.wasm');
const manifest = join(dist, 'contact-filter.toml');
const available = existsSync(wasm) && existsSync(manifest);
const REASON = 'e2e: keep contact details on the platform';

describe('plugin rejection', { skip: available ? false : `no built contact-filter plugin in ${dist} (set CHAT_E2E_PLUGIN_DIST)` }, () => {
  let server;
  let pluginDir;
  before(async () => {
    if (!available) return;
    pluginDir = mkdtempSync(join(tmpdir(), 'chat-e2e-plugins-'));
    const toml = readFileSync(manifest, 'utf8');
    assert.match(toml, /^reject\s*=\s*"false"/m, 'contact-filter.toml has a reject = "false" line to switch');
    const rejecting = toml.replace(/^reject\s*=.*$/m, 'reject = "true"').replace(/^reject-reason\s*=.*$/m, `reject-reason = "${REASON}"`);
    copyFileSync(wasm, join(pluginDir, 'contact-filter.wasm'));
    writeFileSync(join(pluginDir, 'contact-filter.toml'), rejecting);
    server = await startServer({ label: 'plugins', env: { CHAT_PLUGIN_DIR: pluginDir } });
  });
  after(async () => {
    await server?.stop();
    if (pluginDir) rmSync(pluginDir, { recursive: true, force: true });
  });

  it('a message the plugin refuses gets rejected with the reason, and is neither stored nor delivered', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await online(server, client);
    const f = await online(server, freelancer);
    try {
      const err = await c.fails(
        'chat:send-message',
        { threadId: thread.id, body: 'mail me at someone@example.com', clientMessageId: newClientMessageId() },
        'rejected',
      );
      assert.ok(err.message.includes(REASON), `the message says why: ${err.message}`);
      const ok = await c.send(thread.id, 'plain text is fine');
      assert.deepEqual((await f.next('chat:message')).message, ok, 'the first message delivered is the accepted one');
      assert.deepEqual((await fullHistory(server, thread.id)).map((m) => m.id), [ok.id]);
    } finally {
      await closeAll(c, f);
    }
  });
});
