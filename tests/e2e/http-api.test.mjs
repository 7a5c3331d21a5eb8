// The service/admin HTTP API: bearer auth, profiles, threads, participants,
// dispute history with receipts, errors, and the operations endpoints.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { closeAll } from './lib/client.mjs';
import { DECIMAL_ID, assertMessage, assertTimestamp, cast, eventually, newThread, newUser, online, onlineIn, participant, rid, sendMany } from './lib/fixtures.mjs';
import { assertHttpError, assertOk, getMessages, postParticipant, postThread, request, upsertUser } from './lib/http.mjs';
import { startServer } from './lib/server.mjs';
import { algNoneToken, expiredToken, issuedLaterToken, mintToken, notYetValidToken, wrongSignatureToken } from './lib/tokens.mjs';

let server;
before(async () => {
  server = await startServer({ label: 'http-api' });
});
after(async () => {
  await server?.stop();
});

const ID_FORMAT = /^[A-Za-z0-9_.:-]{1,64}$/;

describe('HTTP API: bearer authentication', () => {
  /** One request per /api route, each well-formed, so only the credentials decide. */
  async function routes() {
    const { client, thread } = await cast(server);
    return [
      ['PUT /api/users/{id}', (opts) => upsertUser(server, rid('u'), { displayName: 'X', role: 'client' }, opts)],
      ['POST /api/threads', (opts) => postThread(server, { id: rid('t'), title: 'T', participantIds: [client.id] }, opts)],
      ['POST /api/threads/{id}/participants', (opts) => postParticipant(server, thread.id, client.id, opts)],
      ['GET /api/threads/{id}/messages', (opts) => getMessages(server, thread.id, {}, opts)],
    ];
  }

  it('without a token every /api route is 401 unauthorized, "a bearer token is required"', async () => {
    for (const [name, call] of await routes()) {
      const res = await call({ token: null });
      assert.equal(res.status, 401, `${name}: ${res.status} ${res.text}`);
      assert.equal(assertHttpError(res, 401, 'unauthorized').message, 'a bearer token is required', name);
    }
  });

  it('the gate holds for the whole /api and /admin prefixes: an unknown path is 401 without a token, 404 with one', async () => {
    for (const path of ['/admin', '/admin/', `/admin/nothing-${rid('x')}`, '/api/', `/api/nothing-${rid('x')}`, '/api/users']) {
      assertHttpError(await request(server, 'GET', path, { token: null }), 401, 'unauthorized');
      assertHttpError(await request(server, 'GET', path), 404, 'not_found');
    }
  });

  it('the Bearer scheme is case-insensitive (RFC 9110)', async () => {
    const res = await request(server, 'GET', '/admin/plugins', { authorization: `bearer ${server.serviceToken}` });
    assert.equal(res.status, 200, res.text);
  });

  it('a wrong service token, a non-Bearer scheme, a forged, expired, not yet valid or future-issued JWT are 401, saying what is wrong', async () => {
    const NOT_BEARER = 'the Authorization header must be `Bearer <token>`';
    const bad = [
      [{ token: 'not-the-service-token' }, 'invalid token'],
      [{ authorization: `Basic ${Buffer.from(`svc:${server.serviceToken}`).toString('base64')}` }, NOT_BEARER],
      [{ authorization: server.serviceToken }, NOT_BEARER],
      [{ authorization: 'Bearer ' }, NOT_BEARER],
      [{ token: wrongSignatureToken(rid('a'), 'admin') }, 'invalid token'],
      [{ token: algNoneToken(rid('a'), 'admin') }, 'invalid token'],
      [{ token: expiredToken(server.jwtSecret, rid('a'), 'admin') }, 'token expired'],
      // An expired forgery says nothing about its claims.
      [{ token: expiredToken('not-the-secret', rid('a'), 'admin') }, 'invalid token'],
      [{ token: notYetValidToken(server.jwtSecret, rid('a'), 'admin') }, 'token not valid yet'],
      [{ token: issuedLaterToken(server.jwtSecret, rid('a'), 'admin') }, 'token not valid yet'],
      [{ token: mintToken(server.jwtSecret, rid('a'), 'root') }, 'invalid token: unknown role'],
    ];
    for (const [name, call] of await routes()) {
      for (const [opts, message] of bad) {
        const res = await call(opts);
        const what = `${name} with ${JSON.stringify(opts).slice(0, 60)}`;
        assert.equal(res.status, 401, `${what}: ${res.status} ${res.text}`);
        assert.equal(assertHttpError(res, 401, 'unauthorized').message, message, what);
      }
    }
  });

  it('a valid non-admin JWT is 403 forbidden', async () => {
    for (const [, call] of await routes()) {
      for (const role of ['client', 'freelancer']) {
        assertHttpError(await call({ token: mintToken(server.jwtSecret, rid('u'), role) }), 403, 'forbidden');
      }
    }
  });

  it('an admin JWT works like the service token', async () => {
    const adminToken = mintToken(server.jwtSecret, rid('a'), 'admin');
    for (const [name, call] of await routes()) {
      const res = await call({ token: adminToken });
      assert.ok(res.status >= 200 && res.status < 300, `${name} with an admin JWT: ${res.status} ${res.text}`);
    }
  });
});

