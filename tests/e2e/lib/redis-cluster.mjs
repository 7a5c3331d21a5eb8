// A Redis Cluster of the test's own (3 masters, 3 replicas on free loopback
// ports), started by scripts/redis-cluster.sh, that a test can take a master
// of down (SIGKILL) to make its replica take over.

import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const script = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'scripts', 'redis-cluster.sh');

export class RedisCluster {
  /** Starts a cluster in a temporary directory; resolves once every slot is served. */
  static async start() {
    const dir = mkdtempSync(join(tmpdir(), 'chat-e2e-cluster-'));
    try {
      const { stdout } = await run('bash', [script, 'start', dir], { timeout: 60_000 });
      return new RedisCluster(dir, stdout.trim().split('\n').pop());
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`starting a Redis Cluster: ${e.stderr || e.message}`);
    }
  }

  constructor(dir, urls) {
    this.dir = dir;
    /** `redis://127.0.0.1:P,...`: the REDIS_CLUSTER_URLS of the servers. */
    this.urls = urls;
    this.ports = urls.split(',').map((u) => Number(new URL(u).port));
  }

  /** `redis-cli -p port args...`, resolving to its output. */
  async cli(port, ...args) {
    const { stdout } = await run('redis-cli', ['-p', String(port), ...args], { timeout: 10_000 });
    return stdout;
  }

  /**
   * The nodes as `CLUSTER NODES` of a live node lists them:
   * `{ id, port, master, masterId, failed, slots }`, `slots` a master's `[from, to]` ranges.
   */
  async nodes() {
    for (const port of this.ports) {
      let text;
      try {
        text = await this.cli(port, 'cluster', 'nodes');
      } catch {
        continue;
      }
      if (!text.trim()) continue;
      return text.trim().split('\n').map((line) => {
        const [id, addr, flags, masterId, , , , , ...ranges] = line.split(' ');
        return {
          id,
          port: Number(addr.split('@')[0].split(':')[1]),
          master: flags.includes('master'),
          masterId: masterId === '-' ? null : masterId,
          failed: flags.split(',').includes('fail'),
          slots: ranges.filter((r) => !r.startsWith('[')).map((r) => {
            const [from, to = from] = r.split('-').map(Number);
            return [from, to];
          }),
        };
      });
    }
    throw new Error('no node of the cluster answers');
  }

  /** The port of the master that serves `key`'s slot. */
  async masterOf(key) {
    const slot = Number((await this.cli(this.ports[0], 'cluster', 'keyslot', key)).trim());
    const master = (await this.nodes()).find((n) => n.master && n.slots.some(([from, to]) => slot >= from && slot <= to));
    if (!master) throw new Error(`no master serves slot ${slot} (${key})`);
    return master.port;
  }

  /**
   * Moves `key`'s slot, with its keys, from its master to the master on `toPort`,
   * the way `redis-cli --cluster reshard` does: the slot is importing on the target
   * and migrating on the source, the keys move (clients get ASK for moved keys),
   * then every master assigns the slot to the target (clients get MOVED).
   * `between()` runs while the slot is half migrated.
   */
  async moveSlot(key, toPort, between = async () => {}) {
    const slot = (await this.cli(this.ports[0], 'cluster', 'keyslot', key)).trim();
    const fromPort = await this.masterOf(key);
    const id = async (port) => (await this.cli(port, 'cluster', 'myid')).trim();
    const [fromId, toId] = [await id(fromPort), await id(toPort)];
    await this.cli(toPort, 'cluster', 'setslot', slot, 'importing', fromId);
    await this.cli(fromPort, 'cluster', 'setslot', slot, 'migrating', toId);
    const keys = (await this.cli(fromPort, 'cluster', 'getkeysinslot', slot, '1000')).trim().split('\n').filter(Boolean);
    // Half of the keys first, then the work in between, then the rest.
    const half = Math.ceil(keys.length / 2);
    const migrate = async (batch) => {
      if (batch.length) await this.cli(fromPort, 'migrate', '127.0.0.1', String(toPort), '', '0', '5000', 'keys', ...batch);
    };
    await migrate(keys.slice(0, half));
    await between();
    await migrate((await this.cli(fromPort, 'cluster', 'getkeysinslot', slot, '1000')).trim().split('\n').filter(Boolean));
    const masters = (await this.nodes()).filter((n) => n.master && !n.failed);
    for (const m of masters) await this.cli(m.port, 'cluster', 'setslot', slot, 'node', toId);
    return { slot: Number(slot), fromPort, toPort, keys: keys.length };
  }

  /** SIGKILLs the node on `port` (by the pid its pidfile names). */
  kill(port) {
    const pid = Number(readFileSync(join(this.dir, `node-${port}.pid`), 'utf8'));
    process.kill(pid, 'SIGKILL');
  }

  /** Starts the node of `port` again, with the cluster state it had. */
  async restart(port) {
    await run('bash', [script, 'restart', this.dir, String(port)], { timeout: 30_000 });
  }

  /**
   * Resolves once the cluster flags the node on `port` as failed and a live node
   * reports every slot served again (its replica took over), or rejects after
   * `timeout` ms.
   */
  async waitFailover(port, timeout = 30_000) {
    const deadline = Date.now() + timeout;
    let last = '';
    while (Date.now() < deadline) {
      const gone = (await this.nodes().catch(() => [])).some((n) => n.port === port && n.failed);
      for (const p of this.ports.filter((p) => p !== port)) {
        try {
          last = await this.cli(p, 'cluster', 'info');
          if (gone && /^cluster_state:ok/m.test(last)) return;
          break;
        } catch {
          // a dead node: ask the next
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no replica took over from ${port} within ${timeout} ms: ${last}`);
  }

  /** Stops every node and removes the directory. */
  async stop() {
    await run('bash', [script, 'stop', this.dir], { timeout: 30_000 }).catch(() => {});
    rmSync(this.dir, { recursive: true, force: true });
  }
}
