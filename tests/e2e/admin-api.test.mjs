// The admin console's read API: GET /admin/threads (participants, title, dates,
// cursor paging), /admin/threads/{id} (read marks, presence), /admin/users and
// /admin/users/{id}; 400, 404, 401 and 403; and a thread view on the event
// stream, by its caller (admin JWT, service token with or without
// X-Chat-Operator).
//
// Data is made through /api and Socket.IO. Names and titles start with a tag of
// the run (the MariaDB database is shared between runs), so searches only find
// this run's rows. The view's record is read where each backend shows it: the
// dispute-audit plugin (events hook) writes it to the thread's audit trail with
// its actor, on both backends; on mysql-redis the Redis stream chat:logs:events
// is read too. Needs the built plugins (scripts/build-plugins.sh).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import { closeAll } from './lib/client.mjs';
import { needsMysqlRedis } from './lib/config.mjs';
import { RFC3339_MS_UTC, assertTimestamp, eventually, newThread, newUser, online, rid } from './lib/fixtures.mjs';
import { assertHttpError, assertOk, request } from './lib/http.mjs';
import { PluginDir, auditTrail, kvSet } from './lib/plugins.mjs';
import { closeRedis, openRedis, streamEntries } from './lib/redis.mjs';
import { startServer } from './lib/server.mjs';
import { mintToken } from './lib/tokens.mjs';

let server;
let dir;
before(async () => {
  dir = new PluginDir({ 'dispute-audit': {} });
  server = await startServer({ label: 'admin-api', env: { CHAT_PLUGIN_DIR: dir.path } });
});
after(async () => {
  await server?.stop();
  dir?.remove();
});

/** A lowercase tag of this run: it starts names and title words, so searches find only this run's rows. */
const tagged = () => `z${randomBytes(5).toString('hex')}`;

/** `GET /admin/threads` with these filters (`participant` may be a list); the raw response. */
function searchThreads(filters, opts) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(filters)) for (const one of [v].flat()) q.append(k, String(one));
  return request(server, 'GET', `/admin/threads?${q}`, opts);
}

/** The ids of `GET /admin/threads`, asserted 200. */
async function foundIds(filters) {
  const page = assertOk(await searchThreads(filters), `GET /admin/threads ${JSON.stringify(filters)}`);
  return page.threads.map((t) => t.id);
}

const threadDetail = async (id, opts) => assertOk(await request(server, 'GET', `/admin/threads/${encodeURIComponent(id)}`, opts), `GET /admin/threads/${id}`);
const userDetail = async (id) => assertOk(await request(server, 'GET', `/admin/users/${encodeURIComponent(id)}`), `GET /admin/users/${id}`);
const pause = (ms) => new Promise((r) => setTimeout(r, ms));

