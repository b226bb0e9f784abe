// The functions overview (#/): every function with its traffic over the chosen window.

import { h, setText } from './dom.js';
import { api, enc } from './api.js';
import { fmtCount, fmtDuration, fmtMs, fmtPct, fmtRate, fmtTargets } from './format.js';
import { REFRESH_MS, SLOW_REFRESH_MS, every, problem } from './view.js';
import { card, emptyState, pageHead, panel } from './layout.js';
import { onWindowChange, windowLabel, windowSeconds } from './stats-window.js';
import { densify, sparkline } from './charts.js';

export function overviewView(root) {
  const cards = {
    functions: card('Functions'),
    rps: card('Requests / s'),
    errors: card('Error rate'),
    p95: card('Slowest p95'),
    uptime: card('Node uptime'),
  };
  const tbody = h('tbody');
  const table = h('table', { class: 'data', id: 'functions-table' },
    h('thead', {}, h('tr', {},
      h('th', {}, 'Function'), h('th', {}, 'Last hour'),
      h('th', { class: 'num' }, 'Req/s'), h('th', { class: 'num' }, 'Requests'),
      h('th', { class: 'num' }, 'Errors'), h('th', { class: 'num' }, 'p50'),
      h('th', { class: 'num' }, 'p95'), h('th', { class: 'num' }, 'p99'),
      h('th', { class: 'num' }, 'CPU avg'), h('th', {}, 'Serving'))),
    tbody);
  const empty = emptyState(
    h('p', {}, 'No functions yet.'),
    h('p', { class: 'muted' }, 'Deploy one with ', h('code', {}, 'glint deploy examples/hello'), '.'));
  empty.hidden = true;
  const windowNote = h('span', { class: 'muted small' });
  root.append(
    pageHead(null, 'Functions', 'Traffic, errors and latency of every function on this node.'),
    h('div', { class: 'cards' }, Object.values(cards).map((c) => c.el)),
    panel('All functions', h('div', {}, h('div', { class: 'table-scroll' }, table), empty), windowNote));

  const rows = new Map();
  let names = [];
  let sparksAt = 0;

  function row(name) {
    if (rows.has(name)) return rows.get(name);
    const cell = (stat, cls = 'num') => h('td', { class: cls, 'data-stat': stat });
    const r = {
      tr: h('tr', { 'data-function': name, class: 'clickable' }),
      route: h('div', { class: 'muted small' }),
      spark: h('td', { class: 'spark' }),
      rps: cell('rps'), requests: cell('requests'), errors: cell('errors'),
      p50: cell('p50'), p95: cell('p95'), p99: cell('p99'), cpu: cell('cpu'),
      serving: cell('serving', 'mono small'),
    };
    const link = h('a', { href: `#/functions/${enc(name)}` }, name);
    r.tr.append(h('td', { class: 'name' }, link, r.route), r.spark, r.rps, r.requests, r.errors,
      r.p50, r.p95, r.p99, r.cpu, r.serving);
    r.tr.addEventListener('click', (ev) => {
      if (!ev.target.closest('a')) location.hash = `#/functions/${enc(name)}`;
    });
    rows.set(name, r);
    return r;
  }

  async function refresh() {
    const [list, stats, node] = await Promise.all([
      api('/functions'),
      api(`/stats?window=${windowSeconds()}`),
      api('/node'),
    ]);
    const byName = new Map(stats.functions.map((f) => [f.name, f]));
    const functions = list.functions;
    names = functions.map((f) => f.name);
    setText(windowNote, `over the last ${windowLabel()}`);

    let rps = 0, requests = 0, errors = 0, slowest = null;
    const ordered = [];
    for (const f of functions) {
      // A function deployed since the stats were read has had no requests yet.
      const st = byName.get(f.name) || { requests: 0, errors: 0, rps: 0, error_rate: 0 };
      rps += st.rps || 0;
      requests += st.requests || 0;
      errors += st.errors || 0;
      if (st.p95_ms != null && (!slowest || st.p95_ms > slowest.p95_ms)) slowest = { name: f.name, p95_ms: st.p95_ms };
      const r = row(f.name);
      setText(r.route, f.route);
      setText(r.rps, fmtRate(st.rps));
      setText(r.requests, fmtCount(st.requests));
      setText(r.errors, fmtPct(st.error_rate));
      r.errors.classList.toggle('bad', st.errors > 0);
      setText(r.p50, fmtMs(st.p50_ms));
      setText(r.p95, fmtMs(st.p95_ms));
      setText(r.p99, fmtMs(st.p99_ms));
      setText(r.cpu, fmtMs(st.cpu_ms_avg));
      setText(r.serving, fmtTargets(f.latest));
      ordered.push(r.tr);
    }
    for (const [name, r] of rows) {
      if (!names.includes(name)) {
        r.tr.remove();
        rows.delete(name);
      }
    }
    // Appending existing rows moves them into list order without rebuilding them.
    tbody.append(...ordered);
    table.hidden = functions.length === 0;
    empty.hidden = functions.length !== 0;

    cards.functions.set(fmtCount(functions.length), '', `${fmtCount(node.compiles)} compiled, ${fmtCount(node.cache_loads)} from cache`);
    cards.rps.set(fmtRate(rps), '', `${fmtCount(requests)} requests in ${windowLabel()}`);
    cards.errors.set(fmtPct(requests ? errors / requests : 0), '', `${fmtCount(errors)} failed`, errors > 0);
    cards.p95.set(slowest ? fmtMs(slowest.p95_ms) : '—', '', slowest ? slowest.name : '');
    cards.uptime.set(fmtDuration(node.uptime_seconds), '', `glint ${node.version}`);

    if (Date.now() - sparksAt > SLOW_REFRESH_MS) {
      sparksAt = Date.now();
      refreshSparks();
    }
  }

  async function refreshSparks() {
    // One series per function; past a page of them the table is for scanning, not charts.
    for (const name of names.slice(0, 50)) {
      const series = await api(`/stats/series?function=${enc(name)}&window=3600&step=60`, { optional: true })
        .catch(() => null); // deleted meanwhile: the next refresh drops its row
      const r = rows.get(name);
      if (!series || !r) continue;
      const end = Date.now();
      const points = densify(series.points, end - 3600e3, end, series.step_seconds * 1000, { requests: 0 });
      r.spark.replaceChildren(sparkline(points.map((p) => p.requests)));
    }
  }

  every(REFRESH_MS, refresh);
  onWindowChange(() => refresh().catch((e) => problem(e.message)));
}
