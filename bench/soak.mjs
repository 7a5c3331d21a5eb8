// Delivery soak: two chat-host instances (MariaDB + their own Redis) under steady
// traffic for DURATION seconds while faults are injected on a schedule, then a
// ledger check of what was stored against what every client surfaced.
//
// What it measures
//   - the delivery guarantee (docs/protocol.md § Delivery) under faults:
//       * every send acked ok is stored exactly once (by clientMessageId), no
//         clientMessageId is stored twice;
//       * every stored message reached every participant other than its sender
//         (live, or replayed on a reconnect) -> `lost` (0 expected);
//       * no ChatClient surfaced a message twice -> `duplicated` (0 expected);
//       * receipts agree with what the clients saw: a receipt with deliveredAt set
//         belongs to a user who received the message, and every received message's
//         receipt ends up with deliveredAt -> `receiptMismatches` (0 expected);
//   - send -> first-receipt latency per (message, recipient): p50/p99/max over
//     all samples, outside the fault windows (a sample whose [sent, received]
//     interval touches no window [fault start, fault end + 10 s]) and inside.
//
// Traffic: PAIRS 1:1 threads (client + freelancer) and one room of ROOM members,
// every user one `ChatClient` (clients/js/chat-client.mjs) on one of the two
// instances (the two ends of a pair on different instances). Sends come at RATE
// msg/s in total: a thread is picked at random (the room with probability
// ROOM_SHARE, otherwise a random pair), then a random participant of it sends.
// A send that times out or gets `unavailable` is retried with the same
// clientMessageId (as the protocol allows) until SEND_DEADLINE_MS has passed.
//
// Faults, every FAULT_EVERY s in rotation (FAULTS, default all four):
//   drop      DROP_FRACTION (10 %) of the sockets closed at the transport
//             (socket.io.engine.close()); they reconnect with their cursor;
//   instance  SIGKILL of one instance (alternating), restarted on the same port
//             after 5 s; its clients reconnect to the same URL;
//   redis     SIGKILL of this run's redis-server, restarted empty on the same
//             port after 3 s;
//   plugin    contact-filter uploaded (new version) through the admin API of one
//             instance, then disabled and enabled again, each step awaited on
//             both instances (bodies contain nothing it masks).
// Each fault ends when the system is whole again (sockets ready, instance up,
// /readyz 200, plugin state on both instances); start/end are in the result.
//
// End: traffic stops, the harness waits for the last sends, for every socket to
// be connected and ready, and GRACE s. Then it takes a "before the sweep" view
// (`lostBeforeSweep`: what connected clients still had not received), closes
// every socket once more at the transport (the sweep: each reconnect gets what it
// is owed), and runs the ledger check. Stored data comes from MariaDB through
// mysql2 when tests/e2e/node_modules has it, else from the servers' HTTP API
// (GET /api/threads/{id}/messages, all pages, with receipts); either way the
// `mariadb` CLI cross-checks the counts.
//
// Run it through the launcher (it prepares the binary, the database and a run dir):
//   bash bench/soak.sh                              # 30 min, 50 msg/s
//   DURATION=240 RATE=30 TAG=short bash bench/soak.sh
// Result: bench/results/soak/soak-<DURATION>s-<TAG>.json; exit 1 when lost,
// duplicated, receipt mismatches or acked-but-not-stored are not 0 (2: the run
// itself failed). Env (defaults): DURATION 1800, RATE 50, PAIRS 50, ROOM 20,
// ROOM_SHARE 0.2, FAULT_EVERY min(150, DURATION/(faults+1)) but >= 20, FAULTS
// drop,instance,redis,plugin, DROP_FRACTION 0.1, GRACE 30, SWEEP 1,
// SEND_DEADLINE_MS 30000, TAG (a timestamp), SOAK_RUST_LOG (info), SOAK_SELFTEST (0; 1:
// a negative control, the harness forgets some receipts and doubles others, so the
// ledger must report lost, duplicated and mismatched receipts and exit 1).
// Set by soak.sh: SOAK_RUN_DIR, SOAK_BIN, SOAK_DATABASE_URL, SOAK_PLUGINS.

import { spawn, execFile } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

import { ChatClient } from '../clients/js/chat-client.mjs';

const e2eRequire = createRequire(new URL('../tests/e2e/package.json', import.meta.url));
const { io } = e2eRequire('socket.io-client');
let mysql = null;
try {
  mysql = e2eRequire('mysql2/promise');
} catch {
  /* absent: the ledger reads the HTTP API */
}

const REPO = fileURLToPath(new URL('..', import.meta.url));

// --- settings ---------------------------------------------------------------------

const env = process.env;
const num = (name, dflt) => (env[name] === undefined || env[name] === '' ? dflt : Number(env[name]));
const DURATION_S = num('DURATION', 1800);
const RATE = num('RATE', 50);
const PAIRS = num('PAIRS', 50);
const ROOM = num('ROOM', 20);
const ROOM_SHARE = num('ROOM_SHARE', 0.2);
const FAULT_KINDS = (env.FAULTS ?? 'drop,instance,redis,plugin').split(',').map((s) => s.trim()).filter(Boolean);
// Scales down for short runs so that every kind happens at least once.
const FAULT_EVERY_S = num('FAULT_EVERY', Math.max(20, Math.min(150, Math.floor(DURATION_S / (FAULT_KINDS.length + 1)))));
const DROP_FRACTION = num('DROP_FRACTION', 0.1);
const GRACE_S = num('GRACE', 30);
const SWEEP = env.SWEEP !== '0';
const SEND_DEADLINE_MS = num('SEND_DEADLINE_MS', 30_000);
const TAG = env.TAG || new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 13);
const RUN_DIR = env.SOAK_RUN_DIR;
const BIN = env.SOAK_BIN;
const DATABASE_URL = env.SOAK_DATABASE_URL || 'mysql://root@127.0.0.1:3306/chat_host_soak';
const PLUGIN_BUILD_DIR = env.SOAK_PLUGINS;
const RUST_LOG = env.SOAK_RUST_LOG || 'info';
/** A fault's window extends this long past its end. */
const WINDOW_TAIL_MS = 10_000;
/** A fault does not start later than this before the end of traffic. */
const FAULT_TAIL_MS = 20_000;
const INSTANCE_DOWN_MS = 5_000;
const REDIS_DOWN_MS = 3_000;
const PLUGIN = 'contact-filter';
/** SOAK_SELFTEST=1: the harness drops every 500th receipt it records and doubles every 701st, to show the ledger catches both. */
const SELFTEST = env.SOAK_SELFTEST === '1';
let selftestCount = 0;

