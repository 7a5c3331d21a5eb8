// Limits before trust: an oversized WebSocket frame or polling body is refused by
// the transport before it is parsed, before and after the Socket.IO handshake is
// authenticated; the server's memory stays bounded and other clients are served.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';

import WebSocket from 'ws';

import { closeAll } from './lib/client.mjs';
import { cast, online } from './lib/fixtures.mjs';
import { startServer } from './lib/server.mjs';

/** The server's limit (the default, `CHAT_MAX_FRAME_BYTES`). */
const FRAME_LIMIT = 64 << 10;

let server;
before(async () => {
  server = await startServer({ label: 'limits' });
});
after(async () => {
  await server?.stop();
});

/** Peak resident memory of the server process so far (VmHWM), in bytes. */
function peakRss(s) {
  const kb = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${s.child.pid}/status`, 'utf8'))[1];
  return Number(kb) * 1024;
}

/** A raw Engine.IO WebSocket that completed the Engine.IO open (no Socket.IO connect, no token). */
function rawSocket(s) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${s.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
    ws.once('error', reject);
    ws.once('message', (data) => {
      assert.match(String(data), /^0\{/, 'the Engine.IO open packet');
      resolve(ws);
    });
  });
}

/** Resolves with the close code once the server closed `ws`. */
const closed = (ws) => new Promise((resolve) => {
  ws.on('error', () => {});
  ws.once('close', (code) => resolve(code));
});

/** A canary pair: a message goes through and arrives. */
async function canaryServed(c, f, thread) {
  const m = await c.send(thread.id, 'canary');
  await f.nextMessage(m.id);
}

describe('limits before trust', () => {
  it(`a frame over ${FRAME_LIMIT} bytes before authentication closes that connection; a frame just under it does not`, async () => {
    const canary = await cast(server);
    const c = await online(server, canary.client);
    const f = await online(server, canary.freelancer);
    try {
      const small = await rawSocket(server);
      const big = await rawSocket(server);
      const bigClosed = closed(big);
      big.send(`4${'x'.repeat(FRAME_LIMIT)}`);
      assert.ok(await bigClosed, 'the oversized connection was closed');
      // Under the limit the frame is read and parsed: a Socket.IO connect with a
      // (bogus) 60 KB token is answered, refused as unauthorized.
      const answer = new Promise((resolve) => small.on('message', (d) => String(d).startsWith('44') && resolve(String(d))));
      small.send(`40${JSON.stringify({ token: 'x'.repeat(FRAME_LIMIT - 1024) })}`);
      assert.equal(JSON.parse((await answer).slice(2)).message, 'unauthorized');
      small.close();
      await canaryServed(c, f, canary.thread);
    } finally {
      await closeAll(c, f);
    }
  });

  it('48 parallel 15.9 MB frames before authentication: all closed, server memory stays bounded, the canary is served', async (t) => {
    const canary = await cast(server);
    const c = await online(server, canary.client);
    const f = await online(server, canary.freelancer);
    try {
      const before = peakRss(server);
      const payload = Buffer.alloc(Math.floor(15.9 * 1024 * 1024), 'x');
      payload[0] = '4'.charCodeAt(0);
      const sockets = await Promise.all(Array.from({ length: 48 }, () => rawSocket(server)));
      const codes = await Promise.all(sockets.map((ws) => {
        const done = closed(ws);
        ws.send(payload, { binary: false });
        return done;
      }));
      assert.equal(codes.length, 48, 'every oversized connection was closed');
      const grown = peakRss(server) - before;
      t.diagnostic(`server peak RSS ${Math.round(before / 1048576)} MB before, +${(grown / 1048576).toFixed(1)} MB after`);
      assert.ok(grown < 8 * 1048576, `peak RSS grew ${grown} bytes (48 × 15.9 MB were sent)`);
      await canaryServed(c, f, canary.thread);
    } finally {
      await closeAll(c, f);
    }
  });

  it('an authenticated socket sending an event over the limit is disconnected; the others are not', async () => {
    const canary = await cast(server);
    const c = await online(server, canary.client);
    const f = await online(server, canary.freelancer);
    const flood = await online(server, canary.stranger, { label: 'oversized' });
    try {
      const gone = new Promise((resolve, reject) => {
        flood.socket.once('disconnect', resolve);
        setTimeout(() => reject(new Error('the oversized event did not close the connection within 5 s')), 5_000);
      });
      flood.emit('chat:typing', { threadId: 'x'.repeat(FRAME_LIMIT) });
      assert.equal(await gone, 'transport close');
      await canaryServed(c, f, canary.thread);
      assert.ok(c.connected && f.connected);
    } finally {
      await closeAll(c, f, flood);
    }
  });

  it('a long-polling body over the limit is refused', async () => {
    const open = await fetch(`${server.url}/socket.io/?EIO=4&transport=polling`);
    const text = await open.text();
    const { sid, maxPayload } = JSON.parse(text.slice(1));
    assert.equal(maxPayload, FRAME_LIMIT, 'the handshake announces the limit, so clients split their batches');
    const res = await fetch(`${server.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, {
      method: 'POST',
      body: `4${'x'.repeat(FRAME_LIMIT + 1)}`,
    });
    assert.equal(res.status, 413);
  });
});
