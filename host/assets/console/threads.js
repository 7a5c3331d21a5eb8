// Threads: search by participants (ids or display-name prefixes; several
// find the threads they share), by title and by date range, newest activity first.

import { api, withQuery } from './api.js';
import { field, fill, h, when } from './dom.js';

/** The search's state survives going to a thread and back. */
const last = { participant: '', title: '', from: '', to: '' };

/** RFC 3339 of a local date input (start of that day), or ''. */
function dayStart(value, plusDays = 0) {
  if (!value) return '';
  const d = new Date(`${value}T00:00:00`);
  d.setDate(d.getDate() + plusDays);
  return d.toISOString();
}

export async function threadsPage() {
  const participant = h('input', { type: 'search', name: 'participant', value: last.participant, placeholder: 'e.g. alice, bob' });
  const title = h('input', { type: 'search', name: 'title', value: last.title });
  const from = h('input', { type: 'date', name: 'from', value: last.from });
  const to = h('input', { type: 'date', name: 'to', value: last.to });
  const results = h('div', { 'aria-live': 'polite' });
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Next page');
  let cursor = null;
  let rows = null;

  async function search(next = false) {
    Object.assign(last, { participant: participant.value, title: title.value, from: from.value, to: to.value });
    const query = {
      participant: participant.value.split(',').map((s) => s.trim()).filter(Boolean),
      title: title.value.trim(),
      from: dayStart(from.value),
      to: dayStart(to.value, 1),
      cursor: next ? cursor : '',
    };
    const page = await api('GET', withQuery('/admin/threads', query));
    if (!next) {
      rows = h('tbody');
      fill(results, page.threads.length === 0
        ? h('p', { class: 'muted' }, 'No thread matches.')
        : h('table', { class: 'grid', 'aria-label': 'Threads found' },
          h('thead', {}, h('tr', {}, ['Thread', 'Participants', 'Last message', 'Messages', 'Last activity'].map((c) => h('th', { scope: 'col' }, c)))),
          rows));
    }
    for (const t of page.threads) rows?.append(row(t));
    cursor = page.nextCursor;
    more.hidden = !cursor;
  }

  const form = h('form', {
    class: 'search',
    role: 'search',
    'aria-label': 'Find threads',
    onsubmit: (ev) => { ev.preventDefault(); search().catch(showError); },
  },
  field('Participants', participant),
  field('Title', title),
  field('Active from', from),
  field('Active until', to),
  h('button', { type: 'submit' }, 'Search'));
  more.addEventListener('click', () => search(true).catch(showError));

  function showError(e) {
    fill(results, h('p', { class: 'error', role: 'alert' }, e.message));
  }

  await search();
  return { node: h('section', { 'aria-labelledby': 'threads-title' }, h('h2', { id: 'threads-title' }, 'Threads'), form, results, more) };
}

function row(t) {
  const names = t.participants.map((p) => `${p.displayName} (${p.role})`).join(', ');
  const lastMessage = t.lastMessage
    ? h('span', {}, h('strong', {}, `${t.participants.find((p) => p.id === t.lastMessage.senderId)?.displayName ?? t.lastMessage.senderId}: `), t.lastMessage.body.slice(0, 120))
    : h('span', { class: 'muted' }, 'no messages');
  return h('tr', {},
    h('td', {}, h('a', { href: `#/threads/${encodeURIComponent(t.id)}` }, t.title), h('div', { class: 'muted small' }, t.id)),
    h('td', {}, names),
    h('td', {}, lastMessage),
    h('td', { class: 'num' }, t.messageCount),
    h('td', {}, when(t.lastActivityAt)));
}
