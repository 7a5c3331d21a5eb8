// The admin console (/console) and the demo chat (/demo) in real Chromium
// (Debian's /usr/bin/chromium, headless, driven by playwright-core), against
// the real binary on the backend under test:
//
// - the pages are served by the binary with a strict CSP, and nothing on them
//   breaks it; the vendored socket.io-client is the one the tests use;
// - sign-in refused with a wrong token and a non-admin JWT, accepted with the
//   service token and with an admin JWT;
// - finding a thread by a participant's name and by the pair; the dispute view
//   showing, live, a message a Socket.IO client sent a moment before, and its
//   read time once the other side reads;
// - audit on: the history sealed, an event recorded, Verify valid; a message
//   (from before the audit, or during it) or an entry edited in the database,
//   Verify naming it; the export downloaded and checked;
// - a plugin disabled in the console changing the verdict on a live socket;
//   an upload refused with its reason;
// - a message a plugin rewrote marked in the dispute view, a send it refused
//   listed with the plugin, its version and the reason;
// - markup in titles and bodies shown as text, never run;
// - the demo: two browser contexts chatting, typing and read receipts seen on
//   the other side; off in production, like the dev sign-in.
//
// CHAT_E2E_SCREENSHOTS=<dir> saves a screenshot of each page there
// (docs/console/ holds the committed ones).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';

import { closeAll, newClientMessageId } from './lib/client.mjs';
import { backend, databaseUrl } from './lib/config.mjs';
import { cast, eventually, newThread, newUser, online, onlineIn } from './lib/fixtures.mjs';
import { request } from './lib/http.mjs';
import { PluginDir, auditTrail, builtPlugin, editManifest, kvSet, removePlugin, uniquePluginName, uploadPlugin, waitForVersion } from './lib/plugins.mjs';
import { startServer } from './lib/server.mjs';
import { mintToken } from './lib/tokens.mjs';

const CHROMIUM = process.env.CHAT_E2E_CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.CHAT_E2E_SCREENSHOTS || '';
/** What the page must show within (a live update, a switched verdict). */
const LIVE_MS = 5_000;
const SWITCH_MS = 2_000;

let browser;
let server;
let dir;

/** A page that fails the test on any script error or CSP violation. */
async function newPage(context) {
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) page.problems.push(`console: ${m.text()}`);
  });
  page.on('dialog', (d) => { page.problems.push(`dialog: ${d.message()}`); d.dismiss(); });
  return page;
}

function assertClean(page) {
  assert.deepEqual(page.problems, [], 'no script error, CSP violation or dialog');
}

