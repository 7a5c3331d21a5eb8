// Following a thread live. An admin JWT opens a Socket.IO connection with the
// stock client and joins the thread read-only (as the contract lets admins
// do), so every message, read and presence change arrives as it happens, from
// any instance of the cluster. The service token cannot open a socket; then
// the page re-reads on a timer.

import { io } from '/vendor/socket.io.esm.min.js';
import { current } from './api.js';

const POLL_MS = 5000;

/** Calls on.message / on.read / on.online as the thread changes (or on.poll); returns a stop function. */
export function watch(threadId, on) {
  const session = current();
  if (!session || session.who === 'service') {
    const timer = setInterval(on.poll, POLL_MS);
    return () => clearInterval(timer);
  }
  const socket = io({ auth: { token: session.token }, transports: ['websocket'] });
  socket.on('connect', () => socket.emit('chat:join', { threadId }, () => on.poll()));
  socket.on('chat:message', (e) => { if (e?.message?.threadId === threadId) on.message(); });
  socket.on('chat:read', (e) => { if (e?.threadId === threadId) on.read(); });
  socket.on('chat:presence', (e) => { if (e?.online) on.online(); });
  return () => socket.disconnect();
}
