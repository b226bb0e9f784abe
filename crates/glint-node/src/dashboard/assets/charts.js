// Charts: hand-drawn SVG, redrawn at the container's width.

import { h, s } from './dom.js';
import { onLeave } from './view.js';

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

export function sparkline(values) {
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
export function timeChart(height = 150) {
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
export function densify(points, startMs, endMs, stepMs, empty) {
  const byStart = new Map(points.map((p) => [Math.floor(p.start_ms / stepMs) * stepMs, p]));
  const out = [];
  for (let t = Math.floor(startMs / stepMs) * stepMs; t < endMs; t += stepMs) {
    out.push(byStart.get(t) || { ...empty, start_ms: t });
  }
  return out;
}