for (const [k, v] of Object.entries({ SOAK_RUN_DIR: RUN_DIR, SOAK_BIN: BIN })) {
  if (!v) {
    console.error(`soak: ${k} is not set; run bench/soak.sh`);
    process.exit(2);
  }
}
for (const k of FAULT_KINDS) {
  if (!['drop', 'instance', 'redis', 'plugin'].includes(k)) {
    console.error(`soak: unknown fault kind ${k} in FAULTS`);
    process.exit(2);
  }
}

// --- small helpers ------------------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Milliseconds since the harness started (monotonic); every recorded time uses it. */
const now = () => performance.now();
const epochOf = (t) => performance.timeOrigin + t;
const iso = (t) => new Date(epochOf(t)).toISOString();
const sec = (t) => Math.round(t / 100) / 10;
const log = (...a) => console.log(`[soak ${sec(now()).toFixed(1).padStart(7)}s]`, ...a);

async function waitFor(fn, { timeout, interval = 200 }) {
  const deadline = now() + timeout;
  for (;;) {
    try {
      if (await fn()) return true;
    } catch {
      /* not yet */
    }
    if (now() > deadline) return false;
    await sleep(interval);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function stats(values) {
  if (values.length === 0) return { count: 0 };
  const s = Float64Array.from(values).sort();
  const q = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
  const r = (x) => Math.round(x * 10) / 10;
  let sum = 0;
  for (const v of s) sum += v;
  return { count: s.length, p50: r(q(0.5)), p90: r(q(0.9)), p99: r(q(0.99)), max: r(s[s.length - 1]), mean: r(sum / s.length) };
}

/** An HS256 client JWT (claims sub, role, exp). */
function mintToken(secret, sub, role) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = b64({ alg: 'HS256', typ: 'JWT' });
  const iat = Math.floor(Date.now() / 1000);
  const body = b64({ sub, role, iat, exp: iat + 3600 });
  const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

/** A body contact-filter leaves alone (no digit runs, no addresses). */
function bodyOf(seq) {
  let s = '';
  for (let n = seq; n > 0; n = Math.floor(n / 26)) s = String.fromCharCode(97 + (n % 26)) + s;
  return `soak message ${s || 'a'}`;
}

// --- processes: redis-server and chat-host, owned by this harness ----------------------

const secrets = {
  jwt: `soak-jwt-${randomBytes(24).toString('hex')}`,
  service: `soak-svc-${randomBytes(24).toString('hex')}`,
};
const PID_DIR = join(RUN_DIR, 'pids');
mkdirSync(PID_DIR, { recursive: true });
/** Every live child, killed on any exit. */
const live = new Set();
let stopping = false;

process.on('exit', () => {
  for (const child of live) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

/**
 * A supervised process. Its own process group (detached), so a terminal's Ctrl-C
 * reaches the harness only and the harness stops it; its pid is kept in
 * $SOAK_RUN_DIR/pids/<name>.pid so the launcher can clean up after a harness
 * that was killed outright.
 */
class Proc {
  constructor(name, cmd, args, procEnv, { cwd, readyLine } = {}) {
    Object.assign(this, { name, cmd, args, procEnv, cwd, readyLine });
    this.child = null;
    this.starts = 0;
  }

  get running() {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts it; resolves once it is ready (its stdout line, or `probe`). */
  async start(probe) {
    if (stopping) throw new Error(`${this.name}: not started, the soak is stopping`);
    this.starts++;
    const errPath = join(RUN_DIR, `${this.name}.stderr.log`);
    const outPath = join(RUN_DIR, `${this.name}.stdout.log`);
    const marker = `\n===== soak: start #${this.starts} of ${this.name} at ${new Date().toISOString()} =====\n`;
    for (const p of [errPath, outPath]) writeFileSync(p, marker, { flag: 'a' });
    const errFd = openSync(errPath, 'a');
    const child = spawn(this.cmd, this.args, {
      env: this.procEnv,
      cwd: this.cwd,
      detached: true,
      stdio: ['ignore', 'pipe', errFd],
    });
    closeSync(errFd);
    this.child = child;
    live.add(child);
    writeFileSync(join(PID_DIR, `${this.name}.pid`), `${child.pid}\n`);
    const out = createWriteStream(outPath, { flags: 'a' });
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        live.delete(child);
        rmSync(join(PID_DIR, `${this.name}.pid`), { force: true });
        resolve({ code, signal });
      });
    });
    const ready = new Promise((resolve, reject) => {
      let buffered = '';
      let done = false;
      const finish = (err) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        err ? reject(err) : resolve();
      };
      const timer = setTimeout(() => finish(new Error(`${this.name} not ready within 60 s (see ${errPath})`)), 60_000);
      child.on('error', (e) => finish(new Error(`${this.name}: ${e.message}`)));
      child.on('exit', (code, signal) => finish(new Error(`${this.name} exited before ready (code ${code}, signal ${signal}; see ${errPath})`)));
      child.stdout.on('data', (chunk) => {
        out.write(chunk);
        if (done || !this.readyLine) return;
        buffered += chunk.toString('utf8');
        const lines = buffered.split('\n');
        buffered = lines.pop();
        if (lines.some((l) => this.readyLine.test(l))) finish();
      });
      if (!this.readyLine && probe) {
        waitFor(probe, { timeout: 30_000, interval: 100 }).then((ok) => finish(ok ? undefined : new Error(`${this.name}: probe failed`)));
      }
    });
    try {
      await ready;
    } catch (e) {
      this.kill('SIGKILL');
      throw e;
    }
  }

  kill(signal) {
    if (this.running) {
      try {
        process.kill(this.child.pid, signal);
      } catch {
        /* gone */
      }
    }
  }

  /** SIGTERM (or `signal`), SIGKILL after `graceMs`; resolves when it is gone. */
  async stop(signal = 'SIGTERM', graceMs = 15_000) {
    if (!this.running) return this.exited;
    this.kill(signal);
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    const r = await this.exited;
    clearTimeout(timer);
    return r;
  }
}

