// Connection limits before anything is authenticated: a client dribbling HTTP
// headers is closed by the header-read timeout, an Engine.IO session that never
// sends an authenticated Socket.IO connect is closed by the handshake timeout,
// and one source address holds at most CHAT_MAX_CONNECTIONS_PER_ADDRESS
// connections (WebSockets included) while other addresses are served.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';

import WebSocket from 'ws';

import { closeAll } from './lib/client.mjs';
import { cast, eventually, online } from './lib/fixtures.mjs';
import { startServer } from './lib/server.mjs';

const HEADER_TIMEOUT_MS = 1500;
const HANDSHAKE_TIMEOUT_MS = 1500;
const PER_ADDRESS = 40;
const PENDING = 5;

/** The server of the current describe block. */
let server;

/** A raw TCP connection from `localAddress`; resolves once connected. */
function tcp(localAddress = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port: server.port, localAddress });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Resolves with the time (ms since `since`) at which the server closed `socket`. */
function closedAt(socket, since) {
  return new Promise((resolve) => {
    socket.on('error', () => {});
    socket.on('data', () => {});
    socket.once('close', () => resolve(performance.now() - since));
  });
}

/** GET /healthz over a fresh connection from `localAddress`: the status, or the error. */
function healthz(localAddress = '127.0.0.1') {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port: server.port, localAddress });
    let text = '';
    socket.on('data', (d) => { text += d; });
    socket.on('error', (e) => resolve(e.code));
    socket.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0)));
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  });
}

describe('timeouts before authentication', () => {
  before(async () => {
    server = await startServer({
      label: 'timeouts',
      env: {
        CHAT_HEADER_TIMEOUT_MS: String(HEADER_TIMEOUT_MS),
        CHAT_HANDSHAKE_TIMEOUT_MS: String(HANDSHAKE_TIMEOUT_MS),
        CHAT_MAX_PENDING_HANDSHAKES: String(PENDING),
      },
    });
  });
  after(async () => {
    await server?.stop();
  });

  it(`connections dribbling headers are closed after ${HEADER_TIMEOUT_MS} ms; others are served meanwhile`, async () => {
    const started = performance.now();
    // Spread over addresses, so the per-address cap is not what closes them.
    const sockets = await Promise.all(Array.from({ length: 30 }, (_, i) => tcp(`127.0.1.${1 + (i % 10)}`)));
    const closes = sockets.map((s) => closedAt(s, started));
    for (const s of sockets) s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    const drip = setInterval(() => { for (const s of sockets) if (!s.destroyed) s.write('X'); }, 200);
    try {
      assert.equal(await healthz(), 200, 'a normal request is answered meanwhile');
      const times = await Promise.all(closes);
      const last = Math.max(...times);
      assert.ok(last >= HEADER_TIMEOUT_MS - 100, `closed after ${last.toFixed(0)} ms, not before the timeout`);
      assert.ok(last <= HEADER_TIMEOUT_MS + 2000, `every dribbling connection closed within ${last.toFixed(0)} ms`);
    } finally {
      clearInterval(drip);
    }
  });

  it(`an Engine.IO session without a Socket.IO connect is closed after ${HANDSHAKE_TIMEOUT_MS} ms`, async () => {
    const started = performance.now();
    const ws = new WebSocket(`${server.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
    const opened = new Promise((resolve) => ws.once('message', resolve));
    const closed = new Promise((resolve) => ws.once('close', () => resolve(performance.now() - started)));
    ws.on('error', () => {});
    assert.match(String(await opened), /^0\{/, 'the Engine.IO open packet');
    const after = await closed;
    assert.ok(after >= HANDSHAKE_TIMEOUT_MS - 100 && after <= HANDSHAKE_TIMEOUT_MS + 3000, `closed after ${after.toFixed(0)} ms`);
  });


  it(`at most ${PENDING} handshakes wait to authenticate; the next gets 503 until they authenticate or time out`, async () => {
    const { client } = await cast(server);
    const ws = () => new WebSocket(`${server.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
    /** Resolves to 'open' (the Engine.IO open packet came) or the HTTP status of a refused upgrade. */
    const outcome = (socket) => new Promise((resolve) => {
      socket.on('error', () => {});
      socket.once('message', () => resolve('open'));
      socket.once('unexpected-response', (_req, res) => resolve(res.statusCode));
    });
    // Authenticated sockets hold no place.
    const authenticated = [];
    for (let i = 0; i < PENDING + 2; i++) authenticated.push(await online(server, client, { label: `auth${i}` }));
    const pending = Array.from({ length: PENDING }, ws);
    assert.deepEqual(await Promise.all(pending.map(outcome)), Array(PENDING).fill('open'));
    const closed = pending.map((p) => new Promise((resolve) => p.once('close', resolve)));
    const over = ws();
    assert.equal(await outcome(over), 503, 'a handshake over the cap is refused before a session is made');
    await assert.rejects(online(server, client, { label: 'refused' }), /connect_error|websocket error|xhr poll error|503/i);
    // The unauthenticated sessions time out, and their places are free again.
    await Promise.all(closed);
    authenticated.push(await online(server, client, { label: 'after' }));
    await closeAll(authenticated);
  });
});

describe('connections per address', () => {
  before(async () => {
    server = await startServer({ label: 'per-address', env: { CHAT_MAX_CONNECTIONS_PER_ADDRESS: String(PER_ADDRESS) } });
  });
  after(async () => {
    await server?.stop();
  });

  it(`one address holds at most ${PER_ADDRESS} connections, WebSockets included; another address is served`, async () => {
    const { client, freelancer, thread } = await cast(server);
    const address = '127.0.2.1';
    const sockets = await Promise.all(Array.from({ length: PER_ADDRESS - 1 }, () => tcp(address)));
    const opened = performance.now();
    const idle = sockets.map((s) => closedAt(s, opened));
    // The last slot of the address: a Socket.IO client (over WebSocket) from it.
    const ws = new WebSocket(`${server.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`, { localAddress: address });
    ws.on('error', () => {});
    await new Promise((resolve) => ws.once('message', resolve));
    const over = await tcp(address);
    const refusedAfter = await closedAt(over, performance.now());
    assert.ok(refusedAfter < 1000, `the connection over the cap was closed at once (${refusedAfter.toFixed(0)} ms)`);
    assert.equal(await healthz('127.0.2.2'), 200, 'another address is served');
    const c = await online(server, client);
    const f = await online(server, freelancer);
    const m = await c.send(thread.id, 'still served');
    await f.nextMessage(m.id);
    // A freed slot is taken again.
    sockets.pop().destroy();
    await eventually(async () => (await healthz(address)) === 200, { what: 'the freed slot taken again' });
    for (const s of sockets) s.destroy();
    ws.close();
    await Promise.all(idle);
    await closeAll(c, f);
  });
});
