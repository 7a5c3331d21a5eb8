// CORS (CHAT_CORS_ORIGINS): a browser app on an allowed origin can use the HTTP
// API and the Socket.IO long-polling transport (with credentials); any other
// origin gets no CORS headers, so the browser keeps the answers from the page.
// Driven as a browser would: preflights, and polling requests carrying `Origin`.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { hostBinary } from './lib/config.mjs';
import { rid } from './lib/fixtures.mjs';
import { request } from './lib/http.mjs';
import { startServer } from './lib/server.mjs';
import { mintToken } from './lib/tokens.mjs';

const APP = 'https://app.example';
const OTHER = 'https://evil.example';
const POLLING = '/socket.io/?EIO=4&transport=polling';

/** A request from a page on `origin`, without the test helper's default bearer token. */
function fromPage(server, method, path, origin, { headers = {}, ...opts } = {}) {
  return request(server, method, path, { token: null, ...opts, headers: { origin, ...headers } });
}

/** A browser's preflight for `method` with `requestHeaders` from `origin`. */
function preflight(server, path, origin, method, requestHeaders) {
  const headers = { 'access-control-request-method': method };
  if (requestHeaders) headers['access-control-request-headers'] = requestHeaders;
  return fromPage(server, 'OPTIONS', path, origin, { headers });
}

/** Asserts the answer lets a page on `origin` read it, credentials included. */
function assertAllowed(res, origin, what) {
  assert.equal(res.headers.get('access-control-allow-origin'), origin, `${what}: allow-origin (status ${res.status})`);
  assert.equal(res.headers.get('access-control-allow-credentials'), 'true', `${what}: allow-credentials`);
  assert.match(res.headers.get('vary') ?? '', /origin/i, `${what}: Vary names Origin (caches keep answers per origin)`);
}

/** Asserts the answer carries no CORS permission at all. */
function assertRefused(res, what) {
  assert.equal(res.headers.get('access-control-allow-origin'), null, `${what}: no allow-origin`);
  assert.equal(res.headers.get('access-control-allow-credentials'), null, `${what}: no allow-credentials`);
}

/**
 * A Socket.IO connection over raw long-polling from `origin`, as socket.io-client
 * does it in a browser: the engine.io handshake (GET), the Socket.IO connect with
 * the token (POST), then the server's answer (GET). Returns every response.
 */
async function pollingConnect(server, origin, token) {
  const open = await fromPage(server, 'GET', POLLING, origin);
  assert.equal(open.status, 200, `engine.io handshake: ${open.text}`);
  const { sid } = JSON.parse(open.text.slice(1));
  const connect = await fromPage(server, 'POST', `${POLLING}&sid=${sid}`, origin, {
    rawBody: `40${JSON.stringify({ token })}`,
    headers: { 'content-type': 'text/plain;charset=UTF-8' },
  });
  assert.equal(connect.status, 200, `connect packet: ${connect.text}`);
  // Poll until the server's `chat:ready` arrives (engine.io packets are
  // separated by 0x1e; a ping may come first).
  const packets = [];
  let answer;
  for (let i = 0; i < 5 && !packets.some((p) => p.startsWith('42["chat:ready"')); i++) {
    answer = await fromPage(server, 'GET', `${POLLING}&sid=${sid}`, origin);
    assert.equal(answer.status, 200, `poll: ${answer.text}`);
    packets.push(...answer.text.split('\x1e'));
  }
  return { open, connect, answer, packets };
}