describe('HTTP API: users', () => {
  it('PUT /api/users/{id} creates a profile that chat:join shows, and updates it', async () => {
    const id = rid('u');
    const other = await newUser(server, { role: 'client' });
    assertOk(await upsertUser(server, id, { displayName: 'Freya', role: 'freelancer', avatarUrl: 'https://example.com/f.png' }), 'create');
    const thread = await newThread(server, [other.id, id]);
    const c = await online(server, other);
    try {
      let p = participant(await c.join(thread.id), id);
      assert.deepEqual([p.displayName, p.avatarUrl, p.role], ['Freya', 'https://example.com/f.png', 'freelancer']);
      assertOk(await upsertUser(server, id, { displayName: 'Freya Renamed', role: 'freelancer' }), 'update');
      p = participant(await c.join(thread.id), id);
      assert.equal(p.displayName, 'Freya Renamed', 'the new name shows on the next join');
    } finally {
      await c.close();
    }
  });

  it('an avatar URL must be https: (http: too in dev mode); script, data, relative and credentialed URLs are invalid_payload', async () => {
    for (const avatarUrl of ['https://cdn.example/a.png?s=64', 'http://localhost:8080/a.png']) {
      const res = await upsertUser(server, rid('u'), { displayName: 'A', role: 'client', avatarUrl });
      assert.equal(res.status, 200, `${avatarUrl}: ${res.text}`);
    }
    const refused = [
      'javascript:alert(document.domain)',
      'JAVASCRIPT:alert(1)',
      ' javascript:alert(1)',
      'java\tscript:alert(1)',
      'data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+',
      'vbscript:msgbox(1)',
      'file:///etc/passwd',
      '//cdn.example/a.png',
      '/a.png',
      'https://user:pw@cdn.example/a.png',
      'https://cdn.example/a b.png',
      `https://cdn.example/${'x'.repeat(2048)}`,
    ];
    for (const avatarUrl of refused) {
      const id = rid('u');
      const res = await upsertUser(server, id, { displayName: 'A', role: 'client', avatarUrl });
      const error = assertHttpError(res, 400, 'invalid_payload');
      assert.match(error.message, /^avatarUrl must be an http: or https: URL/, `${avatarUrl}: ${error.message}`);
    }
  });

  it('in production an http: avatar URL is invalid_payload too', async () => {
    const prod = await startServer({
      label: 'http-api-prod',
      env: { CHAT_ENV: 'production', CHAT_AUDIT_KEY: `e2e-audit-${rid('k')}-0123456789abcdef0123456789abcdef` },
    });
    try {
      const error = assertHttpError(
        await upsertUser(prod, rid('u'), { displayName: 'A', role: 'client', avatarUrl: 'http://cdn.example/a.png' }),
        400,
        'invalid_payload',
      );
      assert.match(error.message, /^avatarUrl must be an https: URL/);
      assertOk(await upsertUser(prod, rid('u'), { displayName: 'A', role: 'client', avatarUrl: 'https://cdn.example/a.png' }), 'https');
    } finally {
      await prod.stop();
    }
  });

  const invalid = [
    ['an unknown role', { displayName: 'X', role: 'superuser' }],
    ['no role', { displayName: 'X' }],
    ['no displayName', { role: 'client' }],
    ['an empty displayName', { displayName: '', role: 'client' }],
    ['a displayName that is not a string', { displayName: 7, role: 'client' }],
  ];
  for (const [what, body] of invalid) {
    it(`PUT /api/users/{id} with ${what} is invalid_payload`, async () => {
      const res = await request(server, 'PUT', `/api/users/${rid('u')}`, { body });
      assertHttpError(res, [400, 422], 'invalid_payload');
    });
  }

  it('PUT /api/users/{id} with a malformed id is invalid_payload', async () => {
    const res = await request(server, 'PUT', `/api/users/${encodeURIComponent('bad id!')}`, { body: { displayName: 'X', role: 'client' } });
    assertHttpError(res, [400, 422], 'invalid_payload');
    const long = await request(server, 'PUT', `/api/users/${'a'.repeat(65)}`, { body: { displayName: 'X', role: 'client' } });
    assertHttpError(long, [400, 422], 'invalid_payload');
  });

  it('a body that is not JSON is 400 invalid_payload', async () => {
    const res = await request(server, 'PUT', `/api/users/${rid('u')}`, { rawBody: '{"displayName": ', headers: { 'content-type': 'application/json' } });
    assertHttpError(res, 400, 'invalid_payload');
  });
});

