// One function's page (#/functions/NAME): its numbers, charts, versions, aliases, env names and live log.

import { h, setText } from './dom.js';
import { api, enc } from './api.js';
import { fmtAgo, fmtBytes, fmtCount, fmtDate, fmtMs, fmtPct, fmtRate, fmtTick, fmtVersion } from './format.js';
import { REFRESH_MS, SLOW_REFRESH_MS, every, leaveView, problem } from './view.js';
import { card, emptyState, pageHead, panel } from './layout.js';
import { onWindowChange, windowLabel, windowSeconds } from './stats-window.js';
import { densify, timeChart } from './charts.js';
import { logTail } from './logs.js';

const RANGES = {
  '1h': { ms: 3600e3, label: 'Last hour' },
  '24h': { ms: 86400e3, label: 'Last 24 hours' },
  '7d': { ms: 7 * 86400e3, label: 'Last 7 days' },
};

export function functionView(root, name) {
  const sub = h('div', {});
  const status = h('span', { class: 'badge' }, '…');
  const cards = {
    rps: card('Requests / s'),
    requests: card('Requests'),
    errors: card('Error rate'),
    p50: card('p50'),
    p95: card('p95'),
    p99: card('p99'),
    cpu: card('CPU per request'),
  };
  const cardRow = h('div', { class: 'cards', id: 'function-cards' }, Object.values(cards).map((c) => c.el));
  const versions = h('tbody');
  const aliases = h('div', {});
  const env = h('div', { class: 'panel-body' });
  const whereReady = h('div', { class: 'panel-body', id: 'where-ready' });
  const charts = chartsPanel(name);
  const tail = logTail(name);

  root.append(
    pageHead(h('a', { href: '#/' }, 'Functions'), h('span', {}, name, ' ', status), sub),
    cardRow,
    charts,
    h('div', { class: 'grid-2 section' },
      panel('Versions', h('div', { class: 'table-scroll' }, h('table', { class: 'data' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Version'), h('th', {}, 'Deployed'), h('th', { class: 'num' }, 'Size'),
          h('th', {}, 'World'), h('th', {}, 'Limits'), h('th', { class: 'num' }, 'In flight'), h('th', {}, 'sha256'))),
        versions))),
      h('div', { class: 'stack' },
        panel('Where it is ready', whereReady),
        panel('Aliases', aliases),
        panel('Environment', env))),
    tail);

  async function refreshInfo() {
    const [info, st] = await Promise.all([
      api(`/functions/${enc(name)}`, { optional: true }),
      api(`/functions/${enc(name)}/status`, { optional: true }),
    ]);
    if (!info) {
      // Deleted, or a mistyped link: nothing here will ever load.
      leaveView();
      root.replaceChildren(emptyState(h('p', {}, `There is no function named ${name}.`), h('a', { href: '#/' }, 'All functions')));
      return;
    }
    // No URL: another tenant's function on a node without --base-domain.
    const link = info.url
      ? h('a', { href: info.url, target: '_blank', rel: 'noopener' }, info.url)
      : h('span', { class: 'muted' }, 'no URL: this node has no --base-domain');
    sub.replaceChildren(link,
      h('span', { class: 'muted' }, ` · route ${info.route} · updated ${fmtAgo(info.updated_at_ms)}`));
    const ready = st ? st.ready : null;
    setText(status, ready == null ? '' : ready ? 'ready' : 'not ready');
    status.className = `badge ${ready ? 'good' : ready === false ? 'bad' : ''}`;

    const flight = new Map(((st && st.versions) || []).map((v) => [fmtVersion(v.version), v]));
    versions.replaceChildren(...info.versions.slice().reverse().map((v) => {
      const f = flight.get(fmtVersion(v.version));
      const l = v.limits || {};
      return h('tr', { 'data-version': fmtVersion(v.version) },
        h('td', {}, h('strong', {}, fmtVersion(v.version))),
        h('td', { title: fmtDate(v.created_at_ms) }, fmtAgo(v.created_at_ms)),
        h('td', { class: 'num' }, fmtBytes(v.size)),
        h('td', { class: 'small' }, v.world === 'wasi-0.3' ? 'WASI 0.3' : 'WASI 0.2'),
        h('td', { class: 'muted small' }, l.memory_mb != null ? `${l.memory_mb} MB · ${fmtMs(l.timeout_ms)} · CPU ${fmtMs(l.cpu_ms)}` : '—'),
        h('td', { class: 'num' }, f ? `${f.in_flight} / ${f.max_concurrency}` : '—'),
        h('td', { class: 'mono small muted', title: v.sha256 }, v.sha256.slice(0, 12)));
    }));

    const regions = (st && st.regions) || [];
    whereReady.replaceChildren(regions.length
      ? h('div', { class: 'chips' }, regions.map((r) => {
        const ready = r.nodes.filter((n) => n.ready).length;
        return h('span', { class: `chip ${r.ready ? 'good' : 'bad'}`, 'data-region': r.region, 'data-ready': String(r.ready),
          title: r.nodes.map((n) => `${n.id}: ${n.ready ? 'ready' : 'not ready'}`).join('\n') },
        `${r.region || 'this node'} · ${ready}/${r.nodes.length} ${r.ready ? 'ready' : 'not ready'}`);
      }))
      : h('span', { class: 'muted' }, 'No version is live.'));
    if (st && st.latest) whereReady.append(h('p', { class: 'muted small' }, `${st.latest}, the version latest points to.`));

    aliases.replaceChildren(...(info.aliases.length ? info.aliases.map(aliasRow) : [emptyState('No aliases.')]));

    env.replaceChildren(info.env.length
      ? h('div', {},
        h('div', { class: 'chips', id: 'env-names' }, info.env.map((k) => h('span', { class: 'chip' }, k))),
        h('p', { class: 'muted small' }, 'Values are hidden here; ', h('code', {}, `glint env ${name}`), ' shows them to a deploy key.'))
      : h('span', { class: 'muted' }, 'No environment variables.'));
  }

  async function refreshStats() {
    const stats = await api(`/stats?window=${windowSeconds()}`);
    const st = stats.functions.find((f) => f.name === name) || { requests: 0, errors: 0, rps: 0, error_rate: 0 };
    const w = `last ${windowLabel()}`;
    cards.rps.set(fmtRate(st.rps), '', w);
    cards.requests.set(fmtCount(st.requests), '', w);
    cards.errors.set(fmtPct(st.error_rate), '', `${fmtCount(st.errors)} failed`, st.errors > 0);
    cards.p50.set(fmtMs(st.p50_ms), '', 'latency');
    cards.p95.set(fmtMs(st.p95_ms), '', 'latency');
    cards.p99.set(fmtMs(st.p99_ms), '', 'latency');
    cards.cpu.set(fmtMs(st.cpu_ms_avg), '', 'average');
  }

  every(5000, refreshInfo);
  every(REFRESH_MS, refreshStats);
  onWindowChange(() => refreshStats().catch((e) => problem(e.message)));
}

