// A tiny TCP proxy between chat-host and a backend (MariaDB or Redis), so a test
// can cut the backend and restore it while the server keeps running.
//
// cut('reset'):     every open connection is reset and new ones are reset at once
//                   (the backend "went down": connection refused / reset).
// cut('blackhole'): nothing is forwarded any more, in either direction, on open
//                   and new connections (a network partition: requests hang).
// cut('stall'):     open connections stop being read from the backend, so its
//                   writes back up (a client that stopped reading); nothing is
//                   forwarded either way. Only for open connections.
// restore():        forwarding resumes; held data of blackholed connections flows.

import net from 'node:net';

class Pair {
  constructor(proxy, client) {
    this.proxy = proxy;
    this.client = client;
    this.upstream = null;
    this.held = { up: [], down: [] };
    this.closed = false;
    client.on('data', (chunk) => this.forward('up', chunk));
    client.on('error', () => this.close());
    client.on('close', () => this.close());
  }

  connectUpstream() {
    const { host, port } = this.proxy.target;
    this.upstream = net.connect({ host, port });
    this.upstream.setNoDelay(true);
    this.upstream.on('data', (chunk) => this.forward('down', chunk));
    this.upstream.on('error', () => this.close());
    this.upstream.on('close', () => this.close());
    this.flush();
  }

  forward(direction, chunk) {
    if (this.closed) return;
    if (this.proxy.mode === 'blackhole' || this.proxy.mode === 'stall' || !this.upstream) {
      this.held[direction].push(chunk);
      return;
    }
    (direction === 'up' ? this.upstream : this.client).write(chunk);
  }

  flush() {
    if (this.closed || !this.upstream) return;
    for (const chunk of this.held.up.splice(0)) this.upstream.write(chunk);
    for (const chunk of this.held.down.splice(0)) this.client.write(chunk);
  }

  reset() {
    this.closed = true;
    this.client.resetAndDestroy();
    this.upstream?.resetAndDestroy();
    this.proxy.pairs.delete(this);
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.client.destroy();
    this.upstream?.destroy();
    this.proxy.pairs.delete(this);
  }
}

export class TcpProxy {
  constructor(target) {
    this.target = target;
    this.mode = 'open';
    this.pairs = new Set();
    this.server = net.createServer((client) => {
      client.setNoDelay(true);
      if (this.mode === 'reset') {
        client.on('error', () => {});
        client.resetAndDestroy();
        return;
      }
      const pair = new Pair(this, client);
      this.pairs.add(pair);
      if (this.mode === 'open') pair.connectUpstream();
    });
  }

  listen() {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => {
        this.port = this.server.address().port;
        resolve(this);
      });
    });
  }

  /** Cuts the backend off: `reset` (down), `blackhole` (partition) or `stall` (stop reading it). */
  cut(mode = 'reset') {
    this.mode = mode;
    if (mode === 'reset') for (const pair of [...this.pairs]) pair.reset();
    if (mode === 'stall') for (const pair of this.pairs) pair.upstream?.pause();
  }

  /** Forwards again. */
  restore() {
    this.mode = 'open';
    for (const pair of [...this.pairs]) {
      pair.upstream?.resume();
      if (pair.upstream) pair.flush();
      else pair.connectUpstream();
    }
  }

  /** Number of connections currently going through the proxy. */
  get connections() {
    return this.pairs.size;
  }

  async close() {
    for (const pair of [...this.pairs]) pair.close();
    await new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * Starts a proxy to the host:port of `backendUrl` (mysql://… or redis://…) and
 * returns `{ proxy, url }`: the same URL pointing at the proxy.
 */
export async function proxyFor(backendUrl) {
  const u = new URL(backendUrl);
  const defaultPort = u.protocol.startsWith('redis') ? 6379 : 3306;
  const proxy = await new TcpProxy({ host: u.hostname || '127.0.0.1', port: Number(u.port || defaultPort) }).listen();
  const through = new URL(backendUrl);
  through.hostname = '127.0.0.1';
  through.port = String(proxy.port);
  return { proxy, url: through.toString() };
}
