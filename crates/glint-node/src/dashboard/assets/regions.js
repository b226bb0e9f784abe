// The regions page (#/regions): every region of the store, its nodes, when it was last
// heard, and its copies of the shared data with how far behind each is.

import { h } from './dom.js';
import { api } from './api.js';
import { fmtCount, fmtMs } from './format.js';
import { every } from './view.js';
import { emptyState, pageHead, panel } from './layout.js';

export function regionsView(root) {
  const tbody = h('tbody');
  const table = h('table', { class: 'data', id: 'regions' },
    h('thead', {}, h('tr', {}, h('th', {}, 'Region'), h('th', {}, 'Nodes'), h('th', {}, 'Last heard'),
      h('th', {}, 'Copies'))),
    tbody);
  const empty = emptyState(h('p', {}, 'No node has reported yet.'));
  root.append(
    pageHead(null, 'Regions', 'Where this store\'s nodes run. Each region serves from its own copies; writes go to each copy\'s origin.'),
    panel('Regions', h('div', {}, h('div', { class: 'table-scroll' }, table), empty)));

  every(5000, async () => {
    const { regions } = await api('/regions');
    table.hidden = !regions.length;
    empty.hidden = !!regions.length;
    tbody.replaceChildren(...regions.map((r) => h('tr', { 'data-region': r.region },
      h('td', { class: 'name' }, r.region || '(none)', r.this_region ? h('span', { class: 'badge' }, 'this node') : null),
      h('td', {}, `${fmtCount(r.nodes.length)}: `, h('span', { class: 'mono small' }, r.nodes.map((n) => n.id).join(', '))),
      h('td', { class: r.last_heard_ms_ago > 15000 ? 'bad' : 'muted' }, `${fmtMs(r.last_heard_ms_ago)} ago`),
      h('td', { class: 'copies' }, copiesCell(r.copies || [])))));
  });
}

/** A region's copies: `registry 0 behind`, or a dash for the region holding the origins. */
function copiesCell(copies) {
  if (!copies.length) return h('span', { class: 'muted', title: 'This region reads the origins themselves.' }, '—');
  return h('div', { class: 'chips' }, copies.map((c) => {
    const text = c.lag != null ? `${c.of} ${fmtCount(c.lag)} behind` : `${c.of} unreachable`;
    const bad = c.lag == null || c.lag > 0;
    return h('span', { class: `chip ${bad ? 'bad' : ''}`, 'data-copy': c.of, title: c.error || '' }, text);
  }));
}
