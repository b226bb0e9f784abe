// The Glint dashboard: a small hand-written app over the admin API (/api/v1).
//
// The page is one shell (app.html); the part after '#' picks the view. Each view builds
// its DOM once, then refreshes numbers in place on a timer, so an operator can leave it
// open. All text goes in through textContent, never innerHTML: function output and KV
// values are user data. The session cookie authenticates every fetch; a 401 sends the
// browser back to the sign-in form.
'use strict';

const WINDOWS = [[60, '1m'], [300, '5m'], [900, '15m'], [3600, '1h']];
const REFRESH_MS = 2000;
const SLOW_REFRESH_MS = 10000;
const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];
const MAX_LOG_LINES = 1000;

const state = {
  window: Number(localStorage.getItem('glint.window')) || 300,
  windowListeners: new Set(),
};

// ---------------------------------------------------------------------------------------
// DOM

/** An HTML element: h('a', {href, class, onclick, dataset-like 'data-x'}, ...children). */
function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, same shape as h(). */
function s(tag, attrs, ...children) {
  return build(document.createElementNS('http://www.w3.org/2000/svg', tag), attrs, children);
}

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'hidden') el.hidden = true;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c !== undefined && c !== null && c !== false) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function setText(el, text) {
  const t = String(text);
  if (el.textContent !== t) el.textContent = t;
}

// ---------------------------------------------------------------------------------------
// The admin API

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * GET /api/v1 + path. `optional`: a 404 (a function or key deleted meanwhile) gives null
 * instead of an error. `bytes`: the raw body as an ArrayBuffer.
 */
async function api(path, { optional = false, bytes = false } = {}) {
  const res = await fetch('/api/v1' + path, {
    credentials: 'same-origin',
    headers: { accept: bytes ? '*/*' : 'application/json' },
  });
  if (res.status === 401) {
    location.assign('/dashboard');
    throw new ApiError(401, 'signed out');
  }
  if (res.status === 404 && optional) return null;
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try {
      message = (await res.json()).error.message || message;
    } catch (_) { /* not JSON: keep the status line */ }
    throw new ApiError(res.status, message);
  }
  return bytes ? res.arrayBuffer() : res.json();
}

const enc = encodeURIComponent;
/** A KV key as path segments: keys may hold '/', which the route takes as the rest. */
const encKey = (key) => key.split('/').map(enc).join('/');

// ---------------------------------------------------------------------------------------
// Formatting

const nf = new Intl.NumberFormat('en-US');

function fmtCount(n) {
  return n == null ? '—' : nf.format(Math.round(n));
}

/** A count on a chart axis, where a small scale has halves. */
const fmtTick = (n) => (n == null ? '—' : Number.isInteger(n) ? fmtCount(n) : String(n));

function fmtRate(n) {
  if (n == null) return '—';
  if (n === 0) return '0';
  if (n < 0.01) return '<0.01';
  if (n < 10) return n.toFixed(2);
  if (n < 1000) return n.toFixed(1);
  return (n / 1000).toFixed(1) + 'k';
}

function fmtMs(ms) {
  if (ms == null || Number.isNaN(ms)) return '—';
  if (ms === 0) return '0 ms';
  if (ms < 1) return ms.toFixed(2) + ' ms';
  if (ms < 100) return ms.toFixed(1) + ' ms';
  if (ms < 1000) return Math.round(ms) + ' ms';
  return (ms / 1000).toFixed(2) + ' s';
}

function fmtPct(ratio) {
  if (ratio == null) return '—';
  const p = ratio * 100;
  if (p === 0) return '0%';
  if (p < 0.1) return '<0.1%';
  return (p < 10 ? p.toFixed(1) : Math.round(p)) + '%';
}

function fmtBytes(n) {
  if (n == null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + ' ' + units[i];
}

function fmtDuration(seconds) {
  const d = Math.floor(seconds / 86400), hr = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60), sec = Math.floor(seconds % 60);
  if (d) return `${d}d ${hr}h`;
  if (hr) return `${hr}h ${m}m`;
  if (m) return `${m}m ${sec}s`;
  return `${sec}s`;
}

function fmtAgo(ms) {
  if (!ms) return '—';
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 60) return 'just now';
  if (s < 3600) return Math.floor(s / 60) + ' min ago';
  if (s < 86400) return Math.floor(s / 3600) + ' h ago';
  return Math.floor(s / 86400) + ' d ago';
}

