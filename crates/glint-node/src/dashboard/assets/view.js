// The shown view's lifetime: its refresh timers, what to stop when it is left, and its problem banner.

import { h, setText } from './dom.js';

export const REFRESH_MS = 2000;
export const SLOW_REFRESH_MS = 10000;

let leaving = [];

/** Runs `fn` when the current view is left. */
export function onLeave(fn) {
  leaving.push(fn);
}

/** Stops everything the current view started. */
export function leaveView() {
  for (const fn of leaving) fn();
  leaving = [];
}

/**
 * Runs `fn` now and again `ms` after each run ends (so a slow node is never asked twice
 * at once), until the view is left. A failure shows in the view's banner and the timer
 * keeps going: a node that restarts comes back by itself.
 */
export function every(ms, fn) {
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

/** The banner a view shows while the node cannot be reached. */
export const banner = h('div', { class: 'notice error', role: 'alert', hidden: true });

export function problem(message) {
  banner.hidden = !message;
  if (message) setText(banner, `Could not reach the node: ${message}. Retrying…`);
}
