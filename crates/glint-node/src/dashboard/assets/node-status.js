// The node's page (#/node): its version, uptime and counters, and the key signed in with.

import { h } from './dom.js';
import { api } from './api.js';
import { fmtCount, fmtDuration, fmtMs } from './format.js';
import { every } from './view.js';
import { pageHead, panel } from './layout.js';

export function nodeView(root) {
  const facts = h('dl', { class: 'facts', id: 'node-facts' });
  const session = h('dl', { class: 'facts' });
  const b = document.body.dataset;
  session.append(
    h('dt', {}, 'Tenant'), h('dd', {}, b.tenant),
    h('dt', {}, 'Role'), h('dd', {}, b.role),
    h('dt', {}, 'Key'), h('dd', {}, h('span', { class: 'mono' }, `${b.keyPrefix}…`), ` · ${b.keyName}`),
    h('dt', {}, 'Admin API'), h('dd', { class: 'mono' }, `${location.origin}/api/v1`));
  root.append(
    pageHead(null, 'Node', 'This Glint node and the key you signed in with.'),
    h('div', { class: 'grid-2' },
      panel('Status', h('div', { class: 'panel-body' }, facts)),
      panel('Session', h('div', { class: 'panel-body' }, session))));

  every(5000, async () => {
    const n = await api('/node');
    const rows = [
      ['Version', `glint ${n.version}`],
      ['Uptime', fmtDuration(n.uptime_seconds)],
      ['Data plane', h('a', { href: n.data_plane_url, target: '_blank', rel: 'noopener', class: 'mono' }, n.data_plane_url)],
      ['Functions', fmtCount(n.functions)],
      ['Compiles', `${fmtCount(n.compiles)} (${fmtMs(n.compile_ms_total)} in all)`],
      ['Loaded from cache', fmtCount(n.cache_loads)],
      ['Log lines dropped', n.log_lines_dropped ? h('span', { class: 'bad' }, fmtCount(n.log_lines_dropped)) : '0'],
    ];
    facts.replaceChildren(...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
  });
}