/** Redis answers PING (a raw RESP round trip; no client library needed). */
function redisPing(port) {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    let data = '';
    const done = (v) => {
      s.destroy();
      resolve(v);
    };
    s.setTimeout(1000, () => done(false));
    s.on('error', () => done(false));
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      data += d;
      if (data.includes('\r\n')) done(data.startsWith('+PONG'));
    });
  });
}

/** Environment without the caller's chat-host settings (as tests/e2e/lib/server.mjs does). */
function baseEnv() {
  const out = {};
  for (const [k, v] of Object.entries(env)) {
    if (k.startsWith('CHAT_') || k === 'DATABASE_URL' || k === 'REDIS_URL' || k === 'RUST_LOG') continue;
    out[k] = v;
  }
  return out;
}

const ports = { redis: await freePort(), a: await freePort(), b: await freePort() };
const redisDir = join(RUN_DIR, 'redis');
mkdirSync(redisDir, { recursive: true });
const redis = new Proc('redis', 'redis-server', [
  '--port', String(ports.redis), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
  '--dir', redisDir, '--daemonize', 'no', '--loglevel', 'notice',
], baseEnv(), { cwd: redisDir });

/** The two chat-host instances, each with its own cwd, data dir and (empty) plugin dir. */
const instances = ['a', 'b'].map((name) => {
  const dir = join(RUN_DIR, name);
  mkdirSync(join(dir, 'data'), { recursive: true });
  mkdirSync(join(dir, 'plugins'), { recursive: true });
  const proc = new Proc(name, BIN, [], {
    ...baseEnv(),
    CHAT_LISTEN: `127.0.0.1:${ports[name]}`,
    CHAT_JWT_SECRET: secrets.jwt,
    CHAT_SERVICE_TOKEN: secrets.service,
    DATABASE_URL,
    REDIS_URL: `redis://127.0.0.1:${ports.redis}`,
    CHAT_RATE_LIMIT_PER_MINUTE: '1000000',
    CHAT_MAX_CONNECTIONS_PER_ADDRESS: '0',
    CHAT_PING_INTERVAL_MS: '5000',
    CHAT_PING_TIMEOUT_MS: '5000',
    CHAT_DATA_DIR: join(dir, 'data'),
    CHAT_PLUGIN_DIR: join(dir, 'plugins'),
    RUST_LOG,
  }, { cwd: dir, readyLine: /^chat-host listening on http:\/\/127\.0\.0\.1:\d+\s*$/ });
  proc.url = `http://127.0.0.1:${ports[name]}`;
  return proc;
});

async function startRedis() {
  // Empty: no persistence is configured, and nothing is left in its dir.
  for (const f of ['dump.rdb', 'appendonly.aof']) rmSync(join(redisDir, f), { force: true, recursive: true });
  await redis.start(() => redisPing(ports.redis));
}

/** Starts an instance on its fixed port, retrying a bind that fails right after a kill. */
async function startInstance(inst) {
  for (let attempt = 1; ; attempt++) {
    try {
      await inst.start();
      return;
    } catch (e) {
      if (attempt >= 3 || stopping) throw e;
      log(`${inst.name}: start failed (${e.message.split('\n')[0]}), retrying`);
      await sleep(1000);
    }
  }
}

// --- HTTP API -------------------------------------------------------------------------

