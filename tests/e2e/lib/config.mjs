// Which backend the suite runs against, and where MariaDB and Redis live.
//
//   CHAT_HOST_BIN          the chat-host binary (required; checked when a server starts)
//   CHAT_E2E_BACKEND       embedded (default) | mysql-redis
//   CHAT_E2E_DATABASE_URL  default mysql://root@127.0.0.1:3306/chat_host_e2e
//   CHAT_E2E_REDIS_URL     default redis://127.0.0.1:6379
//   CHAT_E2E_DATABASE_URL_2  a second MariaDB database, for a second deployment
//                          (isolation.test.mjs); default mysql://root@127.0.0.1:3306/chat_host_e2e_2
//   CHAT_E2E_SERVER_LOGS   1: copy every server's stdout/stderr to this process's stderr

const BACKENDS = ['embedded', 'mysql-redis'];

export const backend = process.env.CHAT_E2E_BACKEND || 'embedded';
if (!BACKENDS.includes(backend)) {
  throw new Error(`CHAT_E2E_BACKEND must be one of ${BACKENDS.join(', ')}, not ${JSON.stringify(backend)}`);
}

export const databaseUrl = process.env.CHAT_E2E_DATABASE_URL || 'mysql://root@127.0.0.1:3306/chat_host_e2e';
export const redisUrl = process.env.CHAT_E2E_REDIS_URL || 'redis://127.0.0.1:6379';
/** Another database (must exist), for a second deployment with data of its own. */
export const secondDatabaseUrl = process.env.CHAT_E2E_DATABASE_URL_2 || 'mysql://root@127.0.0.1:3306/chat_host_e2e_2';
export const echoServerLogs = process.env.CHAT_E2E_SERVER_LOGS === '1';

/** True when MariaDB + Redis back the servers (shared, persistent between runs). */
export const isMysqlRedis = backend === 'mysql-redis';

/**
 * `skip` option for tests that need MariaDB + Redis (read Redis directly, cut a
 * backend, run two instances). In embedded mode those assertions do not apply.
 */
export const needsMysqlRedis = isMysqlRedis ? false : 'needs CHAT_E2E_BACKEND=mysql-redis (reads Redis / MariaDB directly)';

/** The binary under test; a clear error when it is not configured. */
export function hostBinary() {
  const bin = process.env.CHAT_HOST_BIN;
  if (!bin) {
    throw new Error('CHAT_HOST_BIN is not set: point it at the chat-host binary (e.g. $CARGO_TARGET_DIR/debug/chat-host)');
  }
  return bin;
}