describe('HTTP API: threads', () => {
  it('POST /api/threads with an id is 201 { id, title, participantIds, createdAt }', async () => {
    const a = await newUser(server, { role: 'client' });
    const b = await newUser(server, { role: 'freelancer' });
    const id = rid('t');
    const res = await postThread(server, { id, title: 'Website redesign', participantIds: [a.id, b.id] });
    assert.equal(res.status, 201, res.text);
    assert.equal(res.json.id, id);
    assert.equal(res.json.title, 'Website redesign');
    assert.deepEqual([...res.json.participantIds].sort(), [a.id, b.id].sort());
    assertTimestamp(res.json.createdAt, 'createdAt');
  });

  it('POST /api/threads without an id generates one in the id format, usable over Socket.IO', async () => {
    const a = await newUser(server, { role: 'client' });
    const b = await newUser(server, { role: 'freelancer' });
    const res = await postThread(server, { title: 'Generated', participantIds: [a.id, b.id] });
    assert.equal(res.status, 201, res.text);
    assert.match(res.json.id, ID_FORMAT);
    const again = await postThread(server, { title: 'Generated too', participantIds: [a.id, b.id] });
    assert.notEqual(again.json.id, res.json.id, 'generated ids differ');
    const c = await online(server, a);
    try {
      assert.equal((await c.join(res.json.id)).title, 'Generated');
    } finally {
      await c.close();
    }
  });

  it('an existing id is 409 conflict and the thread is unchanged', async () => {
    const a = await newUser(server, { role: 'client' });
    const b = await newUser(server, { role: 'freelancer' });
    const thread = await newThread(server, [a, b], { title: 'Original' });
    const res = await postThread(server, { id: thread.id, title: 'Hijack', participantIds: [a.id] });
    assertHttpError(res, 409, 'conflict');
    const c = await online(server, b);
    try {
      const t = await c.join(thread.id);
      assert.equal(t.title, 'Original');
      assert.equal(t.participants.length, 2);
    } finally {
      await c.close();
    }
  });

  it('unknown participant ids are 422 invalid_payload naming each of them, and nothing is created', async () => {
    const a = await newUser(server, { role: 'client' });
    const ghost1 = rid('ghost');
    const ghost2 = rid('ghost');
    const id = rid('t');
    const res = await postThread(server, { id, title: 'T', participantIds: [a.id, ghost1, ghost2] });
    const err = assertHttpError(res, 422, 'invalid_payload');
    assert.ok(err.message.includes(ghost1) && err.message.includes(ghost2), `message names both: ${err.message}`);
    assert.ok(!err.message.includes(a.id), `the known user is not named: ${err.message}`);
    assertHttpError(await getMessages(server, id), 404, 'not_found');
  });

  const invalid = [
    ['no title', (a) => ({ id: rid('t'), participantIds: [a.id] })],
    ['an empty title', (a) => ({ id: rid('t'), title: '', participantIds: [a.id] })],
    ['participantIds that is not an array', (a) => ({ id: rid('t'), title: 'T', participantIds: a.id })],
    ['no participantIds', () => ({ id: rid('t'), title: 'T' })],
    ['a malformed id', (a) => ({ id: 'bad id!', title: 'T', participantIds: [a.id] })],
    ['an id of 65 characters', (a) => ({ id: 'a'.repeat(65), title: 'T', participantIds: [a.id] })],
  ];
  for (const [what, body] of invalid) {
    it(`POST /api/threads with ${what} is invalid_payload`, async () => {
      const a = await newUser(server, { role: 'client' });
      assertHttpError(await postThread(server, body(a)), [400, 422], 'invalid_payload');
    });
  }

  it('POST /api/threads/{id}/participants adds a participant, who may then join and receives messages', async () => {
    const { client, freelancer, thread } = await cast(server);
    const newcomer = await newUser(server, { role: 'freelancer' });
    const n = await online(server, newcomer);
    const c = await online(server, client);
    try {
      // Before: not_found (this also warms any thread cache, which the add must not leave stale).
      await n.fails('chat:join', { threadId: thread.id }, 'not_found');
      assertOk(await postParticipant(server, thread.id, newcomer.id), 'add participant');
      const t = await n.join(thread.id);
      assert.deepEqual(t.participants.map((p) => p.userId).sort(), [client.id, freelancer.id, newcomer.id].sort());
      const m = await c.send(thread.id, 'welcome aboard');
      assert.deepEqual(await n.nextMessage(m.id), m);
      assertOk(await postParticipant(server, thread.id, newcomer.id), 'adding again is harmless');
      assert.equal((await c.join(thread.id)).participants.length, 3);
    } finally {
      await closeAll(n, c);
    }
  });

  it('adding to an unknown thread is 404 not_found; an unknown user is refused; a malformed user id is invalid_payload', async () => {
    const a = await newUser(server, { role: 'client' });
    const { thread } = await cast(server);
    assertHttpError(await postParticipant(server, rid('missing'), a.id), 404, 'not_found');
    const unknownUser = await postParticipant(server, thread.id, rid('ghost'));
    assert.ok([404, 422].includes(unknownUser.status), `unknown user: ${unknownUser.status} ${unknownUser.text}`);
    assert.ok(['not_found', 'invalid_payload'].includes(unknownUser.json?.error?.code), unknownUser.text);
    assertHttpError(await postParticipant(server, thread.id, 'bad id!'), [400, 422], 'invalid_payload');
    assertHttpError(await request(server, 'POST', `/api/threads/${thread.id}/participants`, { body: {} }), [400, 422], 'invalid_payload');
  });
});

