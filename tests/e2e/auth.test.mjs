// Handshake authentication: a valid JWT gets chat:ready; every broken token gets
// connect_error "unauthorized" and nothing else.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { closeAll, connect, connectError } from './lib/client.mjs';
import { assertTimestamp, rid } from './lib/fixtures.mjs';
import { startServer } from './lib/server.mjs';
import { algNoneToken, expiredToken, issuedLaterToken, mintToken, noExpToken, notYetValidToken, signRaw, tamperedToken, wrongSignatureToken } from './lib/tokens.mjs';

describe('handshake authentication', () => {
  let server;
  before(async () => {
    server = await startServer({ label: 'auth' });
  });
  after(async () => {
    await server?.stop();
  });

  for (const role of ['client', 'freelancer', 'admin']) {
    it(`a valid ${role} token connects and gets chat:ready { userId, role, serverTime }`, async () => {
      const id = rid('u');
      const c = await connect(server, mintToken(server.jwtSecret, id, role, { name: 'Ada' }));
      try {
        assert.equal(c.ready.userId, id);
        assert.equal(c.ready.role, role);
        assertTimestamp(c.ready.serverTime, 'serverTime');
        assert.ok(c.connected);
      } finally {
        await c.close();
      }
    });
  }

  it('a token without the optional name claim is accepted', async () => {
    const id = rid('u');
    const c = await connect(server, signRaw(server.jwtSecret, { sub: id, role: 'client', exp: Math.floor(Date.now() / 1000) + 600 }));
    try {
      assert.equal(c.ready.userId, id);
    } finally {
      await c.close();
    }
  });

  it('a user id of exactly 64 characters is accepted', async () => {
    const id = rid('u').padEnd(64, 'a');
      assert.equal(id.length, 64);
    const c = await connect(server, mintToken(server.jwtSecret, id, 'client'));
    try {
      assert.equal(c.ready.userId, id);
    } finally {
      await c.close();
    }
  });

  const refused = [
    ['no auth object at all', () => undefined],
    ['an auth object without token', () => ({})],
    ['a token that is not a string', () => ({ token: 42 })],
    ['an empty token', () => ({ token: '' })],
    ['a malformed token (not a JWT)', () => ({ token: 'not-a-jwt' })],
    ['a malformed token (three garbage parts)', () => ({ token: 'abc.def.ghi' })],
    ['a token signed with another secret', () => ({ token: wrongSignatureToken(rid('u')) })],
    ['a token whose payload was altered after signing', (s) => ({ token: tamperedToken(s.jwtSecret, rid('u')) })],
    ['an unsigned alg:none token', () => ({ token: algNoneToken(rid('u'), 'admin') })],
    ['an expired token', (s) => ({ token: expiredToken(s.jwtSecret, rid('u')) })],
    ['a token without exp', (s) => ({ token: noExpToken(s.jwtSecret, rid('u')) })],
    ['a token not valid yet (nbf an hour ahead)', (s) => ({ token: notYetValidToken(s.jwtSecret, rid('u')) })],
    ['a token issued in the future (iat a year ahead)', (s) => ({ token: issuedLaterToken(s.jwtSecret, rid('u')) })],
    ['a token with an unknown role', (s) => ({ token: mintToken(s.jwtSecret, rid('u'), 'superuser') })],
    ['a token without role', (s) => ({ token: signRaw(s.jwtSecret, { sub: rid('u'), exp: Math.floor(Date.now() / 1000) + 600 }) })],
    ['a token whose sub has forbidden characters', (s) => ({ token: mintToken(s.jwtSecret, 'bad id!', 'client') })],
    ['a token whose sub is 65 characters', (s) => ({ token: mintToken(s.jwtSecret, 'a'.repeat(65), 'client') })],
    ['a token with an empty sub', (s) => ({ token: mintToken(s.jwtSecret, '', 'client') })],
    ['a token without sub', (s) => ({ token: signRaw(s.jwtSecret, { role: 'client', exp: Math.floor(Date.now() / 1000) + 600 }) })],
  ];
  for (const [what, auth] of refused) {
    it(`refuses ${what} with connect_error "unauthorized"`, async () => {
      const err = await connectError(server, auth(server));
      assert.equal(err.message, 'unauthorized');
    });
  }

  it('the client only learns "unauthorized"; the operator sees why, per reason, in /metrics', async () => {
    const cases = [
      ['missing', undefined],
      ['expired', { token: expiredToken(server.jwtSecret, rid('u')) }],
      ['not_yet_valid', { token: notYetValidToken(server.jwtSecret, rid('u')) }],
      ['invalid', { token: wrongSignatureToken(rid('u')) }],
      ['missing_claim', { token: noExpToken(server.jwtSecret, rid('u')) }],
      ['subject', { token: mintToken(server.jwtSecret, 'bad id!', 'client') }],
      ['role', { token: mintToken(server.jwtSecret, rid('u'), 'superuser') }],
    ];
    const count = async (reason) => {
      const text = await (await fetch(new URL('/metrics', server.url))).text();
      const line = text.split('\n').find((l) => l.startsWith(`chat_handshakes_refused_total{reason="${reason}"}`));
      return line ? Number(line.split(' ').pop()) : 0;
    };
    for (const [reason, auth] of cases) {
      const before = await count(reason);
      const err = await connectError(server, auth);
      assert.equal(err.message, 'unauthorized', reason);
      assert.equal(await count(reason), before + 1, `chat_handshakes_refused_total{reason="${reason}"}`);
    }
  });

  it('refuses a bad token over HTTP long-polling too', async () => {
    const err = await connectError(server, { token: wrongSignatureToken(rid('u')) }, { transports: ['polling'] });
    assert.equal(err.message, 'unauthorized');
  });

  it('accepts a valid token over HTTP long-polling', async () => {
    const id = rid('u');
    const c = await connect(server, mintToken(server.jwtSecret, id, 'freelancer'), { transports: ['polling'] });
    try {
      assert.equal(c.ready.userId, id);
      assert.equal(c.ready.role, 'freelancer');
      assert.equal(c.socket.io.engine.transport.name, 'polling');
    } finally {
      await c.close();
    }
  });

  it('a refused handshake does not disturb the other sockets of the server', async () => {
    const id = rid('u');
    const c = await connect(server, mintToken(server.jwtSecret, id, 'client'));
    try {
      const err = await connectError(server, { token: algNoneToken(id) });
      assert.equal(err.message, 'unauthorized');
      const again = await connect(server, mintToken(server.jwtSecret, id, 'client'));
      await closeAll(again);
      assert.ok(c.connected);
    } finally {
      await c.close();
    }
  });
});
