// What every client event has in common: an ack, also for an event the server
// does not know (invalid_payload), and a socket that keeps working after one.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { cast, online } from './lib/fixtures.mjs';
import { startServer } from './lib/server.mjs';

let server;
before(async () => {
  server = await startServer({ label: 'events' });
});
after(async () => {
  await server?.stop();
});

describe('client events', () => {
  it('an unknown event is acked invalid_payload and the socket keeps working', async () => {
    const { client, thread } = await cast(server);
    const c = await online(server, client);
    try {
      for (const event of ['chat:nope', 'chat:send', 'message', 'chat:join ']) {
        const err = await c.fails(event, { threadId: thread.id }, 'invalid_payload');
        assert.match(err.message, /unknown event/);
      }
      await c.join(thread.id);
      const m = await c.send(thread.id, 'still here');
      assert.equal(m.body, 'still here');
    } finally {
      await c.close();
    }
  });
});