async function shot(page, name) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function signIn(page, token, operator = '') {
  await page.goto(`${server.url}/console`);
  await page.getByLabel('Admin token').fill(token);
  if (operator) await page.getByLabel('Your name for the audit trail').fill(operator);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

function adminToken(id = `admin-${randomBytes(3).toString('hex')}`) {
  return mintToken(server.jwtSecret, id, 'admin');
}

/** Runs SQL against the backend's database (the sqlite3 or mysql client). */
function sql(statement) {
  if (backend === 'embedded') {
    // The server may be writing (a delivery ack, an audit entry): wait for its
    // lock as it waits for others' (SQLite's busy timeout), instead of failing at once.
    execFileSync('sqlite3', ['-cmd', '.timeout 5000', join(server.dataDir, 'chat-host.db'), statement]);
  } else {
    const url = new URL(databaseUrl);
    execFileSync('mysql', ['-h', url.hostname, '-P', url.port || '3306', '-u', decodeURIComponent(url.username), url.pathname.slice(1), '-e', statement]);
  }
}

before(async () => {
  dir = new PluginDir({ blocklist: {}, 'dispute-audit': {} });
  server = await startServer({ label: 'console', env: { CHAT_PLUGIN_DIR: dir.path } });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  dir?.remove();
});

describe('the pages', () => {
  it('are served by the binary with a strict CSP; the vendored socket.io-client is the stock one', async () => {
    const res = await fetch(`${server.url}/console`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/html/);
    const csp = res.headers.get('content-security-policy');
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/, 'no inline or eval script');
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    const etag = res.headers.get('etag');
    assert.equal((await fetch(`${server.url}/console`, { headers: { 'if-none-match': etag } })).status, 304);
    const vendored = Buffer.from(await (await fetch(`${server.url}/vendor/socket.io.esm.min.js`)).arrayBuffer());
    const stock = readFileSync(new URL('./node_modules/socket.io-client/dist/socket.io.esm.min.js', import.meta.url));
    assert.ok(vendored.equals(stock), 'host/assets/vendor/socket.io.esm.min.js is the socket.io-client in tests/e2e (copy it again after an upgrade)');
    assert.equal((await fetch(`${server.url}/console/nothing.js`)).status, 404);
    const home = await fetch(`${server.url}/`, { redirect: 'manual' });
    assert.equal(home.headers.get('location'), '/demo', 'dev mode: / leads to the demo');
  });

  it('production: the console is served, the demo and the dev sign-in are not', async () => {
    const secret = () => randomBytes(32).toString('hex');
    const prod = await startServer({
      label: 'console-prod',
      secrets: { jwtSecret: secret(), serviceToken: secret(), auditKey: secret() },
      env: { CHAT_ENV: 'production' },
    });
    try {
      assert.equal((await fetch(`${prod.url}/console`)).status, 200);
      assert.equal((await fetch(`${prod.url}/demo`)).status, 404);
      assert.equal((await fetch(`${prod.url}/console/dev-session`, { method: 'POST' })).status, 404);
      assert.equal((await fetch(`${prod.url}/demo/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"displayName":"x","role":"client"}' })).status, 404);
      assert.deepEqual(await (await fetch(`${prod.url}/console/surfaces.json`)).json(), { devSignIn: false, demo: false });
    } finally {
      await prod.stop();
    }
  });
});

describe('sign-in', () => {
  it('refuses a wrong token and a non-admin JWT with the reason, accepts the service token and an admin JWT', async () => {
    const context = await browser.newContext();
    const page = await newPage(context);
    try {
      await signIn(page, 'not-the-token');
      await page.getByRole('alert').filter({ hasText: /Refused:/ }).waitFor();
      const client = await newUser(server, { role: 'client' });
      await page.getByLabel('Admin token').fill(mintToken(server.jwtSecret, client.id, 'client'));
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      await page.getByRole('alert').filter({ hasText: 'admin role required' }).waitFor();
      await shot(page, 'sign-in');
      await page.getByLabel('Admin token').fill(server.serviceToken);
      await page.getByLabel('Your name for the audit trail').fill('ops-jane');
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      await page.getByText('Signed in as ops-jane').waitFor();
      await page.getByRole('button', { name: 'Sign out' }).click();
      await signIn(page, adminToken('admin-kim'));
      await page.getByText('Signed in as admin-kim').waitFor();
      await page.getByRole('navigation', { name: 'Console pages' }).getByRole('link', { name: 'Threads' }).waitFor();
      assertClean(page);
    } finally {
      await context.close();
    }
  });

  it('an expired token signs the console out with a clear message', async () => {
    const context = await browser.newContext();
    const page = await newPage(context);
    try {
      const soon = mintToken(server.jwtSecret, 'admin-brief', 'admin', { exp: Math.floor(Date.now() / 1000) + 1 });
      await signIn(page, soon);
      await page.getByText('Signed in as admin-brief').waitFor();
      // The token expires (2 s leeway on the server), then the next call signs out.
      await page.waitForTimeout(4_000);
      await page.getByRole('navigation', { name: 'Console pages' }).getByRole('link', { name: 'Plugins' }).click();
      await page.getByRole('alert').filter({ hasText: /Signed out: .*expired/i }).waitFor();
      assertClean(page);
    } finally {
      await context.close();
    }
  });
});

describe('threads and the dispute view', () => {
  it('finds a thread by a participant name and by the pair; the dispute view shows a new message live, then its read time', async () => {
    const tag = randomBytes(3).toString('hex');
    const { client, freelancer, thread } = await cast(server);
    await request(server, 'PUT', `/api/users/${client.id}`, { body: { displayName: `Carla ${tag}`, role: 'client' } });
    await request(server, 'PUT', `/api/users/${freelancer.id}`, { body: { displayName: `Felix ${tag}`, role: 'freelancer' } });
    const c = await onlineIn(server, client, thread.id);
    const f = await online(server, freelancer);
    const context = await browser.newContext();
    const page = await newPage(context);
    try {
      await c.send(thread.id, 'first offer: 300 EUR');
      await signIn(page, adminToken());
      await page.getByLabel('Participants').fill(`Carla ${tag}`);
      await page.getByRole('button', { name: 'Search' }).click();
      const found = page.getByRole('table', { name: 'Threads found' });
      await found.getByRole('link', { name: thread.title }).waitFor();
      await page.getByLabel('Participants').fill(`carla ${tag}, felix ${tag}`);
      await page.getByRole('button', { name: 'Search' }).click();
      await found.getByRole('row').nth(1).getByText('first offer: 300 EUR').waitFor();
      assert.equal(await found.getByRole('row').count(), 2, 'the pair has one thread');
      await shot(page, 'threads');
      await found.getByRole('link', { name: thread.title }).click();
      await page.getByRole('heading', { name: thread.title }).waitFor();
      const messages = page.getByRole('list', { name: 'Messages' });
      await messages.getByText('first offer: 300 EUR').waitFor();

      const sent = await c.send(thread.id, 'final offer: 450 EUR');
      await messages.getByText('final offer: 450 EUR').waitFor({ timeout: LIVE_MS });
      const receipt = page.getByRole('list', { name: `Receipts of message ${sent.id}` }).locator(`li[data-user-id="${freelancer.id}"]`);
      await receipt.getByText(/delivered .* later/).waitFor({ timeout: LIVE_MS });
      await receipt.getByText('read not yet').waitFor();
      await f.ack('chat:read', { threadId: thread.id, messageId: sent.id });
      await receipt.getByText(/read .* later/).waitFor({ timeout: LIVE_MS });
      await shot(page, 'dispute-view');
      assertClean(page);
    } finally {
      await context.close();
      await closeAll(c, f);
    }
  });

  it('audit on: the history sealed, an event recorded, Verify valid; a message or an entry edited in the database, Verify names it; the export holds it all', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await onlineIn(server, client, thread.id);
    const f = await online(server, freelancer);
    const context = await browser.newContext({ acceptDownloads: true });
    const page = await newPage(context);
    try {
      const before = await c.send(thread.id, 'the brief, sent before any dispute');
      await signIn(page, server.serviceToken, 'ops-jane');
      await page.getByText('Signed in as ops-jane').waitFor();
      await page.evaluate((id) => { location.hash = `#/threads/${encodeURIComponent(id)}`; }, thread.id);
      await page.getByRole('heading', { name: thread.title }).waitFor();
      await page.getByText('Not under audit.').waitFor();
      await page.getByLabel('Case reference').fill('D-77');
      await page.getByRole('button', { name: 'Put under audit' }).click();
      await page.getByText(/^Under audit since .+ by ops-jane \(case D-77\)/).waitFor();
      const trail = page.getByRole('table', { name: 'Audit trail' });
      await trail.getByRole('cell', { name: 'history_sealed', exact: true }).waitFor();
      const during = await c.send(thread.id, 'the work was delivered late');
      await trail.getByRole('cell', { name: 'message_sent', exact: true }).waitFor({ timeout: LIVE_MS * 2 });
      await trail.getByRole('cell', { name: 'message_stored', exact: true }).waitFor();
      await page.getByRole('button', { name: 'Verify' }).click();
      await page.getByText(/^Valid: \d+ entries check out, and 2 messages with their receipts match them\.$/).waitFor();
      await eventually(async () => (await auditTrail(server, thread.id)).some((e) => e.kind === 'audit_verified'), { what: 'the verification is itself in the trail' });
      await shot(page, 'audit');

      const download = page.waitForEvent('download');
      await page.getByRole('button', { name: 'Export JSON' }).click();
      const file = join(tmpdir(), `export-${randomBytes(4).toString('hex')}.json`);
      await (await download).saveAs(file);
      const exported = JSON.parse(readFileSync(file, 'utf8'));
      assert.equal(exported.thread.id, thread.id);
      assert.equal(exported.exportedBy, 'ops-jane');
      assert.ok(exported.messages.some((m) => m.body === 'the work was delivered late' && m.receipts.length === 2), 'the messages with their receipts');
      assert.ok(exported.audit.entries.some((e) => e.kind === 'message_sent'), 'the audit entries');
      assert.deepEqual([exported.audit.verification.valid, exported.audit.verification.messagesChecked], [true, 2]);
      assert.ok(exported.thread.participants.some((p) => p.id === freelancer.id), 'the participants');
      await eventually(async () => (await auditTrail(server, thread.id)).some((e) => e.kind === 'thread_exported' && e.actorId === 'ops-jane'), { what: 'the export is itself in the trail, by its operator' });

      // Evidence: a message edited behind the host's back, from before the audit or during it.
      for (const [m, named] of [[before, /^Not valid: message \d+, sealed by entry \d+ when the audit started, was edited/], [during, /^Not valid: message \d+ was edited after entry \d+ recorded it$/]]) {
        sql(`UPDATE chat_message SET body = 'it was on time' WHERE id = ${m.id}`);
        await page.getByRole('button', { name: 'Verify' }).click();
        await page.getByText(named).waitFor();
        assert.match(await page.getByRole('status').filter({ hasText: 'Not valid' }).innerText(), new RegExp(`message ${m.id}\\b`));
        sql(`UPDATE chat_message SET body = '${m.body}' WHERE id = ${m.id}`);
      }
      sql(`UPDATE chat_audit_entry SET detail = 'nothing happened' WHERE thread_id = '${thread.id}' AND seq = 1`);
      await page.getByRole('button', { name: 'Verify' }).click();
      await page.getByText(/^Not valid: entry 1\b/).waitFor();
      assertClean(page);
    } finally {
      await context.close();
      await closeAll(c, f);
    }
  });

  it('shows markup in titles and bodies as text and never runs it', async () => {
    const { client, freelancer } = await cast(server);
    const evilTitle = '<img src=x onerror="window.__pwned=1">Invoice';
    const thread = await newThread(server, [client, freelancer], { title: evilTitle });
    const c = await onlineIn(server, client, thread.id);
    const context = await browser.newContext();
    const page = await newPage(context);
    try {
      await c.send(thread.id, '<script>window.__pwned=2</script><b onmouseover="window.__pwned=3">hi</b>');
      await signIn(page, adminToken());
      await page.evaluate((id) => { location.hash = `#/threads/${encodeURIComponent(id)}`; }, thread.id);
      await page.getByRole('heading', { name: evilTitle }).waitFor();
      await page.getByText('<script>window.__pwned=2</script>', { exact: false }).waitFor();
      assert.equal(await page.evaluate(() => window.__pwned), undefined, 'nothing ran');
      assert.equal(await page.locator('main img, main script, main b').count(), 0, 'no element was made from the text');
      assertClean(page);
    } finally {
      await context.close();
      await closeAll(c);
    }
  });
});

describe('users', () => {
  it('finds a user by name, shows presence and threads, and a block refuses their next send on a live socket', async () => {
    const tag = randomBytes(3).toString('hex');
    const { client, freelancer, thread } = await cast(server);
    await request(server, 'PUT', `/api/users/${freelancer.id}`, { body: { displayName: `Greta ${tag}`, role: 'freelancer' } });
    const f = await onlineIn(server, freelancer, thread.id);
    const context = await browser.newContext();
    const page = await newPage(context);
    try {
      await signIn(page, adminToken());
      await page.getByRole('navigation', { name: 'Console pages' }).getByRole('link', { name: 'Users' }).click();
      await page.getByLabel('User id or name').fill(`greta ${tag}`);
      await page.getByRole('button', { name: 'Search' }).click();
      await page.getByRole('table', { name: 'Users found' }).getByRole('link', { name: `Greta ${tag}` }).click();
      await page.getByRole('heading', { name: `Greta ${tag}` }).waitFor();
      await page.getByText('online', { exact: true }).waitFor();
      await page.getByRole('table', { name: 'Threads of the user' }).getByRole('link', { name: thread.title }).waitFor();
      await page.getByLabel('Reason shown to the user').fill('account under review');
      await page.getByLabel('Internal note (never shown to the user)').fill('sent payment details in chat, ticket 42');
      await page.getByRole('button', { name: 'Block' }).click();
      await page.getByText('Blocked. The user is told “you are blocked: account under review”.').waitFor();
      await page.getByText(/^By admin-[0-9a-f]+ on .*: sent payment details in chat, ticket 42$/).waitFor();
      await shot(page, 'user');
      // The thread is under audit, so the refused attempt shows in its trail.
      await request(server, 'PUT', `/admin/threads/${encodeURIComponent(thread.id)}/audit`, { body: {} });
      const refused = await f.ack('chat:send-message', { threadId: thread.id, body: 'are you there?', clientMessageId: `c-${tag}` });
      assert.equal(refused.error?.code, 'forbidden', JSON.stringify(refused));
      assert.equal(refused.error.message, 'you are blocked: account under review', 'the user sees the reason, never the note');
      await eventually(async () => (await auditTrail(server, thread.id)).some((e) => e.kind === 'access_denied' && e.actorId === freelancer.id), { what: 'the refused attempt in the trail' });
      await page.getByRole('button', { name: 'Unblock' }).click();
      await page.getByText('Not blocked.').waitFor();
      const sent = await f.ack('chat:send-message', { threadId: thread.id, body: 'are you there?', clientMessageId: `c2-${tag}` });
      assert.equal(sent.ok, true, JSON.stringify(sent));
      assertClean(page);
    } finally {
      await context.close();
      await closeAll(f);
    }
  });
});

describe('plugins', () => {
  // A copy of blocklist under a name of its own: what the console changes
  // (config, enabled) is stored, and the MariaDB table of plugins is shared by
  // every server the suite starts; deleted in `finally`.
  it('an entry written in the console blocks a live socket; live calls and verdicts show; the config is saved; disabling switches the verdict within 2 s; a broken upload is refused with its reason', async () => {
    const name = uniquePluginName('console-blocklist');
    const { text } = editManifest('blocklist', { name });
    assert.equal((await uploadPlugin(server, name, text, builtPlugin('blocklist').wasm)).status, 200);
    const { freelancer, thread } = await cast(server);
    const f = await onlineIn(server, freelancer, thread.id);
    const context = await browser.newContext();
    const page = await newPage(context);
    try {
      await signIn(page, adminToken());
      await page.getByRole('navigation', { name: 'Console pages' }).getByRole('link', { name: 'Plugins' }).click();
      const card = page.getByRole('article', { name: `Plugin ${name}` });
      await card.getByText('enabled', { exact: true }).waitFor();
      // A key-value entry written in the console blocks the user on their live socket.
      await card.getByText('Config and key-value entries').click();
      await card.getByLabel(`${name} key`, { exact: true }).fill(`blocked:${freelancer.id}`);
      await card.getByLabel(`${name} value`).fill('under review');
      await card.getByRole('button', { name: `Write ${name} entry` }).click();
      await card.getByText('written').waitFor();
      const blocked = await f.ack('chat:history', { threadId: thread.id, limit: 1 });
      assert.equal(blocked.error?.code, 'forbidden', JSON.stringify(blocked));
      assert.match(blocked.error.message, /under review/);
      await card.getByLabel(`${name} value`).fill('');
      await card.getByRole('button', { name: `Read ${name} entry` }).click();
      await card.getByText('no expiry').waitFor();
      assert.equal(await card.getByLabel(`${name} value`).inputValue(), 'under review');
      // Browsing by prefix lists the entries with their expiry; a listed key opens in the editor.
      await kvSet(server, name, `blocked:later-${freelancer.id}`, 'for an hour', 3_600_000);
      await kvSet(server, name, `note:${freelancer.id}`, 'not a block');
      await card.getByLabel(`${name} key prefix`).fill('blocked:');
      await card.getByRole('button', { name: `List ${name} entries` }).click();
      const entries = card.getByRole('table', { name: `${name} entries` });
      await entries.getByRole('row').nth(2).waitFor();
      assert.deepEqual(await entries.getByRole('row').allInnerTexts().then((rows) => rows.slice(1).map((r) => r.split('\t')[0].trim())),
        [`blocked:${freelancer.id}`, `blocked:later-${freelancer.id}`].sort(), 'the two blocks, sorted, not the note');
      await entries.getByRole('row', { name: /for an hour/ }).getByText(/^expires in 3[56]\d\d s$/).waitFor();
      await card.getByRole('button', { name: `Edit ${name} entry blocked:later-${freelancer.id}` }).click();
      assert.equal(await card.getByLabel(`${name} value`).inputValue(), 'for an hour');
      assert.equal(await card.getByLabel(`${name} key`, { exact: true }).inputValue(), `blocked:later-${freelancer.id}`);
      // Live figures: the denial above is a call and an access:deny verdict.
      await card.getByText(/access:deny [1-9]/).waitFor({ timeout: LIVE_MS });
      await card.getByText(/^≤ [\d.]+ ms$/).first().waitFor({ timeout: LIVE_MS });
      await shot(page, 'plugins');
      // The config, edited and saved, is the plugin's.
      await card.getByLabel(`${name} config (key = value per line)`).fill('exempt-admins = true\nnote = console');
      await card.getByRole('button', { name: `Save ${name} config` }).click();
      await eventually(async () => (await request(server, 'GET', '/admin/plugins')).json.find((p) => p.name === name)?.config?.note === 'console', { what: 'the saved config' });
      const started = performance.now();
      await page.getByRole('button', { name: `Disable ${name}` }).click();
      await card.getByText('disabled', { exact: true }).waitFor();
      let ack;
      do {
        ack = await f.ack('chat:history', { threadId: thread.id, limit: 1 });
      } while (!ack.ok && performance.now() - started < SWITCH_MS);
      assert.equal(ack.ok, true, `the verdict switched within ${SWITCH_MS} ms: ${JSON.stringify(ack)}`);

      const upload = page.getByRole('form', { name: 'Upload a plugin version' });
      await upload.getByLabel('Plugin name').fill(name);
      await upload.getByLabel('Manifest (.toml)').setInputFiles({ name: `${name}.toml`, mimeType: 'text/plain', buffer: Buffer.from(text) });
      await upload.getByLabel('Component (.wasm)').setInputFiles({ name: `${name}.wasm`, mimeType: 'application/wasm', buffer: randomBytes(4096) });
      await upload.getByRole('button', { name: 'Upload' }).click();
      await upload.getByRole('alert').filter({ hasText: /^Refused: / }).waitFor();
      assertClean(page);
    } finally {
      await context.close();
      await closeAll(f);
      await removePlugin(server, name);
    }
  });
});

describe('plugin decisions in the dispute view', () => {
  // A copy of contact-filter under a name of its own (see above), first masking,
  // then refusing; deleted in `finally`.
  it('a message a plugin rewrote is marked with the plugin and version; a send it refused is listed with its reason', async () => {
    const name = uniquePluginName('console-filter');
    const REASON = 'console e2e: contact details stay on the platform';
    const mask = editManifest('contact-filter', { name, config: { reject: 'false' } });
    const { wasm } = builtPlugin('contact-filter');
    assert.equal((await uploadPlugin(server, name, mask.text, wasm)).status, 200);
    const { client, thread } = await cast(server);
    const c = await onlineIn(server, client, thread.id);
    const context = await browser.newContext();
    const page = await newPage(context);
    try {
      const masked = await c.send(thread.id, 'write to jd@example.com');
      assert.ok(!masked.body.includes('jd@example.com'), masked.body);
      const reject = editManifest('contact-filter', { name, config: { reject: 'true', 'reject-reason': REASON } });
      assert.equal((await uploadPlugin(server, name, reject.text, wasm)).status, 200);
      await waitForVersion(server, name, reject.version);
      const refused = await c.fails('chat:send-message', { threadId: thread.id, body: 'or jd@example.org', clientMessageId: newClientMessageId() }, 'rejected');
      assert.ok(refused.message.includes(REASON), refused.message);

      await signIn(page, adminToken());
      await page.evaluate((id) => { location.hash = `#/threads/${encodeURIComponent(id)}`; }, thread.id);
      const message = page.getByRole('list', { name: 'Messages' }).locator(`li[data-message-id="${masked.id}"]`);
      await message.getByText(`Rewritten by ${name} ${mask.version}`).waitFor();
      const table = page.getByRole('table', { name: 'Refused sends' });
      await table.getByRole('cell', { name: refused.message, exact: true }).waitFor();
      await table.getByRole('cell', { name: `${name} ${reject.version}`, exact: true }).waitFor();
      await table.getByRole('cell', { name: client.displayName, exact: true }).waitFor();
      assert.equal(await page.getByText('Rewritten by').count(), 1, 'only the rewritten message is marked');
      await shot(page, 'decisions');
      assertClean(page);
    } finally {
      await context.close();
      await closeAll(c);
      await removePlugin(server, name);
    }
  });
});

describe('navigation', () => {
  it('a page still loading when the admin moves on does not replace the next one', async () => {
    const context = await browser.newContext();
    const page = await newPage(context);
    try {
      // The thread search after sign-in is held until the dashboard shows.
      let release;
      const held = new Promise((resolve) => { release = resolve; });
      let searched;
      const searching = new Promise((resolve) => { searched = resolve; });
      await page.route((url) => url.pathname === '/admin/threads', async (route) => {
        searched();
        await held;
        await route.continue();
      });
      await signIn(page, adminToken());
      await searching;
      await page.getByRole('navigation', { name: 'Console pages' }).getByRole('link', { name: 'Dashboard' }).click();
      await page.getByLabel('Database', { exact: true }).filter({ hasText: 'up' }).waitFor();
      release();
      await page.waitForResponse((r) => new URL(r.url()).pathname === '/admin/threads');
      // The late search answer changes nothing: the dashboard stays, and keeps updating.
      const stamp = await page.getByText(/^Updated /).textContent();
      await page.getByText(/^Updated /).filter({ hasNotText: stamp }).waitFor({ timeout: LIVE_MS });
      assert.equal(await page.getByRole('heading', { name: 'Threads' }).count(), 0, 'the threads page did not come back');
      assertClean(page);
    } finally {
      await context.close();
    }
  });
});

describe('the live dashboard', () => {
  it('pushes sockets, message rate, send latency, health and the instances every second', async () => {
    const { client, freelancer, thread } = await cast(server);
    const context = await browser.newContext();
    const page = await newPage(context);
    const sockets = [];
    try {
      const once = await request(server, 'GET', '/admin/overview');
      assert.equal(once.status, 200);
      assert.equal(once.json.databaseUp, true);
      assert.equal(once.json.stateUp, true);
      assert.ok(once.json.instances.length >= 1, JSON.stringify(once.json));
      await signIn(page, adminToken());
      await page.getByRole('navigation', { name: 'Console pages' }).getByRole('link', { name: 'Dashboard' }).click();
      const tile = (name) => page.getByLabel(name, { exact: true });
      await tile('Database').filter({ hasText: 'up' }).waitFor({ timeout: 2 * LIVE_MS }).catch(async (e) => {
        const main = (await page.content()).match(/<main.*<\/main>/s)?.[0];
        throw new Error(`${e.message}\nthe server's overview: ${JSON.stringify((await request(server, 'GET', '/admin/overview')).json)}\nthe page: ${main}`);
      });
      await tile('State store').filter({ hasText: 'up' }).waitFor();
      sockets.push(await onlineIn(server, client, thread.id), await online(server, freelancer));
      // The tile follows the server's own count (earlier tests' sockets may still be closing).
      await eventually(async () => {
        const shown = Number(await tile('Sockets on this instance').textContent());
        return shown >= 2 && shown === (await request(server, 'GET', '/admin/overview')).json.sockets;
      }, { timeout: LIVE_MS, what: 'the sockets tile shows the two sockets' });
      for (let i = 0; i < 5; i++) await sockets[0].send(thread.id, `load ${i}`);
      await tile('Messages per second').filter({ hasText: /^(0\.[1-9]|[1-9])/ }).waitFor({ timeout: LIVE_MS });
      await tile('Send ack p50').filter({ hasText: /^≤ [\d.]+ ms$/ }).waitFor({ timeout: LIVE_MS });
      await page.getByRole('table', { name: 'Live instances' }).getByRole('row').nth(1).waitFor();
      await shot(page, 'dashboard');
      assertClean(page);
    } finally {
      await context.close();
      await closeAll(...sockets);
    }
  });
});

describe('the demo chat', () => {
  it('two browser windows chat: messages, typing and read receipts reach the other side', async () => {
    const tag = randomBytes(3).toString('hex');
    const alice = `Alice ${tag}`;
    const bob = `Bob ${tag}`;
    const ctxA = await browser.newContext();
    const ctxB = await browser.newContext();
    const a = await newPage(ctxA);
    const b = await newPage(ctxB);
    try {
      for (const [page, name, role] of [[a, alice, 'client'], [b, bob, 'freelancer']]) {
        await page.goto(`${server.url}/`);
        await page.getByLabel('Your name').fill(name);
        await page.getByLabel('You are a').selectOption(role);
        await page.getByRole('button', { name: 'Join' }).click();
        await page.getByLabel('Their name').waitFor();
      }
      await a.getByLabel('Their name').fill(bob);
      await a.getByRole('button', { name: 'Open chat' }).click();
      await b.getByLabel('Their name').fill(alice);
      await b.getByRole('button', { name: 'Open chat' }).click();
      await a.getByText(`${bob}: online`).waitFor({ timeout: LIVE_MS });

      await a.getByRole('textbox', { name: 'Message' }).pressSequentially('hello Bob');
      await b.getByText(`${alice} is typing…`).waitFor({ timeout: LIVE_MS });
      await a.getByRole('button', { name: 'Send' }).click();
      await b.getByRole('list', { name: 'Messages' }).getByText('hello Bob').waitFor({ timeout: LIVE_MS });
      await a.getByText(`Read by ${bob}`).waitFor({ timeout: LIVE_MS });
      await b.getByRole('textbox', { name: 'Message' }).fill('hi Alice');
      await b.getByRole('button', { name: 'Send' }).click();
      await a.getByRole('list', { name: 'Messages' }).getByText('hi Alice').waitFor({ timeout: LIVE_MS });
      await shot(a, 'demo');
      assertClean(a);
      assertClean(b);
    } finally {
      await ctxA.close();
      await ctxB.close();
    }
  });
});
