// Direct Redis access for the mysql-redis backend: the contract's keys are checked as they are.

import { createClient } from 'redis';

import { redisUrl } from './config.mjs';

/** A connected node-redis client on `url` (default CHAT_E2E_REDIS_URL); close it with `closeRedis`. */
export async function openRedis(url = redisUrl) {
  const client = createClient({ url, socket: { reconnectStrategy: false, connectTimeout: 5_000 } });
  client.on('error', () => {}); // surfaced by the failing command instead
  await client.connect();
  return client;
}

export async function closeRedis(client) {
  if (!client) return;
  try {
    await client.close();
  } catch {
    client.destroy();
  }
}

/**
 * Entries of the `chat:logs:events` stream (newest last) whose fields name `type`
 * and mention `needle` (e.g. a user id) in any field, whatever the field layout.
 */
export async function streamEntries(client, type, needle, count = 5_000) {
  const entries = await client.xRevRange('chat:logs:events', '+', '-', { COUNT: count });
  return entries
    .filter(({ message }) => {
      const values = Object.values(message);
      const typed = values.some((v) => v === type || String(v).includes(`"${type}"`));
      return typed && values.some((v) => String(v).includes(needle));
    })
    .reverse();
}
