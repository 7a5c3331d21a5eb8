// WebAssembly policy plugins for the end-to-end tests: the built components and
// manifests, a private watched plugin directory per server (files replaced
// atomically), manifest edits, the admin plugin API and `/metrics` samples.
//
//   CHAT_E2E_PLUGINS  directory of the built `<name>.wasm` + `<name>.toml`
//                     (default $CARGO_TARGET_DIR/plugins, CARGO_TARGET_DIR
//                     defaulting to ~/.cache/chat-host/target): scripts/build-plugins.sh

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

import { eventually } from './fixtures.mjs';
import { assertOk, request } from './http.mjs';

export const pluginBuildDir =
  process.env.CHAT_E2E_PLUGINS || join(process.env.CARGO_TARGET_DIR || join(homedir(), '.cache', 'chat-host', 'target'), 'plugins');

/**
 * The built component and manifest text of plugin `name`. Throws (the test fails,
 * it is not skipped) when they are missing.
 * @returns {{ name: string, wasm: Buffer, manifest: string }}
 */
export function builtPlugin(name) {
  const wasmPath = join(pluginBuildDir, `${name}.wasm`);
  const tomlPath = join(pluginBuildDir, `${name}.toml`);
  for (const p of [wasmPath, tomlPath]) {
    if (!existsSync(p)) {
      throw new Error(`${p} is missing: run scripts/build-plugins.sh (or point CHAT_E2E_PLUGINS at the built plugins)`);
    }
  }
  return { name, wasm: readFileSync(wasmPath), manifest: readFileSync(tomlPath, 'utf8') };
}

// --- manifests --------------------------------------------------------------------
// The manifests use a small TOML subset: comments, `[limits]` / `[config]` tables
// and `key = "string" | number | true | false`. Enough to parse, edit and write them.

function stripComment(line) {
  let inString = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (ch === '\\' && inString) i++;
    else if (ch === '"') inString = !inString;
    else if (ch === '#' && !inString) return line.slice(0, i);
  }
  return line;
}

function parseValue(raw, where) {
  if (raw.startsWith('"')) return JSON.parse(raw);
  if (raw === 'true' || raw === 'false') return raw === 'true';
  if (/^-?\d+$/.test(raw)) return Number(raw);
  throw new Error(`manifest line "${where}": value ${raw} is outside the TOML subset the tests handle`);
}

/** Parses a manifest into `{ ...top-level keys, limits: {}, config: {} }`. */
export function parseManifest(text) {
  const out = { limits: {}, config: {} };
  let table = out;
  for (const full of text.split('\n')) {
    const line = stripComment(full).trim();
    if (!line) continue;
    const section = /^\[([a-z-]+)\]$/.exec(line);
    if (section) {
      out[section[1]] ??= {};
      table = out[section[1]];
      continue;
    }
    const kv = /^([A-Za-z0-9_-]+)\s*=\s*(.+)$/.exec(line);
    if (!kv) throw new Error(`manifest line "${full}" is outside the TOML subset the tests handle`);
    table[kv[1]] = parseValue(kv[2].trim(), full);
  }
  return out;
}

const tomlValue = (v) => (typeof v === 'string' ? JSON.stringify(v) : String(v));

/** Writes a manifest object back as TOML. */
export function manifestToml(m) {
  const lines = [];
  for (const [k, v] of Object.entries(m)) {
    if (v !== null && typeof v === 'object') continue;
    lines.push(`${k} = ${tomlValue(v)}`);
  }
  for (const [k, v] of Object.entries(m)) {
    if (v === null || typeof v !== 'object') continue;
    lines.push('', `[${k}]`);
    for (const [key, value] of Object.entries(v)) lines.push(`${key} = ${tomlValue(value)}`);
  }
  return `${lines.join('\n')}\n`;
}

let versionNo = 0;

/**
 * The built manifest of `base` (or the manifest object `from`) with `changes`:
 * top-level keys replaced (a `name` change renames the plugin), `limits` and
 * `config` merged key by key (a `null` value removes the key; `replaceConfig: true`
 * starts from an empty config). Every call stamps a fresh `version` (unless
 * `changes.version` is given), so a test sees in `GET /admin/plugins` when the
 * server has loaded exactly this text.
 * @returns {{ text: string, manifest: object, version: string }}
 */
export function editManifest(base, changes = {}, from = undefined) {
  const { limits = {}, config = {}, replaceConfig = false, ...top } = changes;
  const m = structuredClone(from ?? parseManifest(builtPlugin(base).manifest));
  m.version = `0.1.0-e2e.${process.pid}.${++versionNo}`;
  Object.assign(m, top);
  m.limits = { ...m.limits };
  m.config = replaceConfig ? {} : { ...m.config };
  for (const [k, v] of Object.entries(limits)) {
    if (v === null) delete m.limits[k];
    else m.limits[k] = v;
  }
  for (const [k, v] of Object.entries(config)) {
    if (v === null) delete m.config[k];
    else m.config[k] = v;
  }
  return { text: manifestToml(m), manifest: m, version: m.version };
}

/** A plugin name no other test or concurrent run uses: `<prefix>-<hex>`. */
export function uniquePluginName(prefix = 'e2e') {
  return `${prefix}-${randomBytes(5).toString('hex')}`;
}

// --- a private, watched plugin directory ------------------------------------------

/**
 * A fresh directory for one server's `CHAT_PLUGIN_DIR`. Files are written to a
 * staging directory first and renamed in, so the watcher never reads half a file.
 */