async function http(inst, method, path, body) {
  const headers = { accept: 'application/json', authorization: `Bearer ${secrets.service}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(new URL(path, inst.url), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}

async function httpOk(inst, method, path, body) {
  const r = await http(inst, method, path, body);
  if (r.status < 200 || r.status >= 300) throw new Error(`${method} ${path} on ${inst.name}: ${r.status} ${r.text}`);
  return r.json;
}

const readyz = async (inst) => (await http(inst, 'GET', '/readyz')).status === 200;

// --- users, threads, clients ----------------------------------------------------------------

/** userId -> user: { id, role, inst, chat, threads, events... } */
const users = new Map();
/** threadId -> participant ids */
const threads = new Map();
const pairThreads = [];
let roomThread = null;

/** messageId -> Map(userId -> first receipt time); the sender excluded. */
const receipts = new Map();
/** messageId -> { threadId, senderId, clientMessageId } as surfaced. */
const surfaced = new Map();
let duplicated = 0;
const duplicates = [];
let receivedLive = 0;
let receivedReplay = 0;
const disconnectReasons = {};
const clientIncidents = [];

function makeUser(id, role, inst) {
  const user = { id, role, inst, threads: [], readyCount: 0, lastReadyAt: 0, connected: false, replaying: true, surfacedCount: new Map() };
  users.set(id, user);
  return user;
}

function connectUser(user) {
  const inst = instances[user.inst];
  const chat = new ChatClient(io, inst.url, {
    token: () => mintToken(secrets.jwt, user.id, user.role),
    ackTimeout: 5_000,
    socketOptions: {
      forceNew: true,
      reconnection: true,
      reconnectionAttempts: Infinity,
      reconnectionDelay: 500,
      reconnectionDelayMax: 2_000,
      timeout: 5_000,
    },
  });
  user.chat = chat;
  const socket = chat.socket;
  socket.on('connect', () => {
    user.connected = true;
    user.replaying = true; // until chat:ready: what arrives now is the connect replay
  });
  socket.on('disconnect', (reason) => {
    user.connected = false;
    disconnectReasons[reason] = (disconnectReasons[reason] ?? 0) + 1;
    // socket.io does not reconnect after a server-side disconnect: do it, and say so.
    if (reason === 'io server disconnect' && !stopping) {
      clientIncidents.push({ at: sec(now()), user: user.id, what: 'server disconnected the socket; reconnecting by hand' });
      setTimeout(() => socket.connect(), 1000);
    }
  });
  socket.on('connect_error', (e) => {
    // A refused handshake (middleware error) is not retried by socket.io by itself.
    if (!socket.active && !stopping) {
      clientIncidents.push({ at: sec(now()), user: user.id, what: `connect_error without retry: ${e.message}` });
      setTimeout(() => socket.connect(), 1000);
    }
  });
  chat.on('ready', () => {
    user.replaying = false;
    user.readyCount++;
    user.lastReadyAt = now();
  });
  chat.on('message', (m) => {
    if (SELFTEST) {
      // Negative control: forget some receipts and surface some twice; the ledger must fail.
      selftestCount++;
      if (selftestCount % 500 === 0) return;
      if (selftestCount % 701 === 0) surface(user, m);
    }
    surface(user, m);
  });
  return chat.ready;
}

/** Records what a ChatClient surfaced (its 'message' event). */
function surface(user, m) {
  const t = now();
  const n = (user.surfacedCount.get(m.id) ?? 0) + 1;
  user.surfacedCount.set(m.id, n);
  if (n > 1) {
    duplicated++;
    if (duplicates.length < 50) duplicates.push({ user: user.id, messageId: m.id, clientMessageId: m.clientMessageId, times: n, at: sec(t) });
  }
  if (!surfaced.has(m.id)) surfaced.set(m.id, { threadId: m.threadId, senderId: m.senderId, clientMessageId: m.clientMessageId });
  if (m.senderId === user.id) return; // the sender's own message (a replay after a lost send ack)
  let per = receipts.get(m.id);
  if (!per) receipts.set(m.id, (per = new Map()));
  if (!per.has(user.id)) {
    per.set(user.id, t);
    if (user.replaying) receivedReplay++;
    else receivedLive++;
  }
}

async function setup() {
  const [a] = instances;
  const putUser = (u) => httpOk(a, 'PUT', `/api/users/${u.id}`, { displayName: `Soak ${u.id}`, role: u.role });
  const pad = (n, w) => String(n).padStart(w, '0');
  const pending = [];
  for (let k = 1; k <= PAIRS; k++) {
    // The two ends of a pair on different instances: every pair message crosses the cluster.
    const c = makeUser(`c-${pad(k, 3)}`, 'client', k % 2);
    const f = makeUser(`f-${pad(k, 3)}`, 'freelancer', (k + 1) % 2);
    pending.push(putUser(c), putUser(f));
  }
  for (let k = 1; k <= ROOM; k++) {
    const u = makeUser(`r-${pad(k, 3)}`, k % 2 ? 'client' : 'freelancer', k % 2);
    pending.push(putUser(u));
  }
  await Promise.all(pending);
  for (let k = 1; k <= PAIRS; k++) {
    const id = `pair-${pad(k, 3)}`;
    const members = [`c-${pad(k, 3)}`, `f-${pad(k, 3)}`];
    await httpOk(a, 'POST', '/api/threads', { id, title: `Soak pair ${k}`, participantIds: members });
    threads.set(id, members);
    pairThreads.push(id);
  }
  if (ROOM > 1) {
    const members = [...users.keys()].filter((u) => u.startsWith('r-'));
    await httpOk(a, 'POST', '/api/threads', { id: 'room', title: 'Soak room', participantIds: members });
    threads.set('room', members);
    roomThread = 'room';
  }
  for (const [t, members] of threads) for (const m of members) users.get(m).threads.push(t);
  const connectTimes = [];
  const all = [...users.values()];
  for (let i = 0; i < all.length; i += 20) {
    await Promise.all(all.slice(i, i + 20).map(async (u) => {
      const t = now();
      await connectUser(u);
      connectTimes.push(now() - t);
    }));
  }
  return connectTimes;
}

// --- traffic ---------------------------------------------------------------------------

/** Every send: { seq, cmid, threadId, sender, sentAt, ackAt, ok, messageId, attempts, codes, error } */
const sends = [];
const inflight = new Set();
const errorsByCode = {};
const RETRYABLE = new Set(['timeout', 'unavailable']);

function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

function launchSend(seq) {
  const threadId = roomThread && (pairThreads.length === 0 || Math.random() < ROOM_SHARE) ? roomThread : pick(pairThreads);
  const sender = users.get(pick(threads.get(threadId)));
  const rec = {
    seq,
    cmid: `soak-${seq}`,
    threadId,
    sender: sender.id,
    sentAt: now(),
    ackAt: null,
    ok: false,
    messageId: null,
    attempts: 0,
    codes: [],
    error: null,
  };
  sends.push(rec);
  const body = bodyOf(seq);
  const p = (async () => {
    for (;;) {
      rec.attempts++;
      try {
        // attempts: 1 so every retry is the harness's and is recorded; same clientMessageId each time.
        const message = await sender.chat.send(threadId, body, { clientMessageId: rec.cmid, attempts: 1 });
        rec.ok = true;
        rec.ackAt = now();
        rec.messageId = message.id;
        return;
      } catch (e) {
        const code = e.code ?? 'exception';
        rec.codes.push(code);
        errorsByCode[code] = (errorsByCode[code] ?? 0) + 1;
        if (!RETRYABLE.has(code) || now() - rec.sentAt > SEND_DEADLINE_MS) {
          rec.error = code;
          rec.ackAt = now();
          return;
        }
        if (code !== 'timeout') await sleep(500);
      }
    }
  })();
  inflight.add(p);
  p.finally(() => inflight.delete(p));
}

async function traffic(startAt, endAt) {
  let issued = 0;
  const tick = Math.max(5, Math.min(50, 1000 / RATE));
  let nextReport = startAt + 30_000;
  while (now() < endAt && !stopping) {
    const due = Math.floor(((now() - startAt) / 1000) * RATE);
    while (issued < due) launchSend(++issued);
    if (now() >= nextReport) {
      nextReport += 30_000;
      const acked = sends.filter((s) => s.ok).length;
      const failed = sends.filter((s) => s.error).length;
      const connected = [...users.values()].filter((u) => u.connected).length;
      log(`traffic: sent ${sends.length}, acked ${acked}, failed ${failed}, in flight ${inflight.size}, sockets connected ${connected}/${users.size}`);
    }
    await sleep(tick);
  }
}

// --- faults ----------------------------------------------------------------------------

const faults = [];

/** Resolves when every given user reconnected and got chat:ready after `since`. */
function allReadySince(list, since, timeout) {
  return waitFor(() => list.every((u) => u.connected && !u.replaying && u.lastReadyAt > since), { timeout, interval: 100 });
}

const faultActions = {
  async drop(f) {
    const all = [...users.values()].filter((u) => u.connected);
    const n = Math.max(1, Math.ceil(users.size * DROP_FRACTION));
    for (let i = all.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [all[i], all[j]] = [all[j], all[i]];
    }
    const victims = all.slice(0, n);
    f.target = `${victims.length} sockets`;
    f.detail.users = victims.map((u) => u.id);
    const since = now();
    for (const u of victims) u.chat.socket.io.engine?.close();
    f.detail.allReconnected = await allReadySince(victims, since, 30_000);
  },
  async instance(f) {
    const inst = instances[(f.round + 1) % 2]; // b first, then a, ...
    const own = [...users.values()].filter((u) => instances[u.inst] === inst);
    f.target = inst.name;
    const since = now();
    inst.kill('SIGKILL');
    f.detail.exit = await inst.exited;
    f.detail.killedAt = sec(now());
    await sleep(INSTANCE_DOWN_MS);
    await startInstance(inst);
    f.detail.restartedAt = sec(now());
    f.detail.allReconnected = await allReadySince(own, since, 60_000);
    f.detail.notReady = own.filter((u) => !(u.connected && u.lastReadyAt > since)).map((u) => u.id);
  },
  async redis(f) {
    f.target = 'redis-server';
    redis.kill('SIGKILL');
    f.detail.exit = await redis.exited;
    await sleep(REDIS_DOWN_MS);
    await startRedis();
    f.detail.restartedAt = sec(now());
    f.detail.readyz = await waitFor(async () => (await Promise.all(instances.map(readyz))).every(Boolean), { timeout: 30_000 });
  },
  async plugin(f) {
    const via = instances[f.round % 2];
    const other = instances[(f.round + 1) % 2];
    f.target = `${PLUGIN} via ${via.name}`;
    const version = `0.1.0-soak.${f.round + 1}`;
    const manifest = readFileSync(join(PLUGIN_BUILD_DIR, `${PLUGIN}.toml`), 'utf8').replace(/^version = .*$/m, `version = "${version}"`);
    const wasm = readFileSync(join(PLUGIN_BUILD_DIR, `${PLUGIN}.wasm`));
    const view = async (inst) => (await httpOk(inst, 'GET', '/admin/plugins')).find((p) => p.name === PLUGIN);
    const onBoth = (check) => waitFor(async () => (await Promise.all(instances.map(view))).every((v) => v && check(v)), { timeout: 15_000 });
    const steps = [];
    const step = async (name, fn, check) => {
      const t = now();
      await fn();
      const ok = await onBoth(check);
      steps.push({ step: name, ok, ms: Math.round(now() - t) });
      if (!ok) f.ok = false;
    };
    await step('upload', () => httpOk(via, 'PUT', `/admin/plugins/${PLUGIN}`, { manifest, wasmBase64: wasm.toString('base64') }), (v) => v.version === version && v.enabled);
    await step('disable', () => httpOk(other, 'POST', `/admin/plugins/${PLUGIN}/disable`), (v) => v.version === version && !v.enabled);
    await step('enable', () => httpOk(via, 'POST', `/admin/plugins/${PLUGIN}/enable`), (v) => v.version === version && v.enabled);
    f.detail.steps = steps;
    const v = await view(via);
    f.detail.stats = v?.stats;
  },
};

async function faultLoop(trafficStart, trafficEnd) {
  let next = trafficStart + FAULT_EVERY_S * 1000;
  for (let index = 0; FAULT_KINDS.length > 0 && !stopping; index++) {
    while (now() < next && !stopping) await sleep(Math.min(500, next - now()));
    if (stopping || now() > trafficEnd - FAULT_TAIL_MS) return;
    const kind = FAULT_KINDS[index % FAULT_KINDS.length];
    // round: the how-manieth of its kind, so the instance killed and the plugin's entry point alternate.
    const round = faults.filter((x) => x.kind === kind).length;
    const f = { kind, index, round, target: null, start: now(), end: null, ok: true, detail: {} };
    faults.push(f);
    log(`fault ${index + 1}: ${kind} begins`);
    try {
      await faultActions[kind](f);
    } catch (e) {
      f.ok = false;
      f.detail.error = e.message;
      log(`fault ${index + 1}: ${kind} failed: ${e.message}`);
    }
    f.end = now();
    log(`fault ${index + 1}: ${kind} on ${f.target} ends after ${((f.end - f.start) / 1000).toFixed(1)} s${f.ok ? '' : ' (NOT OK)'}`);
    next = Math.max(next + FAULT_EVERY_S * 1000, f.end + 5_000);
  }
}

// --- stored data and the ledger ----------------------------------------------------------------

/** Every stored message with receipts: [{ id, threadId, senderId, clientMessageId, createdAt, receipts: [{ userId, deliveredAt }] }]. */
async function storedMessages() {
  if (mysql) {
    const u = new URL(DATABASE_URL);
    const conn = await mysql.createConnection({ host: u.hostname, port: Number(u.port || 3306), user: decodeURIComponent(u.username || 'root'), password: decodeURIComponent(u.password), database: u.pathname.slice(1), supportBigNumbers: true, bigNumberStrings: true });
    try {
      const [msgs] = await conn.query('SELECT id, thread_id, sender_id, client_message_id, created_at FROM chat_message ORDER BY id');
      const [recs] = await conn.query('SELECT message_id, user_id, delivered_at FROM chat_message_receipt');
      const byId = new Map(msgs.map((m) => [String(m.id), { id: String(m.id), threadId: m.thread_id, senderId: m.sender_id, clientMessageId: m.client_message_id, createdAtMs: Number(m.created_at), receipts: [] }]));
      for (const r of recs) byId.get(String(r.message_id))?.receipts.push({ userId: r.user_id, deliveredAtMs: r.delivered_at === null ? null : Number(r.delivered_at) });
      return { source: 'mariadb (mysql2)', messages: [...byId.values()] };
    } finally {
      await conn.end();
    }
  }
  const inst = instances.find((i) => i.running) ?? instances[0];
  const out = [];
  for (const threadId of threads.keys()) {
    let beforeId;
    for (;;) {
      const q = new URLSearchParams({ limit: '100' });
      if (beforeId) q.set('beforeId', beforeId);
      const page = await httpOk(inst, 'GET', `/api/threads/${threadId}/messages?${q}`);
      for (const m of page.messages) {
        out.push({
          id: m.id,
          threadId: m.threadId,
          senderId: m.senderId,
          clientMessageId: m.clientMessageId,
          createdAtMs: Date.parse(m.createdAt),
          receipts: (m.receipts ?? []).map((r) => ({ userId: r.userId, deliveredAtMs: r.deliveredAt ? Date.parse(r.deliveredAt) : null })),
        });
      }
      if (!page.hasMore || page.messages.length === 0) break;
      beforeId = page.messages[0].id;
    }
  }
  return { source: `HTTP API of ${inst.name} (GET /api/threads/{id}/messages)`, messages: out };
}

/** Counts straight from MariaDB through the `mariadb` (or `mysql`) CLI, to cross-check the source. */
function dbCounts() {
  const u = new URL(DATABASE_URL);
  const sql = `SELECT (SELECT COUNT(*) FROM chat_message), (SELECT COUNT(DISTINCT sender_id, client_message_id) FROM chat_message),
    (SELECT COUNT(*) FROM chat_message_receipt), (SELECT COUNT(*) FROM chat_message_receipt WHERE delivered_at IS NOT NULL)`;
  const args = ['-h', u.hostname, '-P', u.port || '3306', '-u', decodeURIComponent(u.username || 'root'), '-N', '-B', u.pathname.slice(1), '-e', sql];
  if (u.password) args.unshift(`-p${decodeURIComponent(u.password)}`);
  const run = (cli) => new Promise((resolve, reject) => execFile(cli, args, (err, stdout) => (err ? reject(err) : resolve(stdout))));
  return run('mariadb').catch(() => run('mysql')).then((stdout) => {
    const [messages, distinctClientIds, receiptRows, delivered] = stdout.trim().split(/\s+/).map(Number);
    return { messages, distinctClientIds, receiptRows, delivered };
  }).catch((e) => ({ error: e.message }));
}

const CAP = 50;
function capped(list) {
  return { count: list.length, first: list.slice(0, CAP) };
}

function ledger(stored, preSweepAt) {
  const byCmid = new Map(); // `${sender}\0${cmid}` -> stored messages
  const storedById = new Map();
  for (const m of stored) {
    storedById.set(m.id, m);
    const k = `${m.senderId}\0${m.clientMessageId}`;
    if (!byCmid.has(k)) byCmid.set(k, []);
    byCmid.get(k).push(m);
  }
  const storedTwice = [...byCmid.values()].filter((l) => l.length > 1).map((l) => ({ clientMessageId: l[0].clientMessageId, ids: l.map((m) => m.id) }));
  const ackedMissing = [];
  const ackedIdMismatch = [];
  const sendOf = new Map();
  for (const s of sends) {
    const found = byCmid.get(`${s.sender}\0${s.cmid}`);
    if (found) {
      sendOf.set(found[0].id, s);
      s.storedId = found[0].id;
    }
    if (!s.ok) continue;
    if (!found) ackedMissing.push({ clientMessageId: s.cmid, thread: s.threadId, sender: s.sender, ackedId: s.messageId });
    else if (found[0].id !== s.messageId) ackedIdMismatch.push({ clientMessageId: s.cmid, ackedId: s.messageId, storedId: found[0].id });
  }
  const storedUnacked = stored.filter((m) => !sendOf.get(m.id)?.ok).map((m) => ({ id: m.id, clientMessageId: m.clientMessageId, sendError: sendOf.get(m.id)?.error ?? 'unknown send' }));
  const phantom = [...surfaced.keys()].filter((id) => !storedById.has(id)).map((id) => ({ id, ...surfaced.get(id) }));

  const lost = [];
  const lostBeforeSweep = [];
  const deliveredNotReceived = [];
  const receivedNotDelivered = [];
  const deliveredEarly = [];
  const missingReceipt = [];
  const latAll = [];
  const latOutside = [];
  const latInside = [];
  const windows = faults.map((f) => [f.start, (f.end ?? now()) + WINDOW_TAIL_MS]);
  const touchesWindow = (a, b) => windows.some(([ws, we]) => a <= we && b >= ws);
  for (const m of stored) {
    const participants = threads.get(m.threadId) ?? [];
    const got = receipts.get(m.id) ?? new Map();
    const rec = new Map(m.receipts.map((r) => [r.userId, r]));
    const s = sendOf.get(m.id);
    for (const userId of participants) {
      const r = rec.get(userId);
      if (!r) missingReceipt.push({ id: m.id, user: userId });
      if (userId === m.senderId) continue;
      const t = got.get(userId);
      const ctx = { id: m.id, clientMessageId: m.clientMessageId, thread: m.threadId, sender: m.senderId, user: userId, createdAt: new Date(m.createdAtMs).toISOString() };
      if (t === undefined) lost.push({ ...ctx, deliveredAt: r?.deliveredAtMs ? new Date(r.deliveredAtMs).toISOString() : null });
      if (t === undefined || t > preSweepAt) lostBeforeSweep.push({ ...ctx, receivedAtS: t === undefined ? null : sec(t) });
      if (r?.deliveredAtMs != null && t === undefined) deliveredNotReceived.push({ ...ctx, deliveredAt: new Date(r.deliveredAtMs).toISOString() });
      if (r && r.deliveredAtMs == null && t !== undefined) receivedNotDelivered.push({ ...ctx, receivedAtS: sec(t) });
      // deliveredAt is written after the device's ack; far earlier than the first receipt is wrong.
      if (r?.deliveredAtMs != null && t !== undefined && r.deliveredAtMs < epochOf(t) - 1000) deliveredEarly.push({ ...ctx, deliveredAt: new Date(r.deliveredAtMs).toISOString(), receivedAt: iso(t) });
      if (t !== undefined && s) {
        const ms = t - s.sentAt;
        latAll.push(ms);
        (touchesWindow(s.sentAt, t) ? latInside : latOutside).push(ms);
      }
    }
  }
  return {
    storedTwice, ackedMissing, ackedIdMismatch, storedUnacked, phantom,
    lost, lostBeforeSweep, deliveredNotReceived, receivedNotDelivered, deliveredEarly, missingReceipt,
    latency: { all: stats(latAll), outsideFaults: stats(latOutside), insideFaults: stats(latInside) },
  };
}

/** Every send with its per-recipient first receipts, one JSON line each, into the run dir. */
function writeRecords(trafficStart) {
  const lines = [];
  for (const s of sends) {
    const id = s.messageId ?? s.storedId ?? null;
    const got = id ? receipts.get(id) : undefined;
    lines.push(JSON.stringify({
      clientMessageId: s.cmid, thread: s.threadId, sender: s.sender, messageId: id, ok: s.ok, error: s.error,
      attempts: s.attempts, codes: s.codes, sentAt: iso(s.sentAt), sentS: sec(s.sentAt - trafficStart),
      ackMs: s.ackAt === null ? null : Math.round((s.ackAt - s.sentAt) * 10) / 10,
      receiptsMs: got ? Object.fromEntries([...got].map(([u, t]) => [u, Math.round((t - s.sentAt) * 10) / 10])) : {},
    }));
  }
  writeFileSync(join(RUN_DIR, 'sends.ndjson'), `${lines.join('\n')}\n`);
}

// --- the run -------------------------------------------------------------------------------

async function stopAll() {
  stopping = true;
  for (const u of users.values()) {
    try {
      u.chat?.close();
    } catch {
      /* closed */
    }
  }
  // The instances first (graceful: they still reach Redis while shutting down), then Redis.
  await Promise.all(instances.map((i) => i.stop('SIGTERM', 15_000)));
  await redis.stop('SIGTERM', 5_000);
}

let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, async () => {
    if (interrupted) return;
    interrupted = true;
    log(`${sig}: stopping the servers and redis-server`);
    await stopAll();
    process.exit(130);
  });
}

async function main() {
  const commit = await new Promise((resolve) => execFile('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD'], (e, out) => resolve(e ? null : out.trim())));
  log(`run dir ${RUN_DIR} (server logs: a.stderr.log, b.stderr.log, redis.stderr.log/stdout.log)`);
  log(`duration ${DURATION_S} s, ${RATE} msg/s, ${PAIRS} pairs + room of ${ROOM} (${ROOM_SHARE * 100} % of sends), faults ${FAULT_KINDS.join(',')} every ${FAULT_EVERY_S} s, ledger from ${mysql ? 'mysql2' : 'the HTTP API'}`);
  await startRedis();
  await startInstance(instances[0]); // one at a time: the first applies the migrations
  await startInstance(instances[1]);
  log(`redis-server :${ports.redis}, a ${instances[0].url}, b ${instances[1].url}`);
  const connectTimes = await setup();
  log(`${users.size} users connected (${PAIRS} pair threads${roomThread ? ', 1 room' : ''})`);

  const trafficStart = now();
  const trafficEnd = trafficStart + DURATION_S * 1000;
  const faultRun = faultLoop(trafficStart, trafficEnd);
  await traffic(trafficStart, trafficEnd);
  const trafficStopped = now();
  log(`traffic stopped: ${sends.length} sends; waiting for ${inflight.size} in flight and any fault in progress`);
  await faultRun;
  await Promise.all([...inflight]);
  const allUsers = [...users.values()];
  const reconnected = await waitFor(() => allUsers.every((u) => u.connected && !u.replaying), { timeout: 60_000 });
  log(`all sockets ${reconnected ? '' : 'NOT '}connected and ready; grace ${GRACE_S} s`);
  await sleep(GRACE_S * 1000);
  const preSweepAt = now();
  let sweep = null;
  if (SWEEP) {
    const since = now();
    for (const u of allUsers) u.chat.socket.io.engine?.close();
    const ok = await allReadySince(allUsers, since, 60_000);
    sweep = { at: sec(since), allReconnected: ok, ms: Math.round(now() - since) };
    log(`sweep: every socket closed and reconnected (${ok ? 'all ready' : 'NOT all ready'}) in ${sweep.ms} ms`);
    await sleep(5_000); // the acks of the replays reach the receipts (batched writes)
  }

  let stored = await storedMessages();
  let result = ledger(stored.messages, preSweepAt);
  // "Eventually has deliveredAt": give late receipt writes a few more chances.
  for (let i = 0; i < 4 && result.receivedNotDelivered.length > 0; i++) {
    await sleep(5_000);
    stored = await storedMessages();
    result = ledger(stored.messages, preSweepAt);
  }
  const db = await dbCounts();

  const acked = sends.filter((s) => s.ok);
  const failed = sends.filter((s) => !s.ok);
  const receiptMismatches = result.deliveredNotReceived.length + result.receivedNotDelivered.length + result.deliveredEarly.length + result.missingReceipt.length;
  const deliveries = [...receipts.values()].reduce((n, m) => n + m.size, 0);
  const failing = {
    lost: result.lost.length,
    duplicated,
    receiptMismatches,
    ackedMissing: result.ackedMissing.length,
    ackedIdMismatch: result.ackedIdMismatch.length,
    storedTwice: result.storedTwice.length,
    phantom: result.phantom.length,
  };
  // The ledger's source must hold what MariaDB holds, or the check above was partial.
  if (db.messages !== undefined) failing.sourceMismatch = db.messages === stored.messages.length ? 0 : 1;
  const pass = Object.values(failing).every((n) => n === 0);
  writeRecords(trafficStart);
  const out = {
    scenario: 'soak',
    pass,
    commit,
    startedAt: iso(0),
    runDir: RUN_DIR,
    binary: BIN,
    params: { selftest: SELFTEST, duration: DURATION_S, rate: RATE, pairs: PAIRS, room: ROOM, roomShare: ROOM_SHARE, faultEvery: FAULT_EVERY_S, faults: FAULT_KINDS, dropFraction: DROP_FRACTION, grace: GRACE_S, sweep: SWEEP, sendDeadlineMs: SEND_DEADLINE_MS, pingIntervalMs: 5000, pingTimeoutMs: 5000 },
    // Fields bench/summary.py reads, so its default glob keeps working.
    sockets: users.size,
    connected: allUsers.filter((u) => u.connected).length,
    connectFailed: 0,
    messages: {
      sent: sends.length,
      acked: acked.length,
      failed: failed.length,
      retried: sends.filter((s) => s.attempts > 1).length,
      stored: stored.messages.length,
      storedUnacked: result.storedUnacked.length,
      deliveries,
      receivedLive,
      receivedReplay,
      receivedPerSec: Math.round(deliveries / ((trafficStopped - trafficStart) / 1000)),
      lost: result.lost.length,
      lostBeforeSweep: result.lostBeforeSweep.length,
      duplicated,
      receiptMismatches,
    },
    errors: errorsByCode,
    failedSends: Object.fromEntries(Object.entries(failed.reduce((acc, s) => ((acc[s.error] = (acc[s.error] ?? 0) + 1), acc), {}))),
    latencyMs: {
      connect: stats(connectTimes),
      ack: stats(acked.map((s) => s.ackAt - s.sentAt)),
      receive: result.latency.all,
      receiveOutsideFaults: result.latency.outsideFaults,
      receiveInsideFaults: result.latency.insideFaults,
    },
    faults: faults.map((f) => ({
      kind: f.kind, target: f.target, ok: f.ok,
      startS: sec(f.start - trafficStart), endS: sec(f.end - trafficStart), seconds: sec(f.end - f.start),
      startAt: iso(f.start), endAt: iso(f.end), windowEndAt: iso(f.end + WINDOW_TAIL_MS), detail: f.detail,
    })),
    sweep,
    disconnectReasons,
    clientIncidents: capped(clientIncidents),
    ledger: {
      source: stored.source,
      dbCrossCheck: { ...db, sourceMessages: stored.messages.length, sourceReceiptRows: stored.messages.reduce((n, m) => n + m.receipts.length, 0), sourceDelivered: stored.messages.reduce((n, m) => n + m.receipts.filter((r) => r.deliveredAtMs != null).length, 0) },
      failing,
      lost: capped(result.lost),
      lostBeforeSweep: capped(result.lostBeforeSweep),
      duplicated: capped(duplicates),
      ackedMissing: capped(result.ackedMissing),
      ackedIdMismatch: capped(result.ackedIdMismatch),
      storedTwice: capped(result.storedTwice),
      storedUnacked: capped(result.storedUnacked),
      phantom: capped(result.phantom),
      deliveredNotReceived: capped(result.deliveredNotReceived),
      receivedNotDelivered: capped(result.receivedNotDelivered),
      deliveredEarly: capped(result.deliveredEarly),
      missingReceipt: capped(result.missingReceipt),
    },
    restarts: { a: instances[0].starts - 1, b: instances[1].starts - 1, redis: redis.starts - 1 },
  };
  const dir = join(REPO, 'bench', 'results', 'soak');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `soak-${DURATION_S}s-${TAG}.json`);
  writeFileSync(file, `${JSON.stringify(out, null, 1)}\n`);

  await stopAll();

  const L = out.latencyMs;
  const fmt = (s) => (s.count ? `p50 ${s.p50} / p99 ${s.p99} / max ${s.max} ms (n=${s.count})` : 'no samples');
  const m = out.messages;
  console.log(`
== soak ${DURATION_S} s at ${RATE} msg/s: ${pass ? 'PASS' : 'FAIL'}  (${file.replace(`${REPO}`, '')})
sends        ${m.sent} sent, ${m.acked} acked ok, ${m.failed} failed ${JSON.stringify(out.failedSends)}, ${m.retried} retried; errors seen ${JSON.stringify(errorsByCode)}
stored       ${m.stored} (${out.ledger.source}); ${m.storedUnacked} stored without an ok ack; cross-check ${JSON.stringify(db)}
ledger       lost ${m.lost} (before the sweep ${m.lostBeforeSweep}), duplicated ${m.duplicated}, receipt mismatches ${m.receiptMismatches}, acked not stored ${failing.ackedMissing}, stored twice ${failing.storedTwice}, id mismatch ${failing.ackedIdMismatch}, phantom ${failing.phantom}, source = db ${failing.sourceMismatch === 0 ? 'yes' : 'NO'}
deliveries   ${m.deliveries} (${m.receivedLive} live, ${m.receivedReplay} in a connect replay), ${m.receivedPerSec}/s
latency      all:            ${fmt(L.receive)}
             outside faults: ${fmt(L.receiveOutsideFaults)}
             inside faults:  ${fmt(L.receiveInsideFaults)}
             send ack:       ${fmt(L.ack)}
faults       ${out.faults.map((f) => `${f.kind}(${f.target}) ${f.startS}-${f.endS}s${f.ok ? '' : ' NOT OK'}`).join('; ') || 'none'}
disconnects  ${JSON.stringify(disconnectReasons)}
server logs  ${RUN_DIR}/{a,b,redis}.{stderr,stdout}.log; every send: ${RUN_DIR}/sends.ndjson`);
  process.exit(pass ? 0 : 1);
}

main().catch(async (e) => {
  console.error(`soak: the run failed: ${e.stack ?? e}`);
  await stopAll();
  process.exit(2);
});
