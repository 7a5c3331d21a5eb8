// The console's session and its calls to the admin HTTP API. The token lives
// in this module's memory only: not in storage, a cookie or a URL, so closing
// or reloading the tab signs out.

let session = null;
const listeners = new Set();

/** An error answer of the API: HTTP status, the contract's code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The signed-in session ({ token, who, operator }), or null. */
export function current() {
  return session;
}

/** Calls fn(session, reason) whenever the session changes. */
export function onSessionChange(fn) {
  listeners.add(fn);
}

function changed(reason) {
  for (const fn of listeners) fn(session, reason);
}

/** Who a token names: the JWT's subject, or "service" for the service token. */
function subjectOf(token) {
  const parts = token.split('.');
  if (parts.length !== 3) return 'service';
  try {
    const claims = JSON.parse(atob(parts[1].replace(/-/g, '+').replace(/_/g, '/')));
    return claims.sub ?? 'service';
  } catch {
    return 'service';
  }
}

/** Checks a token against an admin route and keeps it if it is accepted. */
export async function signIn(token, operator = '') {
  const candidate = { token: token.trim(), who: subjectOf(token.trim()), operator: operator.trim() };
  await request('GET', '/admin/plugins', undefined, candidate);
  session = candidate;
  changed('signed-in');
}

/** Forgets the token. `reason` is shown on the sign-in page. */
export function signOut(reason = '') {
  session = null;
  changed(reason);
}

async function request(method, path, body, as = session) {
  if (!as) throw new ApiError(401, 'unauthorized', 'sign in first');
  const headers = { authorization: `Bearer ${as.token}` };
  if (as.operator) headers['x-chat-operator'] = as.operator;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!res.ok) {
    const err = json?.error ?? {};
    throw new ApiError(res.status, err.code ?? 'http_error', err.message ?? `HTTP ${res.status}`);
  }
  return json;
}

/** An API call with the session's token; a 401 signs out with the server's reason. */
export async function api(method, path, body) {
  try {
    return await request(method, path, body);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401 && session) {
      signOut(`Signed out: ${e.message}. Sign in again.`);
    }
    throw e;
  }
}

/** The route of one key-value entry of a plugin. */
export function kvPath(plugin, key) {
  return `/admin/plugins/${encodeURIComponent(plugin)}/kv/${encodeURIComponent(key)}`;
}

/** A plugin's key-value entry (`{ value, ttlMs }`), or null when there is none. */
export async function kvEntry(plugin, key) {
  try {
    return await api('GET', kvPath(plugin, key));
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return null;
    throw e;
  }
}

/** `path` with the non-empty entries of `params` as its query (arrays repeat the key). */
export function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    for (const v of [value].flat()) if (v !== undefined && v !== null && v !== '') q.append(key, v);
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/**
 * Follows a server-sent event stream of the API (through fetch, so the token
 * goes in a header, not the URL). Calls onEvent(name, data) per event and
 * reconnects after a second when the stream breaks; returns a stop function.
 */
export function follow(path, onEvent) {
  const abort = new AbortController();
  (async () => {
    while (!abort.signal.aborted && session) {
      try {
        const res = await fetch(path, { headers: { authorization: `Bearer ${session.token}`, accept: 'text/event-stream' }, signal: abort.signal });
        if (res.status === 401) { signOut('Signed out: the token is no longer accepted. Sign in again.'); return; }
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let name = 'message';
            const data = [];
            for (const line of block.split('\n')) {
              if (line.startsWith('event:')) name = line.slice(6).trim();
              else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
            }
            if (data.length) onEvent(name, JSON.parse(data.join('\n')));
          }
        }
      } catch {
        if (abort.signal.aborted) return;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  })();
  return () => abort.abort();
}
