// The demo chat: sign in as a demo client or freelancer, open the thread with
// another demo user, and chat with the stock socket.io-client: history,
// typing, presence and read receipts. Open it in two windows to see both sides.

import { io } from '/vendor/socket.io.esm.min.js';
import { field, fill, h, toast, when } from '/console/dom.js';

const main = document.getElementById('main');
const who = document.getElementById('who');
const TYPING_EVERY_MS = 2000;

async function post(path, body) {
  const res = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = await res.json().catch(() => null);
  if (!res.ok) throw new Error(json?.error?.message ?? `HTTP ${res.status}`);
  return json;
}

function signInPage() {
  const name = h('input', { type: 'text', name: 'name', required: true, maxlength: 28, autocomplete: 'off' });
  const role = h('select', { name: 'role' }, h('option', { value: 'client' }, 'Client'), h('option', { value: 'freelancer' }, 'Freelancer'));
  const problem = h('p', { class: 'error', role: 'alert' });
  const form = h('form', {
    class: 'card start',
    'aria-label': 'Join the demo',
    onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const session = await post('/demo/session', { displayName: name.value, role: role.value });
        pickPage(session);
      } catch (e) { fill(problem, e.message); }
    },
  },
  h('h2', {}, 'Join the demo chat'),
  h('p', { class: 'muted' }, 'Pick a name and a side; open this page in a second window as the other side.'),
  field('Your name', name), field('You are a', role),
  h('button', { type: 'submit' }, 'Join'), problem);
  fill(main, form);
  name.focus();
}

function pickPage(session) {
  fill(who, `${session.displayName} (${session.role})`);
  const other = h('input', { type: 'text', name: 'other', required: true, autocomplete: 'off' });
  const problem = h('p', { class: 'error', role: 'alert' });
  fill(main, h('form', {
    class: 'card start',
    'aria-label': 'Open a chat',
    onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const { threadId } = await post('/demo/threads', { token: session.token, with: other.value });
        chatPage(session, threadId);
      } catch (e) { fill(problem, e.message); }
    },
  },
  h('h2', {}, 'Chat with'),
  field('Their name', other),
  h('button', { type: 'submit' }, 'Open chat'), problem));
  other.focus();
}

