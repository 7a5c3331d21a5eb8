// The live dashboard: this instance's sockets, users, messages per second and
// send-ack latency, the backends' health, the event stream's length and the
// live instances of the cluster, pushed every second (GET /admin/live, SSE).

import { follow } from './api.js';
import { fill, h, when } from './dom.js';
import { sparkline } from './spark.js';

function tile(label) {
  const value = h('output', { class: 'value', 'aria-label': label }, '…');
  return { node: h('div', { class: 'tile card' }, h('div', { class: 'muted small' }, label), value), value };
}

const ms = (v) => (v === null || v === undefined ? '—' : `≤ ${v} ms`);

export async function dashboardPage() {
  const tiles = {
    sockets: tile('Sockets on this instance'),
    users: tile('Users on this instance'),
    rate: tile('Messages per second'),
    p50: tile('Send ack p50'),
    p99: tile('Send ack p99'),
    stream: tile('Event stream length'),
    database: tile('Database'),
    state: tile('State store'),
  };
  const chart = sparkline('Messages per second, last two minutes');
  const instances = h('tbody');
  const updated = h('p', { class: 'muted small', 'aria-live': 'off' });
  const up = (v) => (v ? 'up' : 'DOWN');

  const stop = follow('/admin/live', (name, o) => {
    if (name !== 'overview') return;
    fill(tiles.sockets.value, o.sockets);
    fill(tiles.users.value, o.users);
    fill(tiles.rate.value, o.messagesPerSecond);
    fill(tiles.p50.value, ms(o.sendAckP50Ms));
    fill(tiles.p99.value, ms(o.sendAckP99Ms));
    fill(tiles.stream.value, o.streamLength ?? '—');
    fill(tiles.database.value, up(o.databaseUp));
    fill(tiles.state.value, up(o.stateUp));
    tiles.database.value.className = `value ${o.databaseUp ? 'ok' : 'bad'}`;
    tiles.state.value.className = `value ${o.stateUp ? 'ok' : 'bad'}`;
    chart.push(o.messagesPerSecond);
    fill(instances, o.instances.map((i) => h('tr', {}, h('td', {}, i.id), h('td', {}, when(i.seenAt)))));
    fill(updated, `Updated ${when(o.at)}`);
  });

  return {
    node: h('section', { 'aria-labelledby': 'dash-title' },
      h('h2', { id: 'dash-title' }, 'Dashboard'),
      h('div', { class: 'tiles' }, Object.values(tiles).map((t) => t.node)),
      h('div', { class: 'card' }, h('h3', {}, 'Messages per second'), chart.node),
      h('h3', {}, 'Live instances'),
      h('table', { class: 'grid', 'aria-label': 'Live instances' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Instance'), h('th', { scope: 'col' }, 'Last heartbeat'))),
        instances),
      updated),
    leave: stop,
  };
}
