// Plugins: each loaded plugin in chain order with its version, hooks, fail
// policy, limits and state; live calls per second, p50/p99 call time,
// verdicts, faults and fail-policy applications (GET /admin/live, with a chart
// of the last two minutes); enable, disable, edit the config, browse the
// key-value entries by prefix, read and write one, and upload a new version
// (the refusal reason is shown).

import { ApiError, api, follow, kvEntry, kvPath, withQuery } from './api.js';
import { field, fill, h, toast } from './dom.js';
import { sparkline } from './spark.js';

function base64(buffer) {
  const bytes = new Uint8Array(buffer);
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

const ms = (v) => (v === null || v === undefined ? '—' : `≤ ${v} ms`);
const path = (name, rest = '') => `/admin/plugins/${encodeURIComponent(name)}${rest}`;

/** The config as `key = value` lines, and back. */
const configText = (config) => Object.entries(config).map(([k, v]) => `${k} = ${v}`).join('\n');
function parseConfig(text) {
  const config = {};
  for (const line of text.split('\n').map((l) => l.trim()).filter(Boolean)) {
    const at = line.indexOf('=');
    if (at < 1) throw new Error(`not "key = value": ${line}`);
    config[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return config;
}

function pluginCard(p, reload) {
  const live = { rate: h('output', { 'aria-label': `${p.name} calls per second` }, '…'), p50: h('output', {}, '…'), p99: h('output', {}, '…'), verdicts: h('span'), policy: h('output', {}, String(p.stats.failPolicyApplied)) };
  const chart = sparkline(`${p.name} calls per second, last two minutes`);
  const problem = h('p', { class: 'error', role: 'alert' });
  const config = h('textarea', { name: `${p.name}-config`, rows: Math.max(2, Object.keys(p.config).length + 1), spellcheck: 'false' }, configText(p.config));
  const kvKey = h('input', { type: 'text', name: `${p.name}-kv-key`, placeholder: 'e.g. blocked:u42' });
  const kvValue = h('input', { type: 'text', name: `${p.name}-kv-value` });
  const kvNote = h('p', { class: 'muted small', role: 'status' });
  const act = (fn) => async () => {
    fill(problem);
    try { await fn(); } catch (e) { fill(problem, e instanceof ApiError ? `Refused: ${e.message}` : String(e)); }
  };
  const entryPath = () => kvPath(p.name, kvKey.value.trim());
  const expiry = (ttlMs) => (ttlMs ? `expires in ${Math.round(ttlMs / 1000)} s` : 'no expiry');

  // Browsing: a page of entries at a time, "More" while the server has a next cursor.
  const kvPrefix = h('input', { type: 'search', name: `${p.name}-kv-prefix`, placeholder: 'e.g. blocked:' });
  const kvRows = h('tbody');
  const kvTable = h('table', { class: 'grid kv', hidden: true, 'aria-label': `${p.name} entries` },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Key'), h('th', { scope: 'col' }, 'Value'), h('th', { scope: 'col' }, 'Expiry'))),
    kvRows);
  const kvMore = h('button', { type: 'button', class: 'secondary', hidden: true }, `More ${p.name} entries`);
  let kvCursor = null;
  const listEntries = (fresh) => act(async () => {
    if (fresh) { kvCursor = null; fill(kvRows); }
    const page = await api('GET', withQuery(path(p.name, '/kv'), { prefix: kvPrefix.value, cursor: kvCursor }));
    kvRows.append(...page.entries.map((e) => h('tr', {},
      h('td', {}, h('button', {
        type: 'button', class: 'link', 'aria-label': `Edit ${p.name} entry ${e.key}`,
        onclick: () => { kvKey.value = e.key; kvValue.value = e.value; fill(kvNote, expiry(e.ttlMs)); kvKey.focus(); },
      }, e.key)),
      h('td', {}, e.value),
      h('td', { class: 'muted' }, expiry(e.ttlMs)))));
    kvCursor = page.nextCursor;
    kvTable.hidden = kvRows.childElementCount === 0;
    kvMore.hidden = !kvCursor;
    fill(kvNote, kvRows.childElementCount ? `${kvRows.childElementCount} entries${kvCursor ? ', more to list' : ''}` : 'no entries with this prefix');
  });
  kvMore.onclick = listEntries(false);

  const node = h('article', { class: 'card plugin', dataset: { plugin: p.name }, 'aria-label': `Plugin ${p.name}` },
    h('header', { class: 'plugin-head' },
      h('h3', {}, p.name, ' ', h('span', { class: 'muted small' }, `${p.version} · ${p.sha256.slice(0, 12)}`)),
      p.enabled ? h('span', { class: 'ok state' }, 'enabled') : h('span', { class: 'muted state' }, 'disabled'),
      h('button', {
        type: 'button',
        'aria-label': `${p.enabled ? 'Disable' : 'Enable'} ${p.name}`,
        onclick: act(async () => {
          await api('POST', path(p.name, `/${p.enabled ? 'disable' : 'enable'}`));
          toast(`${p.name} ${p.enabled ? 'disabled' : 'enabled'}`);
          await reload();
        }),
      }, p.enabled ? 'Disable' : 'Enable')),
    h('p', { class: 'muted' }, p.description),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Hooks'), h('dd', {}, p.hooks.join(', ')),
      h('dt', {}, 'Order'), h('dd', {}, p.order),
      h('dt', {}, 'Fail policy'), h('dd', {}, p.fail),
      h('dt', {}, 'Limits'), h('dd', {}, `${p.limits['time-ms']} ms, ${p.limits['memory-mb']} MiB${p.limits['concurrent-calls'] ? `, ${p.limits['concurrent-calls']} calls at once` : ''}`),
      h('dt', {}, 'Calls'), h('dd', {}, `${p.stats.calls} (${p.stats.faults} faults, ${p.stats.timeouts} timeouts)`),
      h('dt', {}, 'Calls per second'), h('dd', {}, live.rate),
      h('dt', {}, 'Call time p50 / p99'), h('dd', {}, live.p50, ' / ', live.p99),
      h('dt', {}, 'Verdicts'), h('dd', {}, live.verdicts),
      h('dt', {}, 'Fail policy applied'), h('dd', {}, live.policy),
      p.stats.lastFault ? [h('dt', {}, 'Last fault'), h('dd', { class: 'error' }, p.stats.lastFault)] : null),
    chart.node,
    h('details', {},
      h('summary', {}, 'Config and key-value entries'),
      h('div', { class: 'plugin-edit' },
        field(`${p.name} config (key = value per line)`, config),
        h('button', {
          type: 'button',
          onclick: act(async () => {
            await api('PUT', path(p.name, '/config'), parseConfig(config.value));
            toast(`${p.name}: config saved`);
            await reload();
          }),
        }, `Save ${p.name} config`),
        h('form', {
          class: 'actions', role: 'search', 'aria-label': `Browse ${p.name} entries`,
          onsubmit: (ev) => { ev.preventDefault(); listEntries(true)(); },
        },
        field(`${p.name} key prefix`, kvPrefix),
        h('button', { type: 'submit', class: 'secondary' }, `List ${p.name} entries`)),
        kvTable,
        kvMore,
        field(`${p.name} key`, kvKey),
        field(`${p.name} value`, kvValue),
        h('div', { class: 'actions' },
          h('button', {
            type: 'button', class: 'secondary',
            onclick: act(async () => {
              const entry = await kvEntry(p.name, kvKey.value.trim());
              kvValue.value = entry?.value ?? '';
              fill(kvNote, entry ? expiry(entry.ttlMs) : 'no such entry');
            }),
          }, `Read ${p.name} entry`),
          h('button', { type: 'button', class: 'secondary', onclick: act(async () => { await api('PUT', entryPath(), { value: kvValue.value }); fill(kvNote, 'written'); }) }, `Write ${p.name} entry`),
          h('button', { type: 'button', class: 'secondary', onclick: act(async () => { await api('DELETE', entryPath()); fill(kvNote, 'deleted'); }) }, `Delete ${p.name} entry`)),
        kvNote)),
    problem);

  return {
    node,
    update(l) {
      fill(live.rate, l.callsPerSecond);
      fill(live.p50, ms(l.callP50Ms));
      fill(live.p99, ms(l.callP99Ms));
      const verdicts = Object.entries(l.verdicts).filter(([, n]) => n > 0);
      fill(live.verdicts, verdicts.length ? verdicts.map(([k, n]) => `${k} ${n}`).join(', ') : 'none yet');
      fill(live.policy, l.failPolicyApplied);
      chart.push(l.callsPerSecond);
    },
  };
}

export async function pluginsPage() {
  const list = h('div', { class: 'plugins' });
  const cards = new Map();
  const refused = h('p', { class: 'error', role: 'alert' });

  async function load() {
    const plugins = await api('GET', '/admin/plugins');
    cards.clear();
    fill(list, plugins.map((p) => {
      const card = pluginCard(p, load);
      cards.set(p.name, card);
      return card.node;
    }));
  }

  const name = h('input', { type: 'text', name: 'plugin-name', required: true, pattern: '[a-z0-9\\-]{1,64}' });
  const manifest = h('input', { type: 'file', name: 'manifest', accept: '.toml', required: true });
  const wasm = h('input', { type: 'file', name: 'wasm', accept: '.wasm', required: true });
  const upload = h('form', {
    class: 'card',
    'aria-label': 'Upload a plugin version',
    onsubmit: async (ev) => {
      ev.preventDefault();
      fill(refused);
      try {
        const body = { manifest: await manifest.files[0].text(), wasmBase64: base64(await wasm.files[0].arrayBuffer()) };
        const view = await api('PUT', path(name.value.trim()), body);
        toast(`${view.name} ${view.version} is serving`);
        await load();
      } catch (e) {
        fill(refused, e instanceof ApiError ? `Refused: ${e.message}` : String(e));
      }
    },
  },
  h('h3', {}, 'Upload a version'),
  field('Plugin name', name),
  field('Manifest (.toml)', manifest),
  field('Component (.wasm)', wasm),
  h('button', { type: 'submit' }, 'Upload'),
  refused);

  await load();
  const stop = follow('/admin/live', (event, o) => {
    if (event !== 'overview') return;
    for (const l of o.plugins) cards.get(l.name)?.update(l);
  });
  return {
    node: h('section', { 'aria-labelledby': 'plugins-title' }, h('h2', { id: 'plugins-title' }, 'Plugins'), list, upload),
    leave: stop,
  };
}