describe('HTTP API: dispute history', () => {
  it('GET /api/threads/{id}/messages: every message with a receipt per participant', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await online(server, client);
    const f = await online(server, freelancer);
    try {
      const [m1, m2] = await sendMany(c, thread.id, 2);
      await f.nextMessage(m2.id);
      await f.ok('chat:read', { threadId: thread.id, messageId: m1.id });
      // deliveredAt follows the client's acknowledgement of each chat:message.
      const page = await eventually(async () => {
        const p = assertOk(await getMessages(server, thread.id));
        return p.messages.every((m) => m.receipts.find((r) => r.userId === freelancer.id)?.deliveredAt) && p;
      }, { what: 'both messages acknowledged by the freelancer' });
      assert.equal(page.hasMore, false);
      assert.deepEqual(page.messages.map((m) => m.id), [m1.id, m2.id]);
      for (const [i, sent] of [m1, m2].entries()) {
        const m = page.messages[i];
        const { receipts, ...message } = m;
        assertMessage(message, sent);
        assert.deepEqual(receipts.map((r) => r.userId).sort(), [client.id, freelancer.id].sort());
        for (const r of receipts) {
          for (const k of ['userId', 'deliveredAt', 'readAt']) assert.ok(k in r, `receipt has ${k}: ${JSON.stringify(r)}`);
        }
        const theirs = receipts.find((r) => r.userId === freelancer.id);
        assertTimestamp(theirs.deliveredAt, `deliveredAt of ${sent.id}`);
        if (i === 0) assertTimestamp(theirs.readAt, 'readAt of m1');
        else assert.equal(theirs.readAt, null, 'm2 is unread');
      }
    } finally {
      await closeAll(c, f);
    }
  });

  it('pages with beforeId and limit, oldest first', async () => {
    const { client, thread } = await cast(server);
    const c = await online(server, client);
    try {
      const sent = await sendMany(c, thread.id, 5);
      const p1 = assertOk(await getMessages(server, thread.id, { limit: 2 }));
      assert.deepEqual(p1.messages.map((m) => m.id), sent.slice(3).map((m) => m.id));
      assert.equal(p1.hasMore, true);
      const p2 = assertOk(await getMessages(server, thread.id, { limit: 2, beforeId: p1.messages[0].id }));
      assert.deepEqual(p2.messages.map((m) => m.id), sent.slice(1, 3).map((m) => m.id));
      const p3 = assertOk(await getMessages(server, thread.id, { limit: 2, beforeId: p2.messages[0].id }));
      assert.deepEqual(p3.messages.map((m) => m.id), [sent[0].id]);
      assert.equal(p3.hasMore, false);
      const capped = assertOk(await getMessages(server, thread.id, { limit: 1000 }));
      assert.equal(capped.messages.length, 5);
    } finally {
      await c.close();
    }
  });

  for (const [what, query] of [
    ['limit=0', { limit: 0 }],
    ['limit=-1', { limit: -1 }],
    ['limit=1.5', { limit: 1.5 }],
    ['limit=x', { limit: 'x' }],
    ['beforeId=abc', { beforeId: 'abc' }],
  ]) {
    it(`${what} is 400 invalid_payload`, async () => {
      const { thread } = await cast(server);
      assertHttpError(await getMessages(server, thread.id, query), 400, 'invalid_payload');
    });
  }

  it('an unknown thread is 404 not_found; a malformed thread id is invalid_payload', async () => {
    assertHttpError(await getMessages(server, rid('missing')), 404, 'not_found');
    assertHttpError(await getMessages(server, 'bad id!'), [400, 422], 'invalid_payload');
  });

  it('message ids are decimal strings in the HTTP history too', async () => {
    const { client, thread } = await cast(server);
    const c = await online(server, client);
    try {
      await c.send(thread.id, 'x');
      const page = assertOk(await getMessages(server, thread.id));
      assert.match(page.messages[0].id, DECIMAL_ID);
    } finally {
      await c.close();
    }
  });
});

