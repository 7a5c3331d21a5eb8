// The delivery ledger of a fault scenario: what the senders were told (acks), what
// the database holds, what each participant's connections received, and what the
// receipts claim. The fault-injection scenarios end with `assertLedger`.

import assert from 'node:assert/strict';

import { fullHistory } from './http.mjs';

/**
 * Asserts, for one thread:
 * - every send acked ok (`acked`: the acked messages) is stored, exactly once, and no
 *   clientMessageId is stored twice;
 * - every stored message reached every participant other than its sender: some
 *   connection of theirs (`received[userId]`: their TestClients, live and reconnected)
 *   got it as a `chat:message`;
 * - no single connection got a message twice before acknowledging it (at least once
 *   across connections, at most once per connection);
 * - a receipt with `deliveredAt` belongs to a user one of whose connections got the
 *   message (nothing is marked delivered that was not).
 * Resolves to the stored history.
 */
export async function assertLedger(server, threadId, { acked, received }) {
  const history = await fullHistory(server, threadId);
  const byClientId = new Map();
  for (const m of history) {
    assert.ok(!byClientId.has(m.clientMessageId), `clientMessageId ${m.clientMessageId} stored twice`);
    byClientId.set(m.clientMessageId, m);
  }
  for (const a of acked) {
    const stored = byClientId.get(a.clientMessageId);
    assert.ok(stored, `acked message ${a.id} (${a.clientMessageId}) is stored`);
    assert.equal(stored.id, a.id, `acked ${a.clientMessageId} is the stored row`);
  }
  for (const [userId, clients] of Object.entries(received)) {
    const got = new Set();
    for (const c of clients) {
      const ids = c.received('chat:message').map((d) => d.message.id);
      const once = new Set(ids);
      assert.equal(once.size, ids.length, `${c.label} got no message twice`);
      for (const id of ids) got.add(id);
    }
    for (const m of history) {
      if (m.senderId === userId) continue;
      assert.ok(got.has(m.id), `${userId} received message ${m.id} ("${m.body}")`);
      const receipt = m.receipts.find((r) => r.userId === userId);
      assert.ok(receipt, `${userId} has a receipt of ${m.id}`);
    }
    for (const m of history) {
      const receipt = m.receipts.find((r) => r.userId === userId);
      if (receipt?.deliveredAt) assert.ok(got.has(m.id), `${m.id} is marked delivered to ${userId} only if it reached them`);
    }
  }
  return history;
}
