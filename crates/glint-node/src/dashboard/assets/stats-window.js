// The stats window (1m to 1h) picked in the top bar, kept across visits, and who is told when it changes.

import { h } from './dom.js';
import { onLeave } from './view.js';

const WINDOWS = [[60, '1m'], [300, '5m'], [900, '15m'], [3600, '1h']];

const state = {
  window: Number(localStorage.getItem('glint.window')) || 300,
  windowListeners: new Set(),
};

/** The window the stats are taken over, in seconds. */
export const windowSeconds = () => state.window;

export const windowLabel = () => (WINDOWS.find(([s]) => s === state.window) || [0, state.window + 's'])[1];

/** Calls `fn` when the stats window changes, while this view is shown. */
export function onWindowChange(fn) {
  state.windowListeners.add(fn);
  onLeave(() => state.windowListeners.delete(fn));
}

export function showWindowPicker(visible) {
  const picker = document.getElementById('window-picker');
  picker.hidden = !visible;
}

export function renderWindowPicker() {
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
