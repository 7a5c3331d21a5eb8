// HAProxy with the repository's own configuration (deploy/haproxy.cfg) in
// front of three chat-host instances, on free loopback ports; a process of the
// test's own, stopped by pid.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { freePort } from './redis-server.mjs';

/** The documented configuration, run as is. */
export const HAPROXY_CFG = fileURLToPath(new URL('../../../deploy/haproxy.cfg', import.meta.url));
const START_TIMEOUT_MS = 10_000;

export class Haproxy {
  /**
   * Starts HAProxy in front of exactly three servers (deploy/haproxy.cfg names
   * chat1..chat3) and resolves once its frontend and stats page answer.
   * @param {{port:number}[]} servers
   */
  static async start(servers) {
    if (servers.length !== 3) throw new Error('deploy/haproxy.cfg has three server lines');
    const [port, statsPort] = [await freePort(), await freePort()];
    const env = {
      ...process.env,
      CHAT_LB_BIND: `127.0.0.1:${port}`,
      CHAT_LB_STATS: `127.0.0.1:${statsPort}`,
    };
    servers.forEach((s, i) => { env[`CHAT_HOST_${i + 1}`] = `127.0.0.1:${s.port}`; });
    // -db: foreground, no daemon; -W would fork a master process.
    const child = spawn('haproxy', ['-db', '-f', HAPROXY_CFG], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const lb = new Haproxy(child, port, statsPort);
    child.stdout.on('data', (c) => { lb.log += c; });
    child.stderr.on('data', (c) => { lb.log += c; });
    const spawned = new Promise((resolve, reject) => {
      child.once('error', (e) => reject(new Error(`haproxy could not be started (${e.message}); apt-get install haproxy`)));
      child.once('spawn', resolve);
    });
    await spawned;
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`haproxy exited (${child.exitCode}):\n${lb.log}`);
      try {
        await lb.servers();
        return lb;
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`haproxy's stats page did not answer within ${START_TIMEOUT_MS} ms: ${e.message}\n${lb.log}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  constructor(child, port, statsPort) {
    this.child = child;
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    this.statsUrl = `http://127.0.0.1:${statsPort}/stats;csv`;
    this.log = '';
    this.exited = new Promise((resolve) => child.once('exit', resolve));
  }

  /** Each server's state as the stats page reports it: `{ chat1: 'UP', chat2: 'DOWN', ... }`. */
  async servers() {
    const res = await fetch(this.statsUrl);
    if (!res.ok) throw new Error(`GET ${this.statsUrl}: ${res.status}`);
    const [header, ...rows] = (await res.text()).trim().split('\n');
    const cols = header.replace(/^# /, '').split(',');
    const [px, sv, st] = ['pxname', 'svname', 'status'].map((c) => cols.indexOf(c));
    const states = {};
    for (const r of rows) {
      const f = r.split(',');
      if (f[px] === 'chat_hosts' && /^chat\d$/.test(f[sv])) states[f[sv]] = f[st];
    }
    return states;
  }

  /** Stops HAProxy (SIGTERM, its hard stop) and waits for the exit. */
  async stop() {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      await this.exited;
    }
  }
}