describe('GET /admin/threads: search', () => {
  let tag;
  let carla;
  let fred;
  let fiona;
  let logo;
  let site;
  let other;
  let sent;
  before(async () => {
    tag = tagged();
    [carla, fred, fiona] = await Promise.all([
      newUser(server, { role: 'client', displayName: `${tag} Carla Client` }),
      newUser(server, { role: 'freelancer', displayName: `${tag} Fred Lancer` }),
      newUser(server, { role: 'freelancer', displayName: `${tag} Fiona Lancer` }),
    ]);
    // Activity, oldest first: other (created), site (a message), logo (two messages).
    other = await newThread(server, [fred, fiona], { title: `${tag}other brief` });
    await pause(5);
    logo = await newThread(server, [carla, fred], { title: `${tag}logo design` });
    site = await newThread(server, [carla, fiona], { title: `${tag}site redesign` });
    const c = await online(server, carla);
    const f = await online(server, fiona);
    try {
      await pause(5);
      await f.send(site.id, 'a draft of the site');
      await pause(5);
      sent = [await c.send(logo.id, 'first logo idea'), await c.send(logo.id, 'second logo idea')];
    } finally {
      await closeAll(c, f);
    }
  });

  it("by a participant's display-name prefix, ignoring case: the user's threads, newest activity first", async () => {
    assert.deepEqual(await foundIds({ participant: `${tag.toUpperCase()} carla` }), [logo.id, site.id]);
    assert.deepEqual(await foundIds({ participant: carla.id }), [logo.id, site.id], 'a user id');
    assert.deepEqual(
      await foundIds({ participant: `${tag} F` }),
      [logo.id, site.id, other.id],
      'a prefix of Fred and Fiona: the threads of either',
    );
  });

  it('by the pair of participants: the threads with both', async () => {
    assert.deepEqual(await foundIds({ participant: [`${tag} carla`, `${tag} fred`] }), [logo.id]);
    assert.deepEqual(await foundIds({ participant: [carla.id, fiona.id] }), [site.id]);
    assert.deepEqual(await foundIds({ participant: [carla.id, `${tag} nobody`] }), []);
  });

  it('by title words, each the start of a word, ignoring case', async () => {
    assert.deepEqual(await foundIds({ title: `${tag}LOGO` }), [logo.id]);
    assert.deepEqual(await foundIds({ title: `${tag}si redes` }), [site.id]);
    assert.deepEqual(await foundIds({ title: `${tag}logo brief` }), []);
    assert.deepEqual(await foundIds({ title: `${tag}s`, participant: fiona.id }), [site.id], 'title and participant together');
  });

  it('each result has its counts, participants and last message', async () => {
    const page = assertOk(await searchThreads({ participant: carla.id, title: `${tag}logo` }));
    assert.equal(page.nextCursor, null, 'one page');
    const [t] = page.threads;
    assert.deepEqual(Object.keys(t).sort(), ['createdAt', 'id', 'lastActivityAt', 'lastMessage', 'messageCount', 'participants', 'title']);
    assert.equal(t.title, logo.title);
    assert.equal(t.messageCount, 2);
    assertTimestamp(t.createdAt, 'createdAt');
    assert.equal(t.lastActivityAt, sent[1].createdAt, 'the last activity is the newest message');
    assert.deepEqual(t.lastMessage, { id: sent[1].id, senderId: carla.id, body: 'second logo idea', createdAt: sent[1].createdAt });
    assert.deepEqual(t.participants, [
      { id: carla.id, displayName: carla.displayName, role: 'client' },
      { id: fred.id, displayName: fred.displayName, role: 'freelancer' },
    ].sort((a, b) => (a.id < b.id ? -1 : 1)), 'created together: by id');
    const [quiet] = assertOk(await searchThreads({ title: `${tag}other` })).threads;
    assert.equal(quiet.messageCount, 0);
    assert.equal(quiet.lastMessage, null);
    assert.equal(quiet.lastActivityAt, quiet.createdAt, 'no message: the creation');
  });

  it('by date range: the last activity in [from, to)', async () => {
    const everyone = assertOk(await searchThreads({ participant: `${tag} ` })).threads;
    assert.deepEqual(everyone.map((t) => t.id), [logo.id, site.id, other.id]);
    const at = Object.fromEntries(everyone.map((t) => [t.id, t.lastActivityAt]));
    const within = (from, to) => foundIds({ participant: `${tag} `, ...(from && { from }), ...(to && { to }) });
    assert.deepEqual(await within(at[site.id], at[logo.id]), [site.id], 'from is inclusive, to exclusive');
    assert.deepEqual(await within(at[site.id]), [logo.id, site.id]);
    assert.deepEqual(await within(undefined, at[site.id]), [other.id]);
    const offset = new Date(Date.parse(at[logo.id]) + 3_600_000).toISOString().replace('Z', '+01:00');
    assert.deepEqual(await within(offset), [logo.id], 'any RFC 3339 offset: the same instant');
    assert.deepEqual(await within(new Date(Date.now() + 60_000).toISOString()), []);
  });
});

describe('GET /admin/threads: paging', () => {
  it('pages with the cursor: every thread once, newest activity first, nextCursor null on the last page', async () => {
    const owner = await newUser(server, { displayName: `${tagged()} Owner` });
    const created = [];
    for (let i = 0; i < 5; i++) {
      created.unshift((await newThread(server, [owner], { title: `page ${i}` })).id);
      await pause(3);
    }
    const first = assertOk(await searchThreads({ participant: owner.id }));
    assert.deepEqual(first.threads.map((t) => t.id), created, 'default limit 25: all at once');
    assert.equal(first.nextCursor, null);

    const seen = [];
    let cursor;
    let pages = 0;
    do {
      const page = assertOk(await searchThreads({ participant: owner.id, limit: 2, ...(cursor && { cursor }) }));
      assert.ok(page.threads.length <= 2);
      seen.push(...page.threads.map((t) => t.id));
      cursor = page.nextCursor;
      pages++;
      if (cursor !== null) assert.equal(typeof cursor, 'string');
    } while (cursor !== null && pages < 10);
    assert.equal(pages, 3);
    assert.deepEqual(seen, created);
  });
});