export class PluginDir {
  /**
   * @param {Record<string, object>} plugins  name -> manifest changes (see `editManifest`), e.g.
   *   `{ blocklist: {}, 'evil-loop': { enabled: false } }`
   */
  constructor(plugins = {}) {
    this.path = mkdtempSync(join(tmpdir(), 'chat-e2e-plugins-'));
    this.staging = mkdtempSync(join(tmpdir(), 'chat-e2e-plugins-staging-'));
    /** name -> version of the last manifest written. */
    this.versions = {};
    /** name -> the last manifest written (object). */
    this.manifests = {};
    for (const [name, changes] of Object.entries(plugins)) this.install(name, changes);
  }

  #put(file, data) {
    const staged = join(this.staging, `${randomBytes(6).toString('hex')}-${file}`);
    writeFileSync(staged, data);
    renameSync(staged, join(this.path, file));
  }

  /**
   * Writes `<name>.toml`: the manifest last written for `name` (at first the built
   * manifest of `base`) with `changes` (see `editManifest`); returns its version.
   */
  writeManifest(name, changes = {}, base = name) {
    const { text, manifest, version } = editManifest(base, { ...changes, name }, this.manifests[name]);
    this.#put(`${name}.toml`, text);
    this.versions[name] = version;
    this.manifests[name] = manifest;
    return version;
  }

  /** Writes `<name>.wasm` (the built component of `base`, or raw bytes). */
  writeWasm(name, bytes = builtPlugin(name).wasm) {
    this.#put(`${name}.wasm`, bytes);
  }

  /** Manifest, then component (one debounced reload); returns the manifest's version. */
  install(name, changes = {}, base = name) {
    const version = this.writeManifest(name, changes, base);
    this.writeWasm(name, builtPlugin(base).wasm);
    return version;
  }

  /** Deletes `<name>.wasm`, which unloads the plugin. */
  removeWasm(name) {
    unlinkSync(join(this.path, `${name}.wasm`));
  }

  remove() {
    rmSync(this.path, { recursive: true, force: true });
    rmSync(this.staging, { recursive: true, force: true });
  }
}

// --- the admin plugin API -----------------------------------------------------------

/** `GET /admin/plugins`, asserted 200. */
export async function listPlugins(server) {
  return assertOk(await request(server, 'GET', '/admin/plugins'), 'GET /admin/plugins');
}

/** The view of one loaded plugin, or undefined. */
export async function pluginView(server, name) {
  return (await listPlugins(server)).find((p) => p.name === name);
}

/**
 * Polls `GET /admin/plugins` until plugin `name` satisfies `check(view)` (called with
 * `undefined` while it is not loaded). Resolves to `{ view, ms }`.
 */
export async function waitForPlugin(server, name, check, { timeout = 5_000, what } = {}) {
  const started = Date.now();
  const view = await eventually(async () => {
    const v = await pluginView(server, name);
    return check(v) ? v ?? true : false;
  }, { timeout, interval: 25, what: what ?? `plugin ${name} as expected on ${server.label}` });
  return { view: view === true ? undefined : view, ms: Date.now() - started };
}

/** Waits until `name` runs the manifest of this `version` (after a directory write). */
export function waitForVersion(server, name, version, opts = {}) {
  return waitForPlugin(server, name, (v) => v?.version === version, { what: `${name} ${version} loaded on ${server.label}`, ...opts });
}

/** `PUT /admin/plugins/{name}` with a manifest text and component bytes. */
export function uploadPlugin(server, name, manifestText, wasm) {
  return request(server, 'PUT', `/admin/plugins/${encodeURIComponent(name)}`, {
    body: { manifest: manifestText, wasmBase64: Buffer.from(wasm).toString('base64') },
  });
}

const kvPath = (plugin, key) => `/admin/plugins/${encodeURIComponent(plugin)}/kv/${encodeURIComponent(key)}`;

/** `PUT /admin/plugins/{plugin}/kv/{key}`, asserted 204. */
export async function kvSet(server, plugin, key, value, ttlMs) {
  const body = ttlMs === undefined ? { value } : { value, ttlMs };
  const res = await request(server, 'PUT', kvPath(plugin, key), { body });
  assert.equal(res.status, 204, `PUT kv ${plugin}/${key}: ${res.status} ${res.text}`);
}

/** `GET /admin/plugins/{plugin}/kv/{key}` (the raw response). */
export function kvGet(server, plugin, key) {
  return request(server, 'GET', kvPath(plugin, key));
}

/** `DELETE /admin/plugins/{plugin}/kv/{key}`, asserted 204. */
export async function kvDelete(server, plugin, key) {
  const res = await request(server, 'DELETE', kvPath(plugin, key));
  assert.equal(res.status, 204, `DELETE kv ${plugin}/${key}: ${res.status} ${res.text}`);
}

/** `DELETE /admin/plugins/{name}`, ignoring 404 (for `finally` blocks). */
export async function removePlugin(server, name) {
  const res = await request(server, 'DELETE', `/admin/plugins/${encodeURIComponent(name)}`);
  assert.ok([204, 404].includes(res.status), `DELETE /admin/plugins/${name}: ${res.status} ${res.text}`);
  return res;
}

/** `GET /admin/audit/{threadId}`, asserted 200. */
export async function auditTrail(server, threadId) {
  return assertOk(await request(server, 'GET', `/admin/audit/${encodeURIComponent(threadId)}`), `GET /admin/audit/${threadId}`);
}

// --- /metrics -------------------------------------------------------------------------

/** The Prometheus text of `/metrics`. */
export async function metricsText(server) {
  const res = await request(server, 'GET', '/metrics', { token: null, headers: { accept: 'text/plain' } });
  assert.equal(res.status, 200, `/metrics: ${res.status}`);
  return res.text;
}

/**
 * Sum of the samples of metric `name` whose labels include `labels`
 * (0 when there is none yet: counters appear with their first increment).
 */
export function metricValue(text, name, labels = {}) {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) have[k] = v;
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}