describe('CORS with CHAT_CORS_ORIGINS set', () => {
  let server;
  before(async () => {
    server = await startServer({ label: 'cors', env: { CHAT_CORS_ORIGINS: `${APP}, https://admin.example:8443` } });
  });
  after(async () => {
    await server?.stop();
  });

  it('the long-polling transport works from an allowed origin: handshake, connect and poll all carry the allow headers', async () => {
    const id = rid('u');
    const { open, connect, answer, packets } = await pollingConnect(server, APP, mintToken(server.jwtSecret, id, 'client'));
    for (const [what, res] of [['handshake GET', open], ['connect POST', connect], ['poll GET', answer]]) assertAllowed(res, APP, what);
    assert.ok(packets.some((p) => p.startsWith('40{"sid":')), `the Socket.IO connect was accepted: ${packets}`);
    const ready = JSON.parse(packets.find((p) => p.startsWith('42["chat:ready"')).slice(2));
    assert.equal(ready[1].userId, id, 'chat:ready reached the page over polling');
  });

  it('a preflight of the polling transport from an allowed origin is answered with the method and headers asked for', async () => {
    const res = await preflight(server, POLLING, APP, 'POST', 'content-type,x-requested-with');
    assert.ok(res.status >= 200 && res.status < 300, `preflight status ${res.status}`);
    assertAllowed(res, APP, 'preflight');
    assert.match(res.headers.get('access-control-allow-methods') ?? '', /POST/);
    assert.match(res.headers.get('access-control-allow-headers') ?? '', /content-type/i);
    assert.match(res.headers.get('access-control-allow-headers') ?? '', /x-requested-with/i);
  });

  it('the HTTP API from an allowed origin: the preflight passes before the bearer gate, the call is readable', async () => {
    const origin = 'https://admin.example:8443';
    const pre = await preflight(server, `/api/users/${rid('u')}`, origin, 'PUT', 'authorization,content-type');
    assert.ok(pre.status >= 200 && pre.status < 300, `a preflight carries no token and must not be 401: ${pre.status} ${pre.text}`);
    assertAllowed(pre, origin, 'API preflight');
    assert.match(pre.headers.get('access-control-allow-methods') ?? '', /PUT/);
    assert.match(pre.headers.get('access-control-allow-headers') ?? '', /authorization/i);
    const put = await fromPage(server, 'PUT', `/api/users/${rid('u')}`, origin, {
      token: server.serviceToken,
      body: { displayName: 'From a page', role: 'client' },
    });
    assert.equal(put.status, 200, put.text);
    assertAllowed(put, origin, 'API PUT');
    // An error answer is readable too, so the page can show what went wrong.
    const denied = await fromPage(server, 'GET', '/admin/plugins', origin);
    assert.equal(denied.status, 401);
    assertAllowed(denied, origin, 'API 401');
  });

  it('another origin gets no CORS headers on the polling transport, its preflight or the API', async () => {
    const { open, connect, answer } = await pollingConnect(server, OTHER, mintToken(server.jwtSecret, rid('u'), 'client'));
    for (const [what, res] of [['handshake GET', open], ['connect POST', connect], ['poll GET', answer]]) assertRefused(res, what);
    assertRefused(await preflight(server, POLLING, OTHER, 'POST', 'content-type'), 'polling preflight');
    assertRefused(await preflight(server, '/api/threads', OTHER, 'POST', 'authorization,content-type'), 'API preflight');
    assertRefused(await fromPage(server, 'GET', '/admin/plugins', OTHER, { token: server.serviceToken }), 'API GET');
    // Near misses of an allowed origin are other origins.
    for (const near of ['http://app.example', 'https://app.example:444', 'https://app.example.evil.example', 'null']) {
      assertRefused(await fromPage(server, 'GET', POLLING, near), near);
    }
  });
});

describe('CORS defaults', () => {
  it('dev mode without CHAT_CORS_ORIGINS allows loopback origins on any port, and no other', async () => {
    const server = await startServer({ label: 'cors-dev' });
    try {
      for (const origin of ['http://localhost:5173', 'http://127.0.0.1:8080', 'http://[::1]:3000']) {
        assertAllowed(await fromPage(server, 'GET', POLLING, origin), origin, origin);
      }
      assertRefused(await fromPage(server, 'GET', POLLING, APP), APP);
    } finally {
      await server.stop();
    }
  });

  it('production without CHAT_CORS_ORIGINS allows no origin, loopback included', async () => {
    const server = await startServer({
      label: 'cors-prod',
      env: { CHAT_ENV: 'production', CHAT_AUDIT_KEY: `e2e-audit-${rid('k')}-0123456789abcdef0123456789abcdef` },
    });
    try {
      for (const origin of ['http://localhost:5173', APP]) {
        assertRefused(await fromPage(server, 'GET', POLLING, origin), `polling from ${origin}`);
        assertRefused(await preflight(server, '/api/threads', origin, 'POST', 'authorization'), `API preflight from ${origin}`);
      }
    } finally {
      await server.stop();
    }
  });

  it('production refuses to start with CHAT_CORS_ORIGINS=* or a malformed origin, naming the setting', () => {
    for (const value of ['*', 'https://app.example/path']) {
      const dataDir = mkdtempSync(join(tmpdir(), 'chat-cors-'));
      try {
        const run = spawnSync(hostBinary(), [], {
          env: {
            PATH: process.env.PATH,
            CHAT_ENV: 'production',
            CHAT_LISTEN: '127.0.0.1:0',
            CHAT_DATA_DIR: dataDir,
            CHAT_JWT_SECRET: 'e2e-jwt-0123456789abcdef0123456789abcdef',
            CHAT_SERVICE_TOKEN: 'e2e-svc-0123456789abcdef0123456789abcdef',
            CHAT_AUDIT_KEY: 'e2e-audit-0123456789abcdef0123456789abcdef',
            CHAT_CORS_ORIGINS: value,
          },
          encoding: 'utf8',
          timeout: 30_000,
        });
        assert.notEqual(run.status, 0, `CHAT_CORS_ORIGINS=${value}: exited ${run.status}\n${run.stdout}`);
        assert.match(run.stderr, /CHAT_CORS_ORIGINS/, run.stderr);
        assert.doesNotMatch(run.stdout, /listening on/, 'it never served');
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    }
  });
});
