// DOM helpers. Text goes in as text nodes and attributes through setAttribute,
// never through innerHTML, so nothing a title or a message body holds is ever
// parsed as markup or run.

/** Makes an element: h('a', { href: '#/x', onclick: fn }, 'text', child, [more]). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A local date and time, or a dash. */
export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

/** "3 s later", between two RFC 3339 times. */
export function after(fromIso, toIso) {
  if (!fromIso || !toIso) return '';
  const ms = new Date(toIso) - new Date(fromIso);
  if (!(ms >= 0)) return '';
  if (ms < 1000) return `${ms} ms later`;
  if (ms < 60_000) return `${Math.round(ms / 1000)} s later`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min later`;
  return `${(ms / 3_600_000).toFixed(1)} h later`;
}

/** A labelled form field: label text, then the control. */
export function field(label, control) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), control);
}

/** Shows a short status message to everyone, screen readers included. */
export function toast(text, kind = 'info') {
  const el = document.getElementById('toast');
  el.className = kind;
  el.textContent = text;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.textContent = ''; el.className = ''; }, 6000);
}
