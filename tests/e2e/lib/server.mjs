// Starts and stops real chat-host processes.
//
// Each server gets random secrets (JWT secret, service token, audit key), a random port (CHAT_LISTEN=127.0.0.1:0) and, on
// the embedded backend, a fresh data directory. Readiness is the one stdout line
// `chat-host listening on http://127.0.0.1:<port>`.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants as fsConstants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { backend, databaseUrl as defaultDatabaseUrl, echoServerLogs, hostBinary, redisUrl as defaultRedisUrl } from './config.mjs';

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 20_000;
const LOG_TAIL_CHARS = 16_000;
const READY_LINE = /^chat-host listening on (http:\/\/127\.0\.0\.1:(\d+))\s*$/;

/** Every live child, so an aborted run does not leave servers behind. */
const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

/**
 * Secrets shared by the servers of one cluster (the audit key too: entries one
 * instance seals, another verifies). `auditKey: null` leaves CHAT_AUDIT_KEY unset.
 */
export function newSecrets() {
  return {
    jwtSecret: `e2e-jwt-${randomBytes(24).toString('hex')}`,
    serviceToken: `e2e-svc-${randomBytes(24).toString('hex')}`,
    auditKey: `e2e-audit-${randomBytes(24).toString('hex')}`,
  };
}

/** Environment without anything of the caller's that could change the server's behaviour. */
function baseEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('CHAT_') || k === 'DATABASE_URL' || k === 'REDIS_URL' || k === 'RUST_LOG') continue;
    env[k] = v;
  }
  return env;
}

class LogTail {
  constructor(label, stream) {
    this.label = label;
    this.stream = stream;
    this.text = '';
  }
  push(chunk) {
    const s = chunk.toString('utf8');
    this.text = (this.text + s).slice(-LOG_TAIL_CHARS);
    if (echoServerLogs) process.stderr.write(s.replace(/^(?=.)/gm, `[${this.label} ${this.stream}] `));
  }
}

/**
 * A running chat-host process.
 *
 * Fields: `url`, `port`, `jwtSecret`, `serviceToken`, `label`, `dataDir`, `child`;
 * `exited` resolves to `{ code, signal }` when the process ends.
 */
export class ChatServer {
  constructor(opts) {
    Object.assign(this, opts);
    this.stopped = null;
  }

  /** The last lines of stderr and stdout, for failure messages. */
  logs() {
    return `--- ${this.label} stderr (tail)\n${this.stderr.text}\n--- ${this.label} stdout (tail)\n${this.stdout.text}`;
  }

  /** True while the process runs. */
  get running() {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * SIGTERM (graceful shutdown), then wait for the exit; SIGKILL after 20 s.
   * Resolves to `{ code, signal, killed }`. Idempotent.
   */
  stop({ removeData = true } = {}) {
    if (!this.stopped) {
      this.stopped = (async () => {
        let killed = false;
        if (this.running) {
          this.child.kill('SIGTERM');
          const timer = setTimeout(() => {
            killed = true;
            this.child.kill('SIGKILL');
          }, STOP_TIMEOUT_MS);
          await this.exited;
          clearTimeout(timer);
        }
        const result = { ...(await this.exited), killed };
        if (removeData && this.ownsDataDir) rmSync(this.dataDir, { recursive: true, force: true });
        rmSync(this.cwd, { recursive: true, force: true });
        return result;
      })();
    }
    return this.stopped;
  }
}

/**
 * Starts a server and waits until it listens.
 *
 * @param {object} [opts]
 * @param {Record<string,string>} [opts.env]  per-test overrides (CHAT_RATE_LIMIT_PER_MINUTE, ...)
 * @param {{jwtSecret:string, serviceToken:string, auditKey?:string|null}} [opts.secrets]  shared by a cluster
 * @param {string} [opts.databaseUrl]  mysql-redis: another DATABASE_URL (e.g. through a proxy)
 * @param {string} [opts.redisUrl]     mysql-redis: another REDIS_URL (e.g. through a proxy)
 * @param {string} [opts.redisClusterUrls] mysql-redis: a Redis Cluster's seed nodes
 *   (REDIS_CLUSTER_URLS) instead of REDIS_URL
 * @param {string} [opts.dataDir]      embedded: reuse this data directory (a restart); kept on stop
 * @param {string} [opts.label]        name in logs and failure messages
 * @returns {Promise<ChatServer>}
 */
export async function startServer(opts = {}) {
  const bin = hostBinary();
  try {
    accessSync(bin, fsConstants.X_OK);
  } catch {
    throw new Error(`CHAT_HOST_BIN=${bin} does not exist or is not executable`);
  }
  const secrets = opts.secrets ?? newSecrets();
  const label = opts.label ?? 'chat-host';
  // Own working directory: nothing (plugins-dist/, data/) is picked up from the repository.
  const cwd = mkdtempSync(join(tmpdir(), 'chat-e2e-cwd-'));
  const env = {
    ...baseEnv(),
    CHAT_LISTEN: '127.0.0.1:0',
    CHAT_JWT_SECRET: secrets.jwtSecret,
    CHAT_SERVICE_TOKEN: secrets.serviceToken,
    RUST_LOG: 'info',
  };
  if (secrets.auditKey) env.CHAT_AUDIT_KEY = secrets.auditKey;
  let dataDir = null;
  let ownsDataDir = false;
  if (backend === 'embedded') {
    dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'chat-e2e-data-'));
    ownsDataDir = !opts.dataDir;
    env.CHAT_DATA_DIR = dataDir;
  } else {
    env.DATABASE_URL = opts.databaseUrl ?? defaultDatabaseUrl;
    if (opts.redisClusterUrls) env.REDIS_CLUSTER_URLS = opts.redisClusterUrls;
    else env.REDIS_URL = opts.redisUrl ?? defaultRedisUrl;
  }
  Object.assign(env, opts.env ?? {});

  const child = spawn(bin, [], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  const stdout = new LogTail(label, 'stdout');
  const stderr = new LogTail(label, 'stderr');
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });

  const url = await new Promise((resolve, reject) => {
    let buffered = '';
    let settled = false;
    const fail = (why) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      rmSync(cwd, { recursive: true, force: true });
      if (ownsDataDir) rmSync(dataDir, { recursive: true, force: true });
      reject(new Error(`${label} (${bin}) ${why}\n--- stderr:\n${stderr.text}\n--- stdout:\n${stdout.text}`));
    };
    const timer = setTimeout(() => fail(`did not print "chat-host listening on http://…" within ${READY_TIMEOUT_MS / 1000} s`), READY_TIMEOUT_MS);
    child.on('error', (e) => fail(`could not be started: ${e.message}`));
    child.on('exit', (code, signal) => fail(`exited before listening (code ${code}, signal ${signal})`));
    child.stderr.on('data', (chunk) => stderr.push(chunk));
    child.stdout.on('data', (chunk) => {
      stdout.push(chunk);
      if (settled) return;
      buffered += chunk.toString('utf8');
      const lines = buffered.split('\n');
      buffered = lines.pop();
      for (const line of lines) {
        const m = READY_LINE.exec(line);
        if (m) {
          settled = true;
          clearTimeout(timer);
          resolve(m[1]);
          return;
        }
      }
    });
  });

  return new ChatServer({
    url,
    port: Number(new URL(url).port),
    jwtSecret: secrets.jwtSecret,
    serviceToken: secrets.serviceToken,
    secrets,
    label,
    dataDir,
    ownsDataDir,
    cwd,
    child,
    exited,
    stdout,
    stderr,
  });
}
