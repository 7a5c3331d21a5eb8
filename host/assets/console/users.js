// Users: search by id or display-name prefix; one user's presence, open
// connections and threads, and blocking through the blocklist plugin's
// key-value entries: `blocked:<userId>` holds the reason the user is shown
// (empty: a neutral "you are blocked"), and `note:blocked:<userId>` the
// admin's internal note, who blocked and when (JSON; the plugin never reads
// it, so it never reaches the user). The server's event stream records who
// wrote each entry (plugin_kv_set) and every refused attempt (access_denied).

import { api, current, kvEntry, kvPath, withQuery } from './api.js';
import { field, fill, h, toast, when } from './dom.js';

const BLOCKLIST = 'blocklist';
const blockKey = (userId) => kvPath(BLOCKLIST, `blocked:${userId}`);
const noteKey = (userId) => kvPath(BLOCKLIST, `note:blocked:${userId}`);

function presence(u) {
  if (u.online) return h('span', { class: 'ok' }, 'online');
  return h('span', { class: 'muted' }, u.lastSeenAt ? `last seen ${when(u.lastSeenAt)}` : 'offline');
}

export async function usersPage() {
  const q = h('input', { type: 'search', name: 'q' });
  const results = h('div', { 'aria-live': 'polite' });
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Next page');
  let cursor = null;
  let rows = null;

  async function search(next = false) {
    const page = await api('GET', withQuery('/admin/users', { q: q.value.trim(), cursor: next ? cursor : '' }));
    if (!next) {
      rows = h('tbody');
      fill(results, page.users.length === 0
        ? h('p', { class: 'muted' }, 'No user matches.')
        : h('table', { class: 'grid', 'aria-label': 'Users found' },
          h('thead', {}, h('tr', {}, ['User', 'Role', 'Presence'].map((c) => h('th', { scope: 'col' }, c)))),
          rows));
    }
    for (const u of page.users) {
      rows?.append(h('tr', {},
        h('td', {}, h('a', { href: `#/users/${encodeURIComponent(u.id)}` }, u.displayName), h('div', { class: 'muted small' }, u.id)),
        h('td', {}, u.role),
        h('td', {}, presence(u))));
    }
    cursor = page.nextCursor;
    more.hidden = !cursor;
  }
  more.addEventListener('click', () => search(true).catch((e) => fill(results, e.message)));
  await search();
  return {
    node: h('section', { 'aria-labelledby': 'users-title' },
      h('h2', { id: 'users-title' }, 'Users'),
      h('form', { class: 'search', role: 'search', 'aria-label': 'Find users', onsubmit: (ev) => { ev.preventDefault(); search().catch((e) => fill(results, e.message)); } },
        field('User id or name', q), h('button', { type: 'submit' }, 'Search')),
      results, more),
  };
}

/** Whether the user is blocked everywhere: the reason they see, and the internal record. */
async function blockState(userId) {
  const [blocked, noted] = await Promise.all([kvEntry(BLOCKLIST, `blocked:${userId}`), kvEntry(BLOCKLIST, `note:blocked:${userId}`)]);
  const [reason, note] = [blocked?.value ?? null, noted?.value ?? null];
  let record = null;
  try { record = note ? JSON.parse(note) : null; } catch { record = { note }; }
  return { blocked: reason !== null, reason: reason ?? '', record };
}

export async function userPage(userId) {
  const user = await api('GET', `/admin/users/${encodeURIComponent(userId)}`);
  const blockBox = h('div');

  async function renderBlock() {
    const state = await blockState(userId);
    const reason = h('input', { type: 'text', name: 'reason', placeholder: 'empty: “you are blocked”' });
    const note = h('textarea', { name: 'note', rows: 2, placeholder: 'e.g. dispute D-1042, payment details sent in chat' });
    const shown = state.reason && state.reason !== '1' ? `“you are blocked: ${state.reason}”` : '“you are blocked”';
    fill(blockBox,
      state.blocked
        ? h('div', {},
          h('p', { class: 'bad' }, `Blocked. The user is told ${shown}.`),
          state.record ? h('p', { class: 'muted' }, `By ${state.record.by ?? 'unknown'}${state.record.at ? ` on ${when(state.record.at)}` : ''}${state.record.note ? `: ${state.record.note}` : ''}`) : null)
        : h('div', {}, h('p', { class: 'muted' }, 'Not blocked.'), field('Reason shown to the user', reason), field('Internal note (never shown to the user)', note)),
      h('button', {
        type: 'button',
        onclick: async () => {
          if (state.blocked) {
            await api('DELETE', blockKey(userId));
            await api('DELETE', noteKey(userId)).catch((e) => { if (e.status !== 404) throw e; });
          } else {
            const who = current();
            const record = { by: who?.operator || who?.who, at: new Date().toISOString(), note: note.value.trim() };
            await api('PUT', noteKey(userId), { value: JSON.stringify(record) });
            await api('PUT', blockKey(userId), { value: reason.value.trim() || '1' });
          }
          toast(state.blocked ? `${user.displayName} unblocked` : `${user.displayName} blocked`);
          await renderBlock();
        },
      }, state.blocked ? 'Unblock' : 'Block'));
  }
  await renderBlock();

  return {
    node: h('section', { 'aria-labelledby': 'user-title' },
      h('p', {}, h('a', { href: '#/users' }, '← Users')),
      h('h2', { id: 'user-title' }, user.displayName),
      h('p', { class: 'muted' }, `${user.id} · ${user.role}`),
      h('div', { class: 'columns' },
        h('div', { class: 'card' },
          h('h3', {}, 'Presence'),
          h('p', {}, presence(user)),
          h('p', {}, `Open connections: ${user.connections}`)),
        h('div', { class: 'card' }, h('h3', {}, 'Blocking'), blockBox)),
      h('h3', {}, 'Threads'),
      user.threads.length === 0
        ? h('p', { class: 'muted' }, 'No threads.')
        : h('table', { class: 'grid', 'aria-label': 'Threads of the user' },
          h('thead', {}, h('tr', {}, ['Thread', 'Messages', 'Last activity'].map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', {}, user.threads.map((t) => h('tr', {},
            h('td', {}, h('a', { href: `#/threads/${encodeURIComponent(t.id)}` }, t.title)),
            h('td', { class: 'num' }, t.messageCount),
            h('td', {}, when(t.lastActivityAt))))))),
  };
}
