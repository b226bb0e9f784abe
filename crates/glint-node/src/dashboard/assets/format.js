// Numbers, sizes, durations, times and versions as the pages show them.

const nf = new Intl.NumberFormat('en-US');

export function fmtCount(n) {
  return n == null ? '—' : nf.format(Math.round(n));
}

/** A count on a chart axis, where a small scale has halves. */
export const fmtTick = (n) => (n == null ? '—' : Number.isInteger(n) ? fmtCount(n) : String(n));

export function fmtRate(n) {
  if (n == null) return '—';
  if (n === 0) return '0';
  if (n < 0.01) return '<0.01';
  if (n < 10) return n.toFixed(2);
  if (n < 1000) return n.toFixed(1);
  return (n / 1000).toFixed(1) + 'k';
}

export function fmtMs(ms) {
  if (ms == null || Number.isNaN(ms)) return '—';
  if (ms === 0) return '0 ms';
  if (ms < 1) return ms.toFixed(2) + ' ms';
  if (ms < 100) return ms.toFixed(1) + ' ms';
  if (ms < 1000) return Math.round(ms) + ' ms';
  return (ms / 1000).toFixed(2) + ' s';
}

export function fmtPct(ratio) {
  if (ratio == null) return '—';
  const p = ratio * 100;
  if (p === 0) return '0%';
  if (p < 0.1) return '<0.1%';
  return (p < 10 ? p.toFixed(1) : Math.round(p)) + '%';
}

export function fmtBytes(n) {
  if (n == null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + ' ' + units[i];
}

export function fmtDuration(seconds) {
  const d = Math.floor(seconds / 86400), hr = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60), sec = Math.floor(seconds % 60);
  if (d) return `${d}d ${hr}h`;
  if (hr) return `${hr}h ${m}m`;
  if (m) return `${m}m ${sec}s`;
  return `${sec}s`;
}

export function fmtAgo(ms) {
  if (!ms) return '—';
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 60) return 'just now';
  if (s < 3600) return Math.floor(s / 60) + ' min ago';
  if (s < 86400) return Math.floor(s / 3600) + ' h ago';
  return Math.floor(s / 86400) + ' d ago';
}

export const fmtDate = (ms) => (ms ? new Date(ms).toLocaleString() : '—');
const pad2 = (n, w = 2) => String(n).padStart(w, '0');

export function fmtClock(ms) {
  const d = new Date(ms);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}.${pad2(d.getMilliseconds(), 3)}`;
}

/** Versions arrive as numbers (1) in some answers and as "v1" in others. */
export const fmtVersion = (v) => (typeof v === 'number' ? 'v' + v : String(v));

export function fmtTargets(targets) {
  if (!targets || !targets.length) return '—';
  if (targets.length === 1) return fmtVersion(targets[0].version);
  const total = targets.reduce((a, t) => a + t.weight, 0) || 1;
  return targets.map((t) => `${fmtVersion(t.version)} ${Math.round((t.weight / total) * 100)}%`).join(' · ');
}
