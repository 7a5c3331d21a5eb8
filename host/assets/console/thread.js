// The dispute view of one thread: participants and their read marks, the full
// history with each recipient's delivered/read times, the audit switch, the
// audit trail with Verify, and the export (JSON, or a printable page).
// It follows the thread live: a message or a read refreshes the history.

import { api, withQuery } from './api.js';
import { watch } from './live.js';
import { after, field, fill, h, toast, when } from './dom.js';

const PAGE = 100;

/** The whole history, oldest first, every page. */
async function fullHistory(threadId) {
  const messages = [];
  let before = '';
  for (;;) {
    const page = await api('GET', withQuery(`/api/threads/${encodeURIComponent(threadId)}/messages`, { limit: PAGE, beforeId: before }));
    messages.unshift(...page.messages);
    if (!page.hasMore || page.messages.length === 0) return messages;
    before = page.messages[0].id;
  }
}

export async function threadPage(threadId) {
  const id = encodeURIComponent(threadId);
  const detail = await api('GET', `/admin/threads/${id}`);
  const names = Object.fromEntries(detail.participants.map((p) => [p.id, p.displayName]));
  const nameOf = (userId) => names[userId] ?? userId;

  const participants = h('tbody');
  const history = h('ol', { class: 'history', 'aria-label': 'Messages' });
  const refusals = h('div');
  let decisions = detail.decisions;
  const historyNote = h('p', { class: 'muted' });
  const auditBox = h('div', { class: 'audit' });
  const trail = h('div');
  const verdict = h('p', { role: 'status', class: 'verdict' });
  let messages = [];

  function renderParticipants(list) {
    fill(participants, list.map((p) => h('tr', {},
      h('td', {}, p.displayName, h('div', { class: 'muted small' }, p.id)),
      h('td', {}, p.role),
      h('td', {}, p.online ? h('span', { class: 'ok' }, 'online') : h('span', { class: 'muted' }, p.lastSeenAt ? `last seen ${when(p.lastSeenAt)}` : 'offline')),
      h('td', {}, p.lastReadMessageId ?? '—'))));
  }

  function renderHistory() {
    fill(historyNote, `${messages.length} message${messages.length === 1 ? '' : 's'}`);
    const rewrites = {};
    for (const d of decisions) if (d.verdict === 'rewrite') (rewrites[d.messageId] ??= []).push(d);
    fill(history, messages.map((m) => h('li', { class: 'message', dataset: { messageId: m.id } },
      h('div', { class: 'meta' }, h('strong', {}, nameOf(m.senderId)), ` · ${when(m.createdAt)} · #${m.id}`),
      (rewrites[m.id] ?? []).map((d) => h('p', { class: 'decision' }, `Rewritten by ${d.plugin} ${d.version}: this is the stored body, not what was sent (sha256 of the request ${d.inputSha256.slice(0, 12)}…).`)),
      h('p', { class: 'body' }, m.body),
      h('ul', { class: 'receipts', 'aria-label': `Receipts of message ${m.id}` },
        m.receipts.filter((r) => r.userId !== m.senderId).map((r) => h('li', { dataset: { userId: r.userId } },
          h('span', { class: 'who' }, nameOf(r.userId)),
          h('span', { class: r.deliveredAt ? 'step done' : 'step' }, 'delivered ', r.deliveredAt ? `${when(r.deliveredAt)} (${after(m.createdAt, r.deliveredAt)})` : 'not yet'),
          h('span', { class: r.readAt ? 'step done' : 'step' }, 'read ', r.readAt ? `${when(r.readAt)} (${after(m.createdAt, r.readAt)})` : 'not yet')))))));
  }

  function renderRefusals() {
    const refused = decisions.filter((d) => d.verdict === 'reject');
    fill(refusals, refused.length === 0
      ? h('p', { class: 'muted' }, 'No send was refused by a plugin.')
      : h('table', { class: 'grid', 'aria-label': 'Refused sends' },
        h('thead', {}, h('tr', {}, ['When', 'Sender', 'Plugin', 'Reason'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, refused.map((d) => h('tr', {},
          h('td', {}, when(d.at)),
          h('td', {}, nameOf(d.userId)),
          h('td', {}, `${d.plugin} ${d.version}`),
          h('td', {}, d.reason))))));
  }

  async function refresh() {
    const [list, fresh] = await Promise.all([fullHistory(threadId), api('GET', `/admin/threads/${id}`)]);
    messages = list;
    decisions = fresh.decisions;
    renderHistory();
    renderRefusals();
    renderParticipants(fresh.participants);
  }

  /** The audit switch: since when, by whom, for which case (`audit` of the thread). */
  function renderAudit(audit) {
    const reference = h('input', { type: 'text', name: 'reference', placeholder: 'e.g. D-1042', maxlength: 200 });
    fill(auditBox,
      h('p', { class: 'audit-state' }, audit
        ? h('span', { class: 'ok' }, `Under audit since ${when(audit.since)} by ${audit.by}${audit.case ? ` (case ${audit.case})` : ''}: the history as it stood then is sealed in the trail, and every message and receipt since.`)
        : h('span', { class: 'muted' }, 'Not under audit.')),
      audit ? null : field('Case reference', reference),
      h('button', {
        type: 'button',
        onclick: async () => {
          const path = `/admin/threads/${id}/audit`;
          const next = audit ? (await api('DELETE', path), null) : await api('PUT', path, { case: reference.value.trim() || null });
          toast(audit ? 'Audit ended' : 'Thread put under audit');
          renderAudit(next);
          await renderTrail();
        },
      }, audit ? 'End audit' : 'Put under audit'));
  }

  async function renderTrail() {
    const entries = await api('GET', `/admin/audit/${id}`);
    fill(trail, entries.length === 0
      ? h('p', { class: 'muted' }, 'The trail is empty.')
      : h('table', { class: 'grid', 'aria-label': 'Audit trail' },
        h('thead', {}, h('tr', {}, ['#', 'When', 'Written by', 'Event', 'By', 'Detail'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, entries.map((e) => h('tr', {},
          h('td', { class: 'num' }, e.seq),
          h('td', {}, when(e.createdAt)),
          h('td', {}, e.plugin === 'chat-host' ? 'host evidence' : e.plugin),
          h('td', {}, e.kind),
          h('td', {}, e.actorId),
          h('td', { class: 'detail' }, e.detail))))));
    return entries;
  }

  async function verify() {
    const v = await api('GET', `/admin/audit/${id}/verify`);
    verdict.className = `verdict ${v.valid ? 'ok' : 'bad'}`;
    const checked = v.messagesChecked === null ? '' : `, and ${v.messagesChecked} message${v.messagesChecked === 1 ? '' : 's'} with their receipts match them`;
    fill(verdict, v.valid ? `Valid: ${v.entries} entries check out${checked}.` : `Not valid: ${v.problem}`);
    return v;
  }

  /** The server's export: it records who exported the thread, and when. */
  const bundle = () => api('GET', `/admin/threads/${id}/export`);

  async function exportJson() {
    const data = await bundle();
    const blob = new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' });
    const link = h('a', { href: URL.createObjectURL(blob), download: `thread-${threadId}.json` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  }

  async function printView() {
    const data = await bundle();
    const sheet = h('article', { class: 'print-sheet' },
      h('h1', {}, `Thread ${data.thread.title}`),
      h('p', {}, `Thread ${data.thread.id}, exported by ${data.exportedBy} at ${when(data.exportedAt)}. Audit trail: ${data.audit.verification.valid ? 'valid' : `NOT valid (${data.audit.verification.problem})`}, ${data.audit.verification.entries} entries.`),
      h('h2', {}, 'Participants'),
      h('ul', {}, data.thread.participants.map((p) => h('li', {}, `${p.displayName} (${p.id}, ${p.role}), last read ${p.lastReadMessageId ?? 'nothing'}`))),
      h('h2', {}, 'Messages'),
      h('table', { class: 'grid' }, h('tbody', {}, data.messages.map((m) => h('tr', {},
        h('td', {}, when(m.createdAt)), h('td', {}, nameOf(m.senderId)), h('td', {}, m.body),
        h('td', {}, m.receipts.filter((r) => r.userId !== m.senderId).map((r) => h('div', {}, `${nameOf(r.userId)}: delivered ${when(r.deliveredAt)}, read ${when(r.readAt)}`))))))),
      h('h2', {}, 'Audit trail'),
      h('table', { class: 'grid' }, h('tbody', {}, data.audit.entries.map((e) => h('tr', {}, h('td', {}, e.seq), h('td', {}, when(e.createdAt)), h('td', {}, e.kind), h('td', {}, e.actorId), h('td', {}, e.detail))))));
    document.body.append(sheet);
    document.body.classList.add('printing');
    const done = () => { sheet.remove(); document.body.classList.remove('printing'); };
    window.addEventListener('afterprint', done, { once: true });
    window.print();
  }

  renderParticipants(detail.participants);
  renderAudit(detail.audit);
  await Promise.all([refresh(), renderTrail()]);

  // Live: with an admin JWT the page watches the thread over Socket.IO (a
  // read-only chat:join); a message, a read or a participant coming online
  // (whose queued messages are then delivered) refreshes the history and the
  // trail. The service token cannot open a socket: then it re-reads every 5 s.
  let pending = null;
  const refreshSoon = (ms) => {
    clearTimeout(pending);
    pending = setTimeout(async () => {
      pending = null;
      try { await Promise.all([refresh(), renderTrail()]); } catch { /* the next change retries */ }
    }, ms);
  };
  const stop = watch(threadId, {
    message: () => refreshSoon(150),
    read: () => refreshSoon(150),
    online: () => refreshSoon(1000),
    poll: () => refreshSoon(0),
  });

  const node = h('section', { 'aria-labelledby': 'thread-title' },
    h('p', {}, h('a', { href: '#/threads' }, '← Threads')),
    h('h2', { id: 'thread-title' }, detail.title),
    h('p', { class: 'muted' }, `${detail.id} · created ${when(detail.createdAt)}`),
    h('div', { class: 'columns' },
      h('div', { class: 'card' },
        h('h3', {}, 'Participants'),
        h('table', { class: 'grid', 'aria-label': 'Participants' },
          h('thead', {}, h('tr', {}, ['Who', 'Role', 'Presence', 'Last read'].map((c) => h('th', { scope: 'col' }, c)))),
          participants)),
      h('div', { class: 'card' },
        h('h3', {}, 'Dispute audit'),
        auditBox,
        h('div', { class: 'actions' },
          h('button', { type: 'button', onclick: () => verify().then(renderTrail).catch((e) => fill(verdict, e.message)) }, 'Verify'),
          h('button', { type: 'button', class: 'secondary', onclick: () => exportJson().catch((e) => toast(e.message, 'error')) }, 'Export JSON'),
          h('button', { type: 'button', class: 'secondary', onclick: () => printView().catch((e) => toast(e.message, 'error')) }, 'Printable page')),
        verdict)),
    h('h3', {}, 'History'), historyNote, history,
    h('h3', {}, 'Refused sends'), refusals,
    h('h3', {}, 'Audit trail'), trail);
  return { node, leave: () => { stop(); clearTimeout(pending); } };
}