describe('GET /admin/threads/{id} and the users', () => {
  it("shows each participant's read mark after chat:read, and online true and false around a disconnect", async () => {
    const tag = tagged();
    const [client, freelancer] = await Promise.all([
      newUser(server, { role: 'client', displayName: `${tag} Client`, avatarUrl: 'https://cdn.example/c.png' }),
      newUser(server, { role: 'freelancer', displayName: `${tag} Freelancer` }),
    ]);
    const thread = await newThread(server, [client, freelancer], { title: `${tag} detail` });
    const c = await online(server, client);
    const f = await online(server, freelancer);
    try {
      const m1 = await c.send(thread.id, 'one');
      const m2 = await c.send(thread.id, 'two');
      await f.nextMessage(m2.id);
      await f.ok('chat:read', { threadId: thread.id, messageId: m1.id });

      const d = await threadDetail(thread.id);
      assert.deepEqual(Object.keys(d).sort(), ['audit', 'createdAt', 'decisions', 'id', 'lastActivityAt', 'messageCount', 'participants', 'title']);
      assert.deepEqual(d.decisions, [], 'no plugin decided anything');
      assert.equal(d.audit, null, 'not under audit');
      assert.equal(d.messageCount, 2);
      assert.equal(d.lastActivityAt, m2.createdAt);
      const byId = Object.fromEntries(d.participants.map((p) => [p.id, p]));
      assert.deepEqual(byId[client.id], {
        id: client.id,
        displayName: client.displayName,
        role: 'client',
        avatarUrl: 'https://cdn.example/c.png',
        lastReadMessageId: m2.id,
        online: true,
        lastSeenAt: null,
      }, "the sender's own mark, online, never seen offline");
      assert.equal(byId[freelancer.id].lastReadMessageId, m1.id, 'the mark chat:read set');
      assert.equal(byId[freelancer.id].online, true);
      assert.equal(byId[freelancer.id].avatarUrl, null);

      const user = await userDetail(client.id);
      assert.deepEqual(
        { online: user.online, connections: user.connections, lastSeenAt: user.lastSeenAt, role: user.role, avatarUrl: user.avatarUrl },
        { online: true, connections: 1, lastSeenAt: null, role: 'client', avatarUrl: 'https://cdn.example/c.png' },
      );
      assert.deepEqual(user.threads, [{ id: thread.id, title: thread.title, lastActivityAt: m2.createdAt, messageCount: 2 }]);

      await f.close();
      const off = await c.next('chat:presence', { where: (p) => p.userId === freelancer.id && !p.online });
      const after = await eventually(async () => {
        const p = (await threadDetail(thread.id)).participants.find((x) => x.id === freelancer.id);
        return !p.online && p;
      }, { what: 'the freelancer offline in the detail' });
      assert.match(after.lastSeenAt, RFC3339_MS_UTC);
      assert.equal(after.lastSeenAt, off.lastSeenAt, 'the time chat:presence announced');
      const gone = await userDetail(freelancer.id);
      assert.deepEqual([gone.online, gone.connections, gone.lastSeenAt], [false, 0, off.lastSeenAt]);
    } finally {
      await closeAll(c, f);
    }
  });

  it('GET /admin/users finds users by id or display-name prefix, by id, a page at a time', async () => {
    const tag = tagged();
    const users = [];
    for (const name of ['Ann', 'Bea', 'Cy']) users.push(await newUser(server, { prefix: tag, displayName: `${tag} ${name}` }));
    const ids = users.map((u) => u.id).sort();
    const list = async (query) => assertOk(await request(server, 'GET', `/admin/users?${new URLSearchParams(query)}`), 'GET /admin/users');

    const byName = await list({ q: `${tag.toUpperCase()} B` });
    assert.deepEqual(byName.users.map((u) => u.id), [users[1].id]);
    assert.deepEqual(byName.users[0], { id: users[1].id, displayName: `${tag} Bea`, role: 'client', avatarUrl: null, online: false, lastSeenAt: null });
    assert.deepEqual((await list({ q: tag })).users.map((u) => u.id), ids, 'the id prefix');

    const first = await list({ q: tag, limit: 2 });
    assert.deepEqual(first.users.map((u) => u.id), ids.slice(0, 2));
    assert.equal(typeof first.nextCursor, 'string');
    const rest = await list({ q: tag, limit: 2, cursor: first.nextCursor });
    assert.deepEqual(rest.users.map((u) => u.id), ids.slice(2));
    assert.equal(rest.nextCursor, null);
    const all = await list({ limit: 100 });
    const sorted = [...all.users.map((u) => u.id)].sort();
    assert.deepEqual(all.users.map((u) => u.id), sorted, 'no q: everyone, by id');
  });
});

