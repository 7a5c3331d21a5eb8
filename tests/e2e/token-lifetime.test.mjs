// A token's lifetime holds on a live socket: `chat:ready` tells when it expires,
// the socket is closed with `chat:closing { reason: "token_expired" }` when it
// does, unless the client sent a fresh token with `chat:refresh-token` before.
// Optional `iss`/`aud` checks apply to sockets and to the admin HTTP API.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { closeAll, connectError } from './lib/client.mjs';
import { cast, online, rid } from './lib/fixtures.mjs';
import { assertHttpError, request } from './lib/http.mjs';
import { startServer } from './lib/server.mjs';
import { mintToken } from './lib/tokens.mjs';

const nowSec = () => Math.floor(Date.now() / 1000);
/** The server's clock leeway on `exp`, in seconds. */
const LEEWAY_S = 2;

describe('token lifetime on a live socket', () => {
  let server;
  before(async () => {
    server = await startServer({ label: 'token-lifetime' });
  });
  after(async () => {
    await server?.stop();
  });

  it('a socket whose token expires gets chat:closing token_expired, then is disconnected', async () => {
    const { client, thread } = await cast(server);
    const exp = nowSec() + 2;
    const c = await online(server, { ...client, token: mintToken(server.jwtSecret, client.id, 'client', { exp }) });
    assert.equal(Date.parse(c.ready.tokenExpiresAt), exp * 1000, 'chat:ready says when the token expires');
    await c.ok('chat:history', { threadId: thread.id });
    const closing = await c.next('chat:closing', { timeout: (2 + LEEWAY_S + 3) * 1000 });
    assert.equal(closing.reason, 'token_expired');
    assert.ok(Date.now() >= exp * 1000, 'not before the token expired');
    await c.next('disconnect', { where: (d) => d.reason === 'io server disconnect' });
  });

  it('chat:refresh-token with a fresh token of the same user keeps the socket', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await online(server, { ...client, token: mintToken(server.jwtSecret, client.id, 'client', { exp: nowSec() + 2 }) });
    const f = await online(server, freelancer);
    const later = nowSec() + 3600;
    const res = await c.ok('chat:refresh-token', { token: mintToken(server.jwtSecret, client.id, 'client', { exp: later }) });
    assert.equal(Date.parse(res.expiresAt), later * 1000);
    // Past the first token's expiry (and the leeway), the socket still works.
    const sent = await c.send(thread.id, 'one');
    await f.nextMessage(sent.id);
    await c.expectNone('chat:closing', { ms: (2 + LEEWAY_S + 1) * 1000, why: 'the token was refreshed' });
    const after = await c.send(thread.id, 'still here');
    await f.nextMessage(after.id);
    await closeAll(c, f);
  });

  it('a refresh with another user\'s, another role\'s or a bad token is refused and changes nothing', async () => {
    const { client } = await cast(server);
    const c = await online(server, client);
    const other = await c.fails('chat:refresh-token', { token: mintToken(server.jwtSecret, rid('u'), 'client') }, 'unauthorized');
    assert.match(other.message, /another user or role/);
    await c.fails('chat:refresh-token', { token: mintToken(server.jwtSecret, client.id, 'admin') }, 'unauthorized');
    const bad = await c.fails('chat:refresh-token', { token: 'garbage' }, 'unauthorized');
    assert.equal(bad.message, 'invalid token');
    const expired = await c.fails('chat:refresh-token', { token: mintToken(server.jwtSecret, client.id, 'client', { exp: nowSec() - 60 }) }, 'unauthorized');
    assert.equal(expired.message, 'token expired');
    await c.fails('chat:refresh-token', {}, 'invalid_payload');
    assert.equal(c.connected, true);
    await closeAll(c);
  });
});

describe('issuer and audience, when configured', () => {
  let server;
  const iss = 'https://id.example';
  const aud = 'chat-host';
  before(async () => {
    server = await startServer({ label: 'iss-aud', env: { CHAT_JWT_ISSUER: iss, CHAT_JWT_AUDIENCE: aud } });
  });
  after(async () => {
    await server?.stop();
  });

  it('sockets and the admin API need both claims', async () => {
    const id = rid('u');
    const good = mintToken(server.jwtSecret, id, 'admin', { iss, aud });
    const c = await online(server, { id, token: good });
    assert.equal(c.ready.userId, id);
    await closeAll(c);
    for (const claims of [{}, { iss }, { aud }, { iss: 'https://evil.example', aud }, { iss, aud: 'other' }]) {
      const err = await connectError(server, { token: mintToken(server.jwtSecret, id, 'admin', claims) });
      assert.equal(err.message, 'unauthorized', JSON.stringify(claims));
      assertHttpError(await request(server, 'GET', '/admin/plugins', { token: mintToken(server.jwtSecret, id, 'admin', claims) }), 401, 'unauthorized');
    }
    const res = await request(server, 'GET', '/admin/plugins', { token: good });
    assert.equal(res.status, 200);
  });
});