const fmtDate = (ms) => (ms ? new Date(ms).toLocaleString() : '—');
const pad2 = (n, w = 2) => String(n).padStart(w, '0');

function fmtClock(ms) {
  const d = new Date(ms);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}.${pad2(d.getMilliseconds(), 3)}`;
}

/** Versions arrive as numbers (1) in some answers and as "v1" in others. */
const fmtVersion = (v) => (typeof v === 'number' ? 'v' + v : String(v));

function fmtTargets(targets) {
  if (!targets || !targets.length) return '—';
  if (targets.length === 1) return fmtVersion(targets[0].version);
  const total = targets.reduce((a, t) => a + t.weight, 0) || 1;
  return targets.map((t) => `${fmtVersion(t.version)} ${Math.round((t.weight / total) * 100)}%`).join(' · ');
}

// ---------------------------------------------------------------------------------------
// Views, routing and timers

const view = document.getElementById('view');
let leaving = [];

/** Runs `fn` when the current view is left. */
function onLeave(fn) {
  leaving.push(fn);
}

/**
 * Runs `fn` now and again `ms` after each run ends (so a slow node is never asked twice
 * at once), until the view is left. A failure shows in the view's banner and the timer
 * keeps going: a node that restarts comes back by itself.
 */
function every(ms, fn) {
  let stopped = false;
  let timer;
  const tick = async () => {
    try {
      await fn();
      problem(null);
    } catch (e) {
      if (e.status !== 401) problem(e.message);
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  onLeave(() => {
    stopped = true;
    clearTimeout(timer);
  });
}

/** Calls `fn` when the stats window changes, while this view is shown. */
function onWindowChange(fn) {
  state.windowListeners.add(fn);
  onLeave(() => state.windowListeners.delete(fn));
}

const banner = h('div', { class: 'notice error', role: 'alert', hidden: true });

function problem(message) {
  banner.hidden = !message;
  if (message) setText(banner, `Could not reach the node: ${message}. Retrying…`);
}

const routes = [
  [/^#?\/?$/, 'overview', overviewView],
  [/^#\/functions\/([^/]+)$/, 'overview', functionView],
  [/^#\/kv$/, 'kv', kvStoresView],
  [/^#\/kv\/([^/]+)$/, 'kv', kvStoreView],
  [/^#\/node$/, 'node', nodeView],
];

/** Stops everything the current view started. */
function leaveView() {
  for (const fn of leaving) fn();
  leaving = [];
}

function route() {
  leaveView();
  problem(null);
  const root = h('div');
  view.replaceChildren(banner, root);
  for (const [pattern, nav, render] of routes) {
    const m = location.hash.match(pattern);
    if (!m) continue;
    for (const a of document.querySelectorAll('[data-nav]')) {
      a.classList.toggle('active', a.dataset.nav === nav);
    }
    showWindowPicker(nav === 'overview');
    render(root, ...m.slice(1).map(decodeURIComponent));
    window.scrollTo(0, 0);
    return;
  }
  root.append(emptyState('Nothing here.', h('a', { href: '#/' }, 'Back to functions')));
}

function emptyState(...children) {
  return h('div', { class: 'empty' }, ...children);
}

function pageHead(crumbs, title, sub, actions) {
  return h('div', { class: 'page-head' },
    h('div', {},
      crumbs && h('div', { class: 'crumbs' }, crumbs),
      h('h1', {}, title),
      sub && h('div', { class: 'sub' }, sub)),
    actions && h('div', { class: 'actions' }, actions));
}

function panel(title, body, actions) {
  return h('section', { class: 'panel' },
    h('div', { class: 'panel-head' }, h('h2', {}, title), actions && h('div', { class: 'actions' }, actions)),
    body);
}

/** A stat card whose value is updated in place. */
function card(label) {
  const value = h('span', {});
  const unit = h('span', { class: 'unit' });
  const hint = h('div', { class: 'hint' });
  const el = h('div', { class: 'card' }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value, unit), hint);
  return {
    el,
    set(v, u = '', note = '', bad = false) {
      setText(value, v);
      setText(unit, u);
      setText(hint, note);
      el.classList.toggle('bad', bad);
    },
  };
}

function showWindowPicker(visible) {
  const picker = document.getElementById('window-picker');
  picker.hidden = !visible;
}

function renderWindowPicker() {
  const picker = document.getElementById('window-picker');
  picker.replaceChildren(...WINDOWS.map(([seconds, label]) => h('button', {
    type: 'button',
    'aria-pressed': String(seconds === state.window),
    title: `Stats over the last ${label}`,
    onclick: () => {
      state.window = seconds;
      localStorage.setItem('glint.window', String(seconds));
      renderWindowPicker();
      for (const fn of state.windowListeners) fn();
    },
  }, label)));
}

const windowLabel = () => (WINDOWS.find(([s]) => s === state.window) || [0, state.window + 's'])[1];

// ---------------------------------------------------------------------------------------
// Charts: hand-drawn SVG, redrawn at the container's width

/** The next round number (1, 2 or 5 times a power of ten) at or above `v`. */
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

/** Path data for values, broken where a value is null (a bucket with no requests). */
function linePath(values, x, y) {
  let d = '';
  let pen = false;
  values.forEach((v, i) => {
    if (v == null) {
      pen = false;
      return;
    }
    d += (pen ? 'L' : 'M') + x(i).toFixed(1) + ' ' + y(v).toFixed(1);
    pen = true;
  });
  return d;
}

function sparkline(values) {
  const W = 120, H = 28;
  const max = niceMax(Math.max(0, ...values));
  const x = (i) => (values.length <= 1 ? 0 : (i * W) / (values.length - 1));
  const y = (v) => 2 + (H - 4) * (1 - v / max);
  const line = linePath(values, x, y);
  return s('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: 'spark', 'aria-hidden': 'true' },
    values.length > 1 && s('path', { class: 'area', d: `${line}L${W} ${H}L0 ${H}Z` }),
    values.length > 1 && s('path', { class: 'line', d: line }));
}

/**
 * A time-series chart. update({times, series: [{label, values, cls}], format, area})
 * draws it; hovering shows each series' value at that time.
 */
function timeChart(height = 150) {
  const el = h('div', { class: 'chart' });
  const tip = h('div', { class: 'tip', hidden: true });
  let data = null;
  const observer = new ResizeObserver(() => draw());
  observer.observe(el);
  onLeave(() => observer.disconnect());

  function draw() {
    if (!data || !el.clientWidth) return;
    const W = el.clientWidth, H = height;
    const pad = { l: 44, r: 10, t: 8, b: 22 };
    const n = data.times.length;
    const all = data.series.flatMap((ser) => ser.values.filter((v) => v != null));
    const max = niceMax(Math.max(0, ...all));
    const x = (i) => pad.l + (n <= 1 ? 0 : (i * (W - pad.l - pad.r)) / (n - 1));
    const y = (v) => pad.t + (H - pad.t - pad.b) * (1 - v / max);
    const svg = s('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img' });
    for (const f of [0, 0.5, 1]) {
      const yy = Math.round(y(max * f)) + 0.5;
      svg.append(
        s('line', { class: 'grid', x1: pad.l, x2: W - pad.r, y1: yy, y2: yy }),
        s('text', { class: 'axis', x: pad.l - 8, y: yy + 4, 'text-anchor': 'end' }, data.format(max * f)));
    }
    const span = n > 1 ? data.times[n - 1] - data.times[0] : 0;
    const timeLabel = (ms) => new Date(ms).toLocaleString(undefined, span > 86400e3
      ? { weekday: 'short', hour: '2-digit', minute: '2-digit' }
      : { hour: '2-digit', minute: '2-digit' });
    if (n > 1) {
      [[0, 'start'], [Math.floor((n - 1) / 2), 'middle'], [n - 1, 'end']].forEach(([i, anchor]) =>
        svg.append(s('text', { class: 'axis', x: x(i), y: H - 5, 'text-anchor': anchor }, timeLabel(data.times[i]))));
    }
    data.series.forEach((ser, k) => {
      const d = linePath(ser.values, x, y);
      if (!d) return;
      if (data.area && k === 0) {
        svg.append(s('path', { class: `area ${ser.cls || ''}`, d: `${d}L${x(n - 1)} ${y(0)}L${x(0)} ${y(0)}Z` }));
      }
      svg.append(s('path', { class: `line ${ser.cls || ''}`, d }));
      // A value with no neighbours draws no line; mark it so it is not lost.
      ser.values.forEach((v, i) => {
        if (v != null && ser.values[i - 1] == null && ser.values[i + 1] == null) {
          svg.append(s('circle', { class: `point ${ser.cls || ''}`, cx: x(i), cy: y(v), r: 2.5 }));
        }
      });
    });

    const cursor = s('line', { class: 'cursor', y1: pad.t, y2: H - pad.b, visibility: 'hidden' });
    const dots = data.series.map((ser) => s('circle', { class: `dot ${ser.cls || ''}`, r: 3.5, visibility: 'hidden' }));
    const overlay = s('rect', { x: pad.l, y: 0, width: Math.max(0, W - pad.l - pad.r), height: H, fill: 'transparent' });
    overlay.addEventListener('mousemove', (ev) => {
      const box = overlay.getBoundingClientRect();
      const i = n <= 1 ? 0 : Math.round(((ev.clientX - box.left) / box.width) * (n - 1));
      const px = x(i);
      for (const a of ['x1', 'x2']) cursor.setAttribute(a, px);
      cursor.setAttribute('visibility', 'visible');
      data.series.forEach((ser, k) => {
        const v = ser.values[i];
        dots[k].setAttribute('visibility', v == null ? 'hidden' : 'visible');
        if (v != null) {
          dots[k].setAttribute('cx', px);
          dots[k].setAttribute('cy', y(v));
        }
      });
      tip.replaceChildren(
        h('div', { class: 'muted' }, new Date(data.times[i]).toLocaleString()),
        ...data.series.map((ser) => h('div', {}, `${ser.label}: `, h('strong', {}, data.format(ser.values[i])))));
      tip.hidden = false;
      const left = px + 12 + tip.offsetWidth > W ? px - 12 - tip.offsetWidth : px + 12;
      tip.style.left = left + 'px';
    });
    overlay.addEventListener('mouseleave', () => {
      tip.hidden = true;
      cursor.setAttribute('visibility', 'hidden');
      for (const d of dots) d.setAttribute('visibility', 'hidden');
    });
    svg.append(cursor, ...dots, overlay);
    el.replaceChildren(svg, tip);
  }

  return {
    el,
    update(d) {
      data = d;
      draw();
    },
  };
}

/** Buckets on a regular grid from `start` to `end`, missing ones filled by `empty`. */
function densify(points, startMs, endMs, stepMs, empty) {
  const byStart = new Map(points.map((p) => [Math.floor(p.start_ms / stepMs) * stepMs, p]));
  const out = [];
  for (let t = Math.floor(startMs / stepMs) * stepMs; t < endMs; t += stepMs) {
    out.push(byStart.get(t) || { ...empty, start_ms: t });
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Overview: every function with its traffic over the chosen window

function overviewView(root) {
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
      api(`/stats?window=${state.window}`),
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

// ---------------------------------------------------------------------------------------
// One function: its numbers, charts, versions, aliases, env names and live log

const RANGES = {
  '1h': { ms: 3600e3, label: 'Last hour' },
  '24h': { ms: 86400e3, label: 'Last 24 hours' },
  '7d': { ms: 7 * 86400e3, label: 'Last 7 days' },
};

function functionView(root, name) {
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
  const charts = chartsPanel(name);
  const tail = logTail(name);

  root.append(
    pageHead(h('a', { href: '#/' }, 'Functions'), h('span', {}, name, ' ', status), sub),
    cardRow,
    charts,
    h('div', { class: 'grid-2 section' },
      panel('Versions', h('div', { class: 'table-scroll' }, h('table', { class: 'data' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Version'), h('th', {}, 'Deployed'), h('th', { class: 'num' }, 'Size'),
          h('th', {}, 'Limits'), h('th', { class: 'num' }, 'In flight'), h('th', {}, 'sha256'))),
        versions))),
      h('div', { class: 'stack' },
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
    sub.replaceChildren(h('a', { href: info.url, target: '_blank', rel: 'noopener' }, info.url),
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
        h('td', { class: 'muted small' }, l.memory_mb != null ? `${l.memory_mb} MB · ${fmtMs(l.timeout_ms)} · CPU ${fmtMs(l.cpu_ms)}` : '—'),
        h('td', { class: 'num' }, f ? `${f.in_flight} / ${f.max_concurrency}` : '—'),
        h('td', { class: 'mono small muted', title: v.sha256 }, v.sha256.slice(0, 12)));
    }));

    aliases.replaceChildren(...(info.aliases.length ? info.aliases.map(aliasRow) : [emptyState('No aliases.')]));

    env.replaceChildren(info.env.length
      ? h('div', {},
        h('div', { class: 'chips', id: 'env-names' }, info.env.map((k) => h('span', { class: 'chip' }, k))),
        h('p', { class: 'muted small' }, 'Values are hidden here; ', h('code', {}, `glint env ${name}`), ' shows them to a deploy key.'))
      : h('span', { class: 'muted' }, 'No environment variables.'));
  }

  async function refreshStats() {
    const stats = await api(`/stats?window=${state.window}`);
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

/**
 * The live log tail: the last lines, then new ones as they are printed, over SSE
 * (/api/v1/logs/stream). Filters are sent to the server and checked again here, so a
 * line never shows under the wrong one.
 */
function logTail(name) {
  const levelSelect = h('select', { id: 'log-level', 'aria-label': 'Lowest level shown' },
    h('option', { value: '' }, 'All levels'),
    LEVELS.slice(1).map((l) => h('option', { value: l }, `${l} and above`)));
  const execInput = h('input', {
    type: 'search', id: 'log-execution', placeholder: 'Execution id', spellcheck: 'false', 'aria-label': 'Execution id',
  });
  const stateLabel = h('span', { class: 'tail-state', id: 'tail-state', 'data-state': 'connecting' }, 'connecting');
  const pauseButton = h('button', { type: 'button', class: 'button', id: 'log-pause' }, 'Pause');
  const clearButton = h('button', { type: 'button', class: 'button ghost' }, 'Clear');
  const list = h('div', { class: 'log', id: 'log-lines', role: 'log' });
  const el = h('section', { class: 'panel', id: 'log-tail' },
    h('div', { class: 'panel-head' }, h('h2', {}, 'Live log'), stateLabel,
      h('div', { class: 'actions log-toolbar' }, levelSelect, execInput, pauseButton, clearButton)),
    list);

  let seen = new Set();
  let lastTs = null;
  let paused = false;
  let pending = [];
  let source = null;
  let retry = null;
  let generation = 0;

  const filters = () => ({ level: levelSelect.value, execution: execInput.value.trim() });
  const keyOf = (l) => `${l.ts_ms}|${l.execution_id}|${l.stream}|${l.message}`;

  function setState(s, text = s) {
    stateLabel.dataset.state = s;
    setText(stateLabel, text);
  }

  function matches(line, f) {
    if (f.level && LEVELS.indexOf(line.level) < LEVELS.indexOf(f.level)) return false;
    return !f.execution || line.execution_id === f.execution;
  }

  function lineEl(l) {
    // Ids start with their time, so lines of one moment share a prefix: show the end.
    const id = l.execution_id || '';
    const exec = h('span', { class: 'exec', title: `${id}: show only this execution` }, id.length > 12 ? '…' + id.slice(-10) : id);
    exec.addEventListener('click', () => {
      execInput.value = l.execution_id;
      restart();
    });
    return h('div', { class: `log-line ${l.stream || ''}`, 'data-execution-id': l.execution_id, 'data-level': l.level },
      h('span', { class: 'ts', title: new Date(l.ts_ms).toISOString() }, fmtClock(l.ts_ms)),
      h('span', { class: `lvl ${l.level}` }, l.level),
      h('span', { class: 'ver' }, fmtVersion(l.version)),
      exec,
      h('span', { class: 'msg' }, l.message));
  }

  /** Shows lines not shown yet; `via` (stream or store) is kept on each for tests. */
  function add(lines, via) {
    const f = filters();
    const fresh = lines.filter((l) => matches(l, f) && !seen.has(keyOf(l)));
    if (!fresh.length) return;
    for (const l of fresh) {
      l.via = via;
      seen.add(keyOf(l));
      lastTs = Math.max(lastTs || 0, l.ts_ms);
    }
    if (paused) {
      pending.push(...fresh);
      setText(pauseButton, `Resume (${pending.length} new)`);
      return;
    }
    show(fresh);
  }

  function show(lines) {
    const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 30;
    const placeholder = list.querySelector('.empty');
    if (placeholder) placeholder.remove();
    lines.sort((a, b) => a.ts_ms - b.ts_ms);
    // Lines come in order almost always; one older than the last shown goes in its place.
    for (const l of lines) {
      const node = lineEl(l);
      node.dataset.ts = l.ts_ms;
      node.dataset.via = l.via;
      let before = null;
      for (let c = list.lastElementChild; c && Number(c.dataset.ts) > l.ts_ms; c = c.previousElementSibling) before = c;
      list.insertBefore(node, before);
    }
    while (list.childElementCount > MAX_LOG_LINES) list.firstElementChild.remove();
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  function query(f) {
    const q = new URLSearchParams();
    if (f.level) q.set('level', f.level);
    if (f.execution) q.set('execution_id', f.execution);
    return q;
  }

  /** The newest lines already stored; ones the stream also brought are shown once. */
  async function backfill(f, gen) {
    const q = query(f);
    q.set('lines', '200');
    const body = await api(`/functions/${enc(name)}/logs?${q}`, { optional: true });
    if (gen !== generation) return;
    if (body) add(body.lines, 'store');
    list.dataset.loaded = 'true';
    if (!list.childElementCount) {
      list.append(emptyState(f.execution || f.level ? 'No lines match these filters yet.' : 'No log lines yet. Lines the function prints appear here as they happen.'));
    }
  }

  function stop() {
    generation++;
    if (source) source.close();
    source = null;
    clearTimeout(retry);
  }

  /** Opens the stream; once the node has it open, fetches what came before. */
  function connect(f, gen) {
    const q = query(f);
    q.set('function', name);
    source = new EventSource(`/api/v1/logs/stream?${q}`);
    source.onopen = () => {
      if (gen !== generation) return;
      if (!paused) setState('live');
      // After the node subscribed this follower, so no line falls between the two.
      backfill(f, gen).catch((e) => problem(e.message));
    };
    source.onmessage = (ev) => {
      if (gen === generation) add([JSON.parse(ev.data)], 'stream');
    };
    // A follower that fell behind is told how many lines it missed; say so in place.
    source.addEventListener('skipped', (ev) => {
      if (gen !== generation) return;
      const note = h('div', { class: 'log-note' }, `… ${ev.data} lines skipped: they came faster than this page could take them`);
      note.dataset.ts = lastTs || 0;
      list.append(note);
    });
    source.onerror = () => {
      if (gen !== generation) return;
      setState('error', 'disconnected, retrying');
      if (source.readyState !== EventSource.CLOSED) return; // the browser retries by itself
      // Refused outright: the node said no, perhaps because the key was revoked. Ask
      // the API, which goes back to sign-in on a 401, and try again in a while.
      source.close();
      api('/node').catch(() => {});
      retry = setTimeout(() => {
        if (gen === generation) connect(f, gen);
      }, 5000);
    };
  }

  function restart() {
    stop();
    seen = new Set();
    lastTs = null;
    pending = [];
    list.replaceChildren();
    delete list.dataset.loaded;
    setState('connecting', 'connecting');
    connect(filters(), generation);
  }

  pauseButton.addEventListener('click', () => {
    paused = !paused;
    if (paused) {
      setState('paused');
      setText(pauseButton, 'Resume');
    } else {
      setText(pauseButton, 'Pause');
      const open = source && source.readyState === EventSource.OPEN;
      setState(open ? 'live' : 'connecting', open ? 'live' : 'reconnecting');
      const lines = pending;
      pending = [];
      show(lines);
    }
  });
  clearButton.addEventListener('click', () => list.replaceChildren());
  levelSelect.addEventListener('change', restart);
  let typing;
  execInput.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(restart, 350);
  });

  restart();
  onLeave(stop);
  return el;
}

// ---------------------------------------------------------------------------------------
// KV browser

function kvStoresView(root) {
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

function kvStoreView(root, store) {
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

// ---------------------------------------------------------------------------------------
// Node status

function nodeView(root) {
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

// ---------------------------------------------------------------------------------------

renderWindowPicker();
window.addEventListener('hashchange', route);
route();
