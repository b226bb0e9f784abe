// The parts every page is built of: its heading, panels, stat cards and empty states.

import { h, setText } from './dom.js';

export function emptyState(...children) {
  return h('div', { class: 'empty' }, ...children);
}

export function pageHead(crumbs, title, sub, actions) {
  return h('div', { class: 'page-head' },
    h('div', {},
      crumbs && h('div', { class: 'crumbs' }, crumbs),
      h('h1', {}, title),
      sub && h('div', { class: 'sub' }, sub)),
    actions && h('div', { class: 'actions' }, actions));
}

export function panel(title, body, actions) {
  return h('section', { class: 'panel' },
    h('div', { class: 'panel-head' }, h('h2', {}, title), actions && h('div', { class: 'actions' }, actions)),
    body);
}

/** A stat card whose value is updated in place. */
export function card(label) {
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