describe('HTTP API: operations endpoints (no token)', () => {
  it('GET /healthz is 200', async () => {
    const res = await request(server, 'GET', '/healthz', { token: null });
    assert.equal(res.status, 200, res.text);
  });

  it('GET /readyz is 200 with both stores up', async () => {
    const res = await request(server, 'GET', '/readyz', { token: null });
    assert.equal(res.status, 200, res.text);
  });

  it('GET /metrics of a fresh instance has samples: build info, uptime, connected sockets', async () => {
    const fresh = await startServer({ label: 'http-api-fresh-metrics' });
    try {
      const res = await request(fresh, 'GET', '/metrics', { token: null });
      assert.equal(res.status, 200);
      assert.match(res.text, /^chat_build_info\{version="[^"]+"\} 1$/m, res.text);
      assert.match(res.text, /^chat_uptime_seconds \d+(\.\d+)?(e[-+]?\d+)?$/m, res.text);
      assert.match(res.text, /^chat_connections 0$/m, res.text);
    } finally {
      await fresh.stop();
    }
  });

  it('GET /metrics is Prometheus text with # TYPE lines', async () => {
    // Some traffic first, so counters exist.
    const { client, thread } = await cast(server);
    const c = await onlineIn(server, client, thread.id);
    await c.send(thread.id, 'count me');
    await c.close();
    const res = await request(server, 'GET', '/metrics', { token: null, headers: { accept: 'text/plain' } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    assert.match(res.text, /^# TYPE \S+ (counter|gauge|histogram|summary|untyped)$/m);
  });

  it('GET /openapi.json serves the OpenAPI document of the API', async () => {
    const res = await request(server, 'GET', '/openapi.json', { token: null });
    assert.equal(res.status, 200);
    assert.equal(typeof res.json?.openapi, 'string');
    assert.match(res.json.openapi, /^3\./);
    assert.ok(res.json.paths && '/api/threads' in res.json.paths, `paths: ${Object.keys(res.json.paths ?? {})}`);
  });

  it('an unknown route is 404', async () => {
    const res = await request(server, 'GET', `/api/nothing-here-${rid('x')}`);
    assert.equal(res.status, 404);
  });
});
