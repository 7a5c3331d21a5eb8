// Flood control for every client event: per-user budgets answered `rate_limited`
// with `retryAfterMs`, typing relays coalesced, a cap on events in flight per
// socket, a cap on sockets per user, and a socket that keeps flooding closed with
// `chat:closing { reason: "flooding" }`, while another user's sends stay fast.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { closeAll, connectError } from './lib/client.mjs';
import { cast, eventually, online } from './lib/fixtures.mjs';
import { flood } from './lib/flooder.mjs';
import { startServer } from './lib/server.mjs';

/** The default `chat:history` and `chat:join` budgets per user per minute
 * (CHAT_HISTORY_PER_MINUTE, CHAT_JOIN_PER_MINUTE). */
const HISTORY_BUDGET = 120;
const SOCKETS_PER_USER = 3;

let server;
before(async () => {
  server = await startServer({
    label: 'floods',
    env: { CHAT_MAX_SOCKETS_PER_USER: String(SOCKETS_PER_USER), CHAT_RATE_LIMIT_PER_MINUTE: '1000' },
  });
});
after(async () => {
  await server?.stop();
});

/** Send->receive latencies (ms) of `n` canary messages, one after the other. */
async function canaryLatencies(c, f, thread, n) {
  const latencies = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    const m = await c.send(thread.id, `canary ${i}`);
    await f.nextMessage(m.id);
    latencies.push(performance.now() - started);
  }
  return latencies;
}

const worst = (xs) => Math.max(...xs);

describe('flood control', () => {
  for (const event of ['chat:history', 'chat:join']) {
    it(`${event} beyond ${HISTORY_BUDGET} a minute is rate_limited with retryAfterMs, and the socket stays`, async () => {
      const { client, thread } = await cast(server);
      const c = await online(server, client);
      const payload = event === 'chat:history' ? { threadId: thread.id, limit: 1 } : { threadId: thread.id };
      // In order, each answered: the budget is served, then refused (it refills
      // by one every 500 ms, so a few more may pass while the loop runs).
      let served = 0;
      let error;
      while (!error && served <= HISTORY_BUDGET + 20) {
        const res = await c.ack(event, payload);
        if (res.ok) served++;
        else error = res.error;
      }
      assert.ok(served >= HISTORY_BUDGET && served < HISTORY_BUDGET + 20, `${served} served before the first refusal`);
      assert.equal(error?.code, 'rate_limited');
      assert.ok(error.retryAfterMs > 0 && error.retryAfterMs <= 60_000 / HISTORY_BUDGET, `retryAfterMs ${error.retryAfterMs}`);
      // A few refusals do not make a flooder.
      await c.ok('chat:typing', { threadId: thread.id, isTyping: true });
      assert.equal(c.connected, true);
      await closeAll(c);
    });
  }

  it('250 typing starts relay a handful; a stop goes through at once; past the budget typing is refused', async () => {
    const { client, freelancer, thread } = await cast(server);
    const c = await online(server, client);
    const f = await online(server, freelancer);
    // In order, each acknowledged, within the typing budget (300 a minute).
    for (let i = 0; i < 250; i++) await c.ok('chat:typing', { threadId: thread.id, isTyping: true });
    await c.ok('chat:typing', { threadId: thread.id, isTyping: false });
    await f.next('chat:typing', { where: (t) => t.userId === client.id && t.isTyping === false });
    const starts = f.count('chat:typing', (t) => t.userId === client.id && t.isTyping);
    assert.ok(starts >= 1 && starts <= 10, `250 starts were relayed ${starts} times (at most one a second)`);
    // Past the budget (300 a minute, 251 spent), typing is refused like any
    // other event. 120 at once stay below the flood closure (100 refusals), so
    // every one is answered: at most the rest of the budget passes.
    const burst = await Promise.all(Array.from({ length: 120 }, () => c.ack('chat:typing', { threadId: thread.id, isTyping: true })));
    const passed = burst.filter((r) => r.ok).length;
    assert.ok(burst.every((r) => r.ok || r.error?.code === 'rate_limited'), JSON.stringify(burst.find((r) => !r.ok && r.error?.code !== 'rate_limited')));
    assert.ok(passed <= 300 - 251 + 5, `${passed} of the burst passed`);
    assert.equal(c.connected, true, 'a burst under the flood limit does not close the socket');
    await closeAll(c, f);
  });

  it('a socket pipelining 3,000 history calls is limited, then closed as a flooder; a canary stays fast', async (t) => {
    const canary = await cast(server);
    const c = await online(server, canary.client);
    const f = await online(server, canary.freelancer);
    await canaryLatencies(c, f, canary.thread, 5); // warm-up
    const idle = await canaryLatencies(c, f, canary.thread, 20);

    const { client, thread } = await cast(server);
    const flooded = flood({ url: server.url, token: client.token, event: 'chat:history', payload: { threadId: thread.id, limit: 100 }, count: 3000 });
    const loaded = await canaryLatencies(c, f, canary.thread, 20);
    const result = await flooded;
    t.diagnostic(`canary worst ${worst(idle).toFixed(1)} ms idle, ${worst(loaded).toFixed(1)} ms under the flood; flooder answers ${JSON.stringify(result.answers)}`);
    assert.equal(result.closing?.reason, 'flooding', JSON.stringify(result));
    assert.equal(result.disconnect, 'io server disconnect');
    assert.ok(result.answers.rate_limited >= 100, `answers: ${JSON.stringify(result.answers)}`);
    assert.ok(result.retryAfterMsMin > 0, 'each with retryAfterMs');
    assert.ok((result.answers.ok ?? 0) <= HISTORY_BUDGET, 'no more than the budget was served');
    assert.ok(
      worst(loaded) <= 2 * worst(idle) + 100,
      `canary worst latency ${worst(loaded).toFixed(1)} ms under the flood vs ${worst(idle).toFixed(1)} ms idle`,
    );
    await closeAll(c, f);
  });

  it(`a user may hold ${SOCKETS_PER_USER} sockets; the next handshake is refused until one closes`, async () => {
    const { client } = await cast(server);
    const sockets = [];
    for (let i = 0; i < SOCKETS_PER_USER; i++) sockets.push(await online(server, client, { label: `dev${i}` }));
    const err = await connectError(server, { token: client.token });
    assert.equal(err.message, 'too many connections for this user');
    await sockets.pop().close();
    const again = await eventually(() => online(server, client, { label: 'again' }).catch(() => null), { what: 'a socket again after one closed' });
    await closeAll(sockets, again);
  });
});
