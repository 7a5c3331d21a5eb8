// The console's shell: sign-in, navigation and the hash router
// (#/threads, #/threads/<id>, #/users, #/users/<id>, #/plugins, #/dashboard).

import { ApiError, current, onSessionChange, signIn, signOut } from './api.js';
import { field, fill, h, toast } from './dom.js';
import { threadsPage } from './threads.js';
import { threadPage } from './thread.js';
import { pluginsPage } from './plugins.js';
import { dashboardPage } from './dashboard.js';
import { userPage, usersPage } from './users.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
let leave = null; // the open page's clean-up (live feeds)

const pages = [
  { match: /^#\/threads\/(.+)$/, render: (m) => threadPage(decodeURIComponent(m[1])) },
  { match: /^#\/threads$/, render: () => threadsPage() },
  { match: /^#\/users\/(.+)$/, render: (m) => userPage(decodeURIComponent(m[1])) },
  { match: /^#\/users$/, render: () => usersPage() },
  { match: /^#\/plugins$/, render: () => pluginsPage() },
  { match: /^#\/dashboard$/, render: () => dashboardPage() },
];

/** Counts navigations: a page that finishes loading after the next navigation began is dropped. */
let navigation = 0;

async function route() {
  const mine = ++navigation;
  if (leave) { leave(); leave = null; }
  if (!current()) return showSignIn();
  const hash = location.hash || '#/threads';
  const page = pages.find((p) => p.match.test(hash));
  if (!page) { location.hash = '#/threads'; return; }
  for (const link of nav.querySelectorAll('a')) {
    if (hash.startsWith(link.getAttribute('href'))) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  fill(main, h('p', { class: 'muted' }, 'Loading…'));
  try {
    const view = await page.render(hash.match(page.match));
    if (mine !== navigation) { view.leave?.(); return; }
    fill(main, view.node);
    leave = view.leave ?? null;
    main.focus();
  } catch (e) {
    if (!current() || mine !== navigation) return;
    fill(main, h('p', { class: 'error', role: 'alert' }, e instanceof ApiError ? `${e.message} (${e.code})` : String(e)));
  }
}

let dev = false;

function showSignIn(reason = '') {
  nav.hidden = true;
  fill(who);
  const token = h('input', { type: 'password', name: 'token', autocomplete: 'off', required: true, spellcheck: 'false' });
  const operator = h('input', { type: 'text', name: 'operator', autocomplete: 'name', placeholder: 'only with the service token' });
  const problem = h('p', { class: 'error', role: 'alert' }, reason);
  const form = h('form', {
    class: 'card signin',
    'aria-labelledby': 'signin-title',
    onsubmit: async (ev) => {
      ev.preventDefault();
      fill(problem);
      try {
        await signIn(token.value, operator.value);
      } catch (e) {
        fill(problem, e instanceof ApiError ? `Refused: ${e.message}` : String(e));
      }
    },
  },
  h('h2', { id: 'signin-title' }, 'Sign in'),
  h('p', { class: 'muted' }, 'An admin JWT or the service token. It is kept in this tab’s memory only.'),
  field('Admin token', token),
  field('Your name for the audit trail', operator),
  h('button', { type: 'submit' }, 'Sign in'),
  dev && h('button', {
    type: 'button',
    class: 'secondary',
    onclick: async () => {
      const res = await fetch('/console/dev-session', { method: 'POST' });
      if (!res.ok) { fill(problem, 'the dev sign-in is off on this server'); return; }
      await signIn((await res.json()).token);
    },
  }, 'Sign in as the dev admin'),
  problem);
  fill(main, form);
  token.focus();
}

onSessionChange((session, reason) => {
  if (!session) {
    navigation++;
    if (leave) { leave(); leave = null; }
    showSignIn(reason);
    return;
  }
  nav.hidden = false;
  fill(who, h('span', {}, `Signed in as ${session.operator || session.who}`),
    h('button', { type: 'button', class: 'secondary', onclick: () => signOut('You signed out.') }, 'Sign out'));
  route();
});

window.addEventListener('hashchange', route);

(async () => {
  try {
    dev = (await (await fetch('/console/surfaces.json')).json()).devSignIn === true;
  } catch { dev = false; }
  route();
})();
