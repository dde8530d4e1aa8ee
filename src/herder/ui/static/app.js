// The page's shell: who is signed in, the navigation, and one page at a time. Leaving a page
// aborts its signal, which stops its polling and its log streams.

import {h, notice, replace} from './dom.js';
import {current, match, route} from './router.js';
import {isOpen, load, me, signOut} from './session.js';
import {describe} from './ui.js';
import * as admin from './pages/admin.js';
import * as dashboard from './pages/dashboard.js';
import * as job from './pages/job.js';
import * as jobs from './pages/jobs.js';
import * as run from './pages/run.js';
import * as runs from './pages/runs.js';
import * as signin from './pages/signin.js';
import * as workflowRun from './pages/workflow_run.js';
import * as workflows from './pages/workflows.js';

route('/', dashboard.render);
route('/jobs', jobs.render);
route('/jobs/:ref*', job.render);
route('/runs', runs.render);
route('/runs/:id', run.render);
route('/workflows', workflows.render);
route('/workflows/:ref*', workflows.renderOne);
route('/workflow-runs/:id', workflowRun.render);
route('/admin', admin.render);
route('/admin/:tab', admin.render);
route('/signin', signin.render);

const NAV = [['/', 'Dashboard'], ['/jobs', 'Jobs'], ['/runs', 'Runs'],
  ['/workflows', 'Workflows'], ['/admin', 'Admin']];

let leave = null;

function drawChrome(path) {
  const nav = document.getElementById('nav');
  const who = document.getElementById('who');
  const signedIn = Boolean(me.value);
  replace(nav, signedIn ? h('ul', {}, NAV.map(([target, label]) => {
    const here = target === '/' ? path === '/' : path.startsWith(target);
    return h('li', {}, h('a', {href: '#' + target, 'aria-current': here ? 'page' : null},
      label));
  })) : null);
  if (!signedIn) {
    replace(who);
  } else if (isOpen()) {
    replace(who, h('span', {class: 'badge wait', title: 'no API tokens exist yet'},
      'open server'));
  } else {
    const out = h('button', {type: 'button', class: 'link'}, 'Sign out');
    out.addEventListener('click', async () => {
      await signOut().catch(() => null);
      location.hash = '#/signin';
    });
    replace(who, h('span', {}, me.value.name, ' ',
      h('span', {class: 'muted'}, `(${me.value.role} in ${me.value.namespace})`)), ' ', out);
  }
}

async function show() {
  if (leave) leave.abort();
  leave = new AbortController();
  const {signal} = leave;
  const {path, params} = current();
  const main = document.getElementById('main');
  if (!me.value && path !== '/signin') {
    await load().catch(() => null);
    if (!me.value) {
      location.replace('#/signin?next=' + encodeURIComponent(location.hash.slice(1) || '/'));
      return;
    }
  }
  drawChrome(path);
  const found = match(path);
  const view = h('div', {class: 'page'});
  replace(main, view);
  if (!found) {
    replace(view, h('h1', {}, 'Not found'),
      h('p', {}, 'No such page. ', h('a', {href: '#/'}, 'Back to the dashboard')));
    return;
  }
  try {
    await found.render(view, {args: found.args, params, signal});
  } catch (error) {
    if (error.name === 'AbortError' || signal.aborted) return;
    view.append(notice(describe(error)));
  }
  if (!signal.aborted && document.activeElement === document.body) main.focus();
}

window.addEventListener('hashchange', show);
window.addEventListener('herder:unauthorized', () => {
  me.value = null;
  if (!location.hash.startsWith('#/signin')) {
    location.hash = '#/signin?next=' + encodeURIComponent(location.hash.slice(1) || '/');
  }
});
show();
