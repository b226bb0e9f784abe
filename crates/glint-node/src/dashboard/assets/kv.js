// The KV browser (#/kv, #/kv/STORE): the tenant's stores, a store's keys, and a key's value.

import { h, setText } from './dom.js';
import { api, enc, encKey } from './api.js';
import { fmtAgo, fmtBytes, fmtCount, fmtDate, fmtPct } from './format.js';
import { every, problem } from './view.js';
import { emptyState, pageHead, panel } from './layout.js';

export function kvStoresView(root) {
  const tbody = h('tbody');
  const table = h('table', { class: 'data', id: 'kv-stores' },
    h('thead', {}, h('tr', {}, h('th', {}, 'Store'), h('th', { class: 'num' }, 'Keys'),
      h('th', { class: 'num' }, 'Size'), h('th', {}, 'Of quota'), h('th', {}, 'Created'))),
    tbody);
  const empty = emptyState(h('p', {}, 'No KV stores yet.'),
    h('p', { class: 'muted' }, 'Create one with ', h('code', {}, 'glint kv create NAME'), ', or list it under ', h('code', {}, '[kv] stores'), ' in a manifest.'));
  const limits = h('span', { class: 'muted small' });
  root.append(pageHead(null, 'KV stores', 'The key-value stores functions of this tenant keep their state in.'),
    panel('Stores', h('div', {}, h('div', { class: 'table-scroll' }, table), empty), limits));

  every(5000, async () => {
    const { stores, limits: l } = await api('/kv');
    setText(limits, `up to ${fmtBytes(l.store_quota_bytes)} a store · values up to ${fmtBytes(l.max_value_bytes)}`);
    table.hidden = !stores.length;
    empty.hidden = !!stores.length;
    tbody.replaceChildren(...stores.map((st) => {
      const share = l.store_quota_bytes ? st.bytes / l.store_quota_bytes : 0;
      const fill = h('span');
      fill.style.width = Math.min(100, share * 100).toFixed(1) + '%';
      const tr = h('tr', { class: 'clickable', 'data-store': st.name },
        h('td', { class: 'name' }, h('a', { href: `#/kv/${enc(st.name)}` }, st.name)),
        h('td', { class: 'num' }, fmtCount(st.keys)),
        h('td', { class: 'num' }, fmtBytes(st.bytes)),
        h('td', {}, h('div', { class: `meter ${share > 0.8 ? 'high' : ''}`, title: fmtPct(share) }, fill)),
        h('td', { class: 'muted', title: fmtDate(st.created_at_ms) }, fmtAgo(st.created_at_ms)));
      tr.addEventListener('click', (ev) => {
        if (!ev.target.closest('a')) location.hash = `#/kv/${enc(st.name)}`;
      });
      return tr;
    }));
  });
}

export function kvStoreView(root, store) {
  const prefix = h('input', { type: 'search', id: 'kv-prefix', placeholder: 'Key prefix', spellcheck: 'false', 'aria-label': 'Key prefix' });
  const keys = h('div', { class: 'kv-keys', id: 'kv-keys' });
  const value = h('div', { class: 'kv-value', id: 'kv-value' }, h('p', { class: 'muted' }, 'Pick a key to see its value.'));
  const more = h('button', { type: 'button', class: 'button ghost', hidden: true }, 'Load more');
  root.append(
    pageHead(h('a', { href: '#/kv' }, 'KV stores'), store, 'Keys in order; values are shown as text, JSON or hex.'),
    panel('Keys', h('div', { class: 'kv-layout' }, h('div', { class: 'kv-keys-col' }, keys, h('div', { class: 'panel-body' }, more)), value), prefix));

  let cursor = null;
  let selected = null;
  let generation = 0;

  async function load(reset) {
    const gen = reset ? ++generation : generation;
    const q = new URLSearchParams({ limit: '200' });
    if (prefix.value) q.set('prefix', prefix.value);
    if (!reset && cursor) q.set('cursor', cursor);
    const page = await api(`/kv/${enc(store)}/keys?${q}`, { optional: true });
    if (gen !== generation) return;
    if (!page) {
      root.replaceChildren(emptyState(h('p', {}, `There is no KV store named ${store}.`), h('a', { href: '#/kv' }, 'All stores')));
      return;
    }
    if (reset) keys.replaceChildren();
    for (const key of page.keys) {
      const b = h('button', { type: 'button', 'data-key': key, title: key }, key);
      b.addEventListener('click', () => open(key, b));
      keys.append(b);
    }
    if (reset && !page.keys.length) keys.append(emptyState(prefix.value ? 'No keys with this prefix.' : 'This store is empty.'));
    cursor = page.cursor || null;
    more.hidden = !cursor;
  }

  async function open(key, button) {
    if (selected) selected.removeAttribute('aria-current');
    selected = button;
    button.setAttribute('aria-current', 'true');
    const buf = await api(`/kv/${enc(store)}/keys/${encKey(key)}`, { bytes: true, optional: true });
    if (!buf) {
      value.replaceChildren(h('p', { class: 'muted' }, 'This key is gone.'));
      return;
    }
    const bytes = new Uint8Array(buf);
    const [kind, text] = describe(bytes);
    value.replaceChildren(
      h('h2', { class: 'mono' }, key),
      h('div', { class: 'muted small' }, `${fmtBytes(bytes.length)} · ${kind}`),
      h('pre', { id: 'kv-value-text' }, text));
  }

  let typing;
  prefix.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => load(true).catch((e) => problem(e.message)), 250);
  });
  more.addEventListener('click', () => load(false).catch((e) => problem(e.message)));
  load(true).catch((e) => problem(e.message));
}

/** A value as JSON, text or a hex dump, whichever it is. */
function describe(bytes) {
  let text;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (_) {
    const shown = bytes.slice(0, 4096);
    const rows = [];
    for (let i = 0; i < shown.length; i += 16) {
      const chunk = Array.from(shown.slice(i, i + 16));
      rows.push(`${i.toString(16).padStart(8, '0')}  ${chunk.map((b) => b.toString(16).padStart(2, '0')).join(' ').padEnd(48)}  ${chunk.map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : '.')).join('')}`);
    }
    if (bytes.length > shown.length) rows.push(`… ${fmtBytes(bytes.length - shown.length)} more`);
    return ['binary', rows.join('\n')];
  }
  try {
    if (/^\s*[[{]/.test(text)) return ['JSON', JSON.stringify(JSON.parse(text), null, 2)];
  } catch (_) { /* text that only looks like JSON */ }
  return ['text', text];
}