function aliasRow(alias) {
  const total = alias.targets.reduce((a, t) => a + t.weight, 0) || 1;
  const pct = (t) => (t.weight / total) * 100;
  const bars = alias.targets.map((t, i) => {
    const bar = h('span', { class: `w${Math.min(i, 4)}`, title: `${fmtVersion(t.version)}: ${pct(t).toFixed(1)}%` });
    bar.style.width = pct(t) + '%';
    return bar;
  });
  return h('div', { class: 'alias', 'data-alias': alias.name },
    h('div', { class: 'alias-head' },
      h('span', { class: 'alias-name' }, alias.name),
      h('span', { class: 'muted small' }, `updated ${fmtAgo(alias.updated_at_ms)}`)),
    h('div', { class: 'weights' }, bars),
    h('div', { class: 'weight-legend' }, alias.targets.map((t, i) =>
      h('span', {}, h('i', { class: `w${Math.min(i, 4)}` }), `${fmtVersion(t.version)} `,
        h('strong', {}, `${Math.round(pct(t) * 10) / 10}%`), h('span', { class: 'faint' }, ` (weight ${t.weight})`)))));
}

/** Requests, errors and latency over a chosen range. */
function chartsPanel(name) {
  let range = localStorage.getItem('glint.range') || '1h';
  if (!RANGES[range]) range = '1h';
  const requests = timeChart();
  const errors = timeChart();
  const latency = timeChart();
  const titles = { requests: h('span', { class: 'now' }), errors: h('span', { class: 'now' }), latency: h('span', { class: 'legend' }) };
  const picker = h('div', { class: 'segmented', role: 'group', 'aria-label': 'Chart range' });
  const latencyLabel = h('h3', {}, 'Latency');
  const body = h('div', { class: 'panel-body grid-3' },
    h('div', {}, h('div', { class: 'chart-title' }, h('h3', {}, 'Requests'), titles.requests), requests.el),
    h('div', {}, h('div', { class: 'chart-title' }, h('h3', {}, 'Errors'), titles.errors), errors.el),
    h('div', {}, h('div', { class: 'chart-title' }, latencyLabel, titles.latency), latency.el));
  const el = panel('Traffic', body, picker);

  function renderPicker() {
    picker.replaceChildren(...Object.entries(RANGES).map(([key, r]) => h('button', {
      type: 'button',
      'aria-pressed': String(key === range),
      title: r.label,
      onclick: () => {
        range = key;
        localStorage.setItem('glint.range', key);
        renderPicker();
        refresh().catch((e) => problem(e.message));
      },
    }, key)));
  }

  /**
   * The last hour from the node's recent requests, with percentiles; longer ranges from
   * metered usage, per hour, which keeps total duration, so only its average.
   */
  async function load() {
    const end = Date.now();
    const start = end - RANGES[range].ms;
    if (range === '1h') {
      const series = await api(`/stats/series?function=${enc(name)}&window=3600&step=60`);
      const pts = densify(series.points, start, end, series.step_seconds * 1000, { requests: 0, errors: 0 });
      return {
        times: pts.map((p) => p.start_ms), requests: pts.map((p) => p.requests), errors: pts.map((p) => p.errors),
        latency: [
          { label: 'p50', values: pts.map((p) => (p.requests ? p.p50_ms : null)) },
          { label: 'p95', values: pts.map((p) => (p.requests ? p.p95_ms : null)), cls: 's1' },
        ],
      };
    }
    const usage = await api(`/usage?function=${enc(name)}&period=hour&start=${Math.floor(start)}&end=${Math.floor(end)}`);
    const pts = densify(usage.buckets, start, end, 3600e3, { requests: 0, errors: 0, wall_ms: 0 });
    return {
      times: pts.map((p) => p.start_ms), requests: pts.map((p) => p.requests), errors: pts.map((p) => p.errors),
      latency: [{ label: 'average', values: pts.map((p) => (p.requests ? p.wall_ms / p.requests : null)) }],
    };
  }

  async function refresh() {
    const d = await load();
    const sum = (a) => a.reduce((x, v) => x + (v || 0), 0);
    setText(titles.requests, fmtCount(sum(d.requests)));
    setText(titles.errors, fmtCount(sum(d.errors)));
    setText(latencyLabel, d.latency.length > 1 ? 'Latency' : 'Average duration');
    titles.latency.replaceChildren(...(d.latency.length > 1
      ? d.latency.map((ser) => h('span', {}, h('i', { class: ser.cls || '' }), ser.label)) : []));
    requests.update({ times: d.times, series: [{ label: 'requests', values: d.requests }], format: fmtTick, area: true });
    errors.update({ times: d.times, series: [{ label: 'errors', values: d.errors, cls: 'bad' }], format: fmtTick, area: true });
    latency.update({ times: d.times, series: d.latency, format: (v) => fmtMs(v) });
  }

  renderPicker();
  every(SLOW_REFRESH_MS, refresh);
  return el;
}