describe('PUT and DELETE /admin/threads/{id}/audit', () => {
  it('puts a thread under audit (since, by, case in its detail; the history sealed; audit_started) and ends it', async () => {
    const owner = await newUser(server);
    const other = await newUser(server);
    const thread = await newThread(server, [owner, other]);
    const c = await online(server, owner);
    try {
      await c.send(thread.id, 'before the audit');
      const operator = rid('op');
      const path = `/admin/threads/${thread.id}/audit`;
      const started = assertOk(await request(server, 'PUT', path, { body: { case: ' D-9 ' }, headers: { 'x-chat-operator': operator } }));
      assert.deepEqual(Object.keys(started).sort(), ['by', 'case', 'since']);
      assert.deepEqual([started.by, started.case], [operator, 'D-9']);
      assertTimestamp(started.since, 'since');
      assert.deepEqual((await threadDetail(thread.id)).audit, started, 'the thread detail shows it');
      const again = assertOk(await request(server, 'PUT', path, { body: { case: 'other' } }));
      assert.deepEqual(again, started, 'an audit already running is kept');
      const trail = await auditTrail(server, thread.id);
      const host = trail.filter((e) => e.plugin === 'chat-host').map((e) => [e.kind, e.actorId]);
      assert.deepEqual(host, [['audit_started', operator], ['history_sealed', operator]], 'the history was sealed, by the operator');
      assert.deepEqual(JSON.parse(trail.find((e) => e.kind === 'history_sealed').detail).messages.length, 1);
      const m = await c.send(thread.id, 'under audit');
      const stored = (await auditTrail(server, thread.id)).find((e) => e.kind === 'message_stored');
      assert.equal(JSON.parse(stored.detail).message, m.id, 'the message is sealed as it is stored');
      const v = assertOk(await request(server, 'GET', `/admin/audit/${thread.id}/verify`));
      assert.deepEqual([v.valid, v.messagesChecked], [true, 2]);
      await eventually(async () => (await auditTrail(server, thread.id)).some((e) => e.kind === 'audit_started' && e.plugin === 'dispute-audit'), { what: 'audit_started on the event stream, recorded by dispute-audit' });

      assert.equal((await request(server, 'DELETE', path)).status, 204);
      assert.equal((await threadDetail(thread.id)).audit, null);
      assert.equal((await request(server, 'DELETE', path)).status, 204, 'ending twice is fine');
      const after = await auditTrail(server, thread.id);
      assert.ok(after.some((e) => e.plugin === 'chat-host' && e.kind === 'audit_ended' && e.actorId === 'service'));
      assert.deepEqual(assertOk(await request(server, 'GET', `/admin/audit/${thread.id}/verify`)).messagesChecked, null);
    } finally {
      await closeAll(c);
    }
  });

  it('refuses a bad id or case (400), an unknown thread (404), a non-admin (401, 403)', async () => {
    const owner = await newUser(server);
    const thread = await newThread(server, [owner]);
    const path = `/admin/threads/${thread.id}/audit`;
    for (const body of [{ case: 'x'.repeat(201) }, { case: 'a\u0000b' }, { case: 5 }, { reason: 'x' }, []]) {
      assertHttpError(await request(server, 'PUT', path, { body }), 400, 'invalid_payload');
    }
    assertHttpError(await request(server, 'PUT', '/admin/threads/bad%20id/audit', { body: {} }), 400, 'invalid_payload');
    assertHttpError(await request(server, 'DELETE', '/admin/threads/bad%20id/audit'), 400, 'invalid_payload');
    assertHttpError(await request(server, 'PUT', `/admin/threads/${rid('t')}/audit`, { body: {} }), 404, 'not_found');
    assertHttpError(await request(server, 'DELETE', `/admin/threads/${rid('t')}/audit`), 404, 'not_found');
    assertHttpError(await request(server, 'PUT', path, { body: {}, token: null }), 401, 'unauthorized');
    assertHttpError(await request(server, 'PUT', path, { body: {}, token: mintToken(server.jwtSecret, owner.id, 'client') }), 403, 'forbidden');
    assert.equal((await threadDetail(thread.id)).audit, null, 'nothing was started');
  });
});

