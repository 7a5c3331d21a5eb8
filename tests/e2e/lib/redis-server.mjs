// A redis-server of the test's own (never the shared one), on a free loopback
// port, that a test can freeze (SIGSTOP), kill and restart empty on the same port.

import { spawn } from 'node:child_process';
import net from 'node:net';

/** A free loopback TCP port (bound and released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts TCP connections on `port`, or rejects after `timeout` ms. */
async function listening(port, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const c = net.connect({ host: '127.0.0.1', port }, () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`redis-server did not listen on ${port} within ${timeout} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export class RedisServer {
  /** Starts a redis-server with no persistence on a free port. */
  static async start() {
    const r = new RedisServer(await freePort());
    await r.spawn();
    return r;
  }

  constructor(port) {
    this.port = port;
    this.url = `redis://127.0.0.1:${port}`;
    this.child = null;
  }

  async spawn() {
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: 'ignore',
    });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', resolve));
    child.once('error', () => {});
    await listening(this.port);
  }

  /** Freezes the process (SIGSTOP): connections stay open, nothing is answered. */
  freeze() {
    this.child.kill('SIGSTOP');
  }

  /** Lets a frozen process run again. */
  thaw() {
    this.child.kill('SIGCONT');
  }

  /** SIGKILL, then a new empty redis-server on the same port. */
  async restartEmpty() {
    await this.kill();
    await this.spawn();
  }

  /** SIGKILL and wait for the exit. */
  async kill() {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGCONT');
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}