function chatPage(session, threadId) {
  const socket = io({ auth: { token: session.token } });
  const people = h('div', { class: 'people', 'aria-label': 'Participants' });
  const log = h('ol', { class: 'log', 'aria-label': 'Messages', 'aria-live': 'polite' });
  const typing = h('p', { class: 'typing', 'aria-live': 'polite' });
  const input = h('input', { type: 'text', name: 'message', autocomplete: 'off', maxlength: 4000 });
  const participants = new Map(); // userId -> { displayName, online, lastReadMessageId }
  const shown = new Map(); // message id -> { message, node }
  let lastTyping = 0;
  let typingUser = null; // who is typing now, named once the join's answer knows them

  const nameOf = (id) => participants.get(id)?.displayName ?? id;
  const others = () => [...participants.keys()].filter((id) => id !== session.userId);

  function renderPeople() {
    fill(people, [...participants.entries()].map(([id, p]) => h('span', { dataset: { userId: id } },
      h('span', { class: p.online ? 'dot on' : 'dot', 'aria-hidden': 'true' }),
      `${p.displayName}${id === session.userId ? ' (you)' : ''}: ${p.online ? 'online' : 'offline'}`)));
    renderTyping();
  }

  function renderTyping() {
    fill(typing, typingUser ? `${nameOf(typingUser)} is typing…` : '');
  }

  /** "Read" under my messages the others' marks have passed. */
  function receiptOf(message) {
    if (message.senderId !== session.userId) return '';
    const readers = others().filter((id) => BigInt(participants.get(id)?.lastReadMessageId ?? 0) >= BigInt(message.id));
    return readers.length ? `Read by ${readers.map(nameOf).join(', ')}` : 'Sent';
  }

  function renderMessage(m) {
    const meta = h('span', { class: 'meta' }, `${nameOf(m.senderId)} · ${when(m.createdAt)}`, m.senderId === session.userId ? h('span', { class: 'receipt' }, ` · ${receiptOf(m)}`) : null);
    return h('li', { class: m.senderId === session.userId ? 'bubble mine' : 'bubble', dataset: { messageId: m.id } }, meta, m.body);
  }

  function show(m) {
    if (shown.has(m.id)) return;
    const node = renderMessage(m);
    shown.set(m.id, { message: m, node });
    const next = [...log.children].find((li) => BigInt(li.dataset.messageId) > BigInt(m.id));
    log.insertBefore(node, next ?? null);
    log.scrollTop = log.scrollHeight;
    markRead();
  }

  function refreshReceipts() {
    for (const [id, entry] of shown) {
      const node = renderMessage(entry.message);
      entry.node.replaceWith(node);
      shown.set(id, { message: entry.message, node });
    }
  }

  function markRead() {
    const newest = [...shown.values()].map((e) => e.message).filter((m) => m.senderId !== session.userId).pop();
    if (newest && document.visibilityState === 'visible') socket.emit('chat:read', { threadId, messageId: newest.id }, () => {});
  }

  /** Joins (again): the ack's participants are the current presence and read marks. */
  function join(then) {
    socket.emit('chat:join', { threadId }, (ack) => {
      if (!ack?.ok) { toast(ack?.error?.message ?? 'could not join', 'error'); return; }
      for (const p of ack.thread.participants) participants.set(p.userId, { displayName: p.displayName, online: p.online, lastReadMessageId: p.lastReadMessageId });
      renderPeople();
      then?.();
    });
  }

  socket.on('connect', () => join(() => {
    socket.emit('chat:history', { threadId, limit: 50 }, (page) => {
      if (page?.ok) for (const m of page.messages) show(m);
      refreshReceipts();
    });
  }));
  socket.on('connect_error', (e) => toast(`connection refused: ${e.message}`, 'error'));
  socket.on('chat:message', ({ message }) => { if (message.threadId === threadId) show(message); });
  socket.on('chat:typing', (e) => {
    if (e.threadId !== threadId || e.userId === session.userId) return;
    typingUser = e.isTyping ? e.userId : null;
    renderTyping();
  });
  socket.on('chat:read', (e) => {
    if (e.threadId !== threadId || !participants.has(e.userId)) return;
    participants.get(e.userId).lastReadMessageId = e.messageId;
    refreshReceipts();
  });
  socket.on('chat:presence', (e) => {
    // Before the join's answer, the user is not known yet, and the answer may
    // predate this change: ask again.
    if (!participants.has(e.userId)) { join(); return; }
    participants.get(e.userId).online = e.online;
    renderPeople();
  });
  document.addEventListener('visibilitychange', markRead);

  input.addEventListener('input', () => {
    const now = Date.now();
    if (input.value && now - lastTyping > TYPING_EVERY_MS) {
      lastTyping = now;
      socket.emit('chat:typing', { threadId, isTyping: true }, () => {});
    }
  });
  const composer = h('form', {
    class: 'composer',
    'aria-label': 'Write a message',
    onsubmit: (ev) => {
      ev.preventDefault();
      const body = input.value.trim();
      if (!body) return;
      input.value = '';
      lastTyping = 0;
      socket.emit('chat:send-message', { threadId, body, clientMessageId: crypto.randomUUID() }, (ack) => {
        if (ack?.ok) show(ack.message);
        else toast(ack?.error?.message ?? 'not sent', 'error');
      });
    },
  }, h('label', { for: 'message', class: 'muted' }, 'Message'), input, h('button', { type: 'submit' }, 'Send'));
  input.id = 'message';

  fill(main, h('section', { class: 'chat', 'aria-label': 'Chat' }, people, log, typing, composer));
  input.focus();
}

signInPage();