describe('admin API: refusals', () => {
  it('malformed filters, ids and cursors are 400 invalid_payload naming the field', async () => {
    const cases = [
      [{ participant: ['a', 'b', 'c', 'd', 'e', 'f'] }, 'participant'],
      [{ participant: '   ' }, 'participant'],
      [{ title: '!!! ---' }, 'title'],
      [{ from: '2026-01-01' }, 'from'],
      [{ to: 'yesterday' }, 'to'],
      [{ cursor: 'not-a-cursor' }, 'cursor'],
      [{ limit: 0 }, 'limit'],
      [{ limit: 101 }, 'limit'],
      [{ limit: 'ten' }, 'limit'],
      [{ title: ['a', 'b'] }, 'title'],
    ];
    for (const [filters, field] of cases) {
      const e = assertHttpError(await searchThreads(filters), 400, 'invalid_payload');
      assert.ok(e.message.startsWith(field), `${JSON.stringify(filters)}: ${e.message}`);
    }
    for (const path of ['/admin/threads/bad%20id', `/admin/threads/${'x'.repeat(65)}`, '/admin/threads/bad%20id/export', '/admin/users/bad%20id']) {
      const e = assertHttpError(await request(server, 'GET', path), 400, 'invalid_payload');
      assert.match(e.message, /^id must be/, path);
    }
    for (const query of ['cursor=bad%20id', 'limit=-1', `q=${'q'.repeat(201)}`]) {
      assertHttpError(await request(server, 'GET', `/admin/users?${query}`), 400, 'invalid_payload');
    }
    const op = assertHttpError(await request(server, 'GET', '/admin/threads', { headers: { 'x-chat-operator': 'not an id' } }), 400, 'invalid_payload');
    assert.match(op.message, /^X-Chat-Operator must be/);
  });

  it('an unknown thread or user is 404 not_found', async () => {
    assertHttpError(await request(server, 'GET', `/admin/threads/${rid('t')}`), 404, 'not_found');
    assertHttpError(await request(server, 'GET', `/admin/threads/${rid('t')}/export`), 404, 'not_found');
    assertHttpError(await request(server, 'GET', `/admin/users/${rid('u')}`), 404, 'not_found');
  });

  it('without a token 401, with a client or freelancer JWT 403, with an admin JWT 200', async () => {
    const owner = await newUser(server);
    const thread = await newThread(server, [owner]);
    const paths = ['/admin/threads', `/admin/threads/${thread.id}`, `/admin/threads/${thread.id}/export`, '/admin/users', `/admin/users/${owner.id}`, '/admin/overview'];
    const admin = mintToken(server.jwtSecret, rid('a'), 'admin');
    for (const path of paths) {
      assertHttpError(await request(server, 'GET', path, { token: null }), 401, 'unauthorized');
      for (const role of ['client', 'freelancer']) {
        assertHttpError(await request(server, 'GET', path, { token: mintToken(server.jwtSecret, owner.id, role) }), 403, 'forbidden');
      }
      assert.equal((await request(server, 'GET', path, { token: admin })).status, 200, path);
    }
  });
});

describe('admin API: a thread view on the event stream', () => {
  /** A thread under audit, so its events (with their actors) reach its audit trail. */
  async function auditedThread() {
    const owner = await newUser(server);
    const thread = await newThread(server, [owner]);
    await kvSet(server, 'dispute-audit', `audit:${thread.id}`, '1');
    return thread;
  }

  it('GET /admin/threads/{id} is admin_viewed_thread by the caller: the admin, the operator, or service; a search records nothing', async () => {
    const thread = await auditedThread();
    const admin = rid('adm');
    const operator = rid('op');
    assertOk(await searchThreads({ participant: thread.participantIds[0] }));
    await threadDetail(thread.id, { headers: { 'x-chat-operator': operator } });
    await threadDetail(thread.id, { token: mintToken(server.jwtSecret, admin, 'admin') });
    await threadDetail(thread.id);
    const views = await eventually(async () => {
      const v = (await auditTrail(server, thread.id)).filter((e) => e.kind === 'admin_viewed_thread');
      return v.length >= 3 && v;
    }, { what: 'three admin_viewed_thread entries in the audit trail' });
    assert.deepEqual(views.map((e) => e.actorId), [operator, admin, 'service'], 'in order, the search made none');
    assertHttpError(await request(server, 'GET', `/admin/threads/${rid('t')}`), 404, 'not_found');
  });

  it('mysql-redis: the view is an entry of the Redis stream chat:logs:events', { skip: needsMysqlRedis }, async () => {
    const thread = await auditedThread();
    const operator = rid('op');
    await threadDetail(thread.id, { headers: { 'x-chat-operator': operator } });
    const redis = await openRedis();
    try {
      const [entry] = await eventually(async () => {
        const found = await streamEntries(redis, 'admin_viewed_thread', thread.id);
        return found.length > 0 && found;
      }, { what: `admin_viewed_thread of ${thread.id} in chat:logs:events` });
      assert.equal(entry.message.type, 'admin_viewed_thread');
      assert.equal(entry.message.userId, operator);
      assert.equal(entry.message.threadId, thread.id);
    } finally {
      await closeRedis(redis);
    }
  });
});
