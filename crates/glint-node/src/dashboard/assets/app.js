// The dashboard's entry: routes the part of the URL after '#' to the page module that shows it.
//
// The Glint dashboard is a small hand-written app over the admin API (/api/v1), in ES
// modules the node serves itself (no build step). The page is one shell (app.html); each
// view builds its DOM once, then refreshes numbers in place on a timer, so an operator can
// leave it open. All text goes in through textContent, never innerHTML: function output and
// KV values are user data. The session cookie authenticates every fetch; a 401 sends the
// browser back to the sign-in form.
//
// Imports run one way: this entry imports the pages (overview, function, kv, node-status,
// regions),
// the function page imports its live log tail (logs), and pages import the shared modules
// (dom, api, format, view, layout, stats-window, charts), which never import a page.

import { h } from './dom.js';
import { banner, leaveView, problem } from './view.js';
import { emptyState } from './layout.js';
import { renderWindowPicker, showWindowPicker } from './stats-window.js';
import { overviewView } from './overview.js';
import { functionView } from './function.js';
import { kvStoreView, kvStoresView } from './kv.js';
import { nodeView } from './node-status.js';
import { regionsView } from './regions.js';

const view = document.getElementById('view');

const routes = [
  [/^#?\/?$/, 'overview', overviewView],
  [/^#\/functions\/([^/]+)$/, 'overview', functionView],
  [/^#\/kv$/, 'kv', kvStoresView],
  [/^#\/kv\/([^/]+)$/, 'kv', kvStoreView],
  [/^#\/node$/, 'node', nodeView],
  [/^#\/regions$/, 'regions', regionsView],
];

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

renderWindowPicker();
window.addEventListener('hashchange', route);
route();
