// A function's live log tail: the stored lines, then new ones over SSE, with level and execution filters.

import { h, setText } from './dom.js';
import { api, enc } from './api.js';
import { fmtClock, fmtVersion } from './format.js';
import { onLeave, problem } from './view.js';
import { emptyState } from './layout.js';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];
const MAX_LOG_LINES = 1000;

/**
 * The live log tail: the last lines, then new ones as they are printed, over SSE
 * (/api/v1/logs/stream). Filters are sent to the server and checked again here, so a
 * line never shows under the wrong one.
 */
export function logTail(name) {
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
