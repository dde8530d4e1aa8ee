// One workflow run: its graph with live statuses (nested workflows expand below it), the
// run's controls (pause, resume, cancel, rerun) and each step's (approve, reject, skip, retry).

import {get, post} from '../api.js';
import {h, replace, table} from '../dom.js';
import {badge, time} from '../format.js';
import {draw, target} from '../graph.js';
import {go, href, refPath} from '../router.js';
import {can} from '../session.js';
import {action, poll, section, statusLine} from '../ui.js';

const ENDED = ['SUCCESS', 'FAILED', 'ABORTED'];
const STEP_ENDED = ['SUCCESS', 'APP_ERROR', 'PROC_ERROR', 'TIMEOUT', 'ABORTED', 'SKIPPED'];

function runControls(run, line, refresh) {
  const box = h('div', {class: 'actions'});
  if (!can('run', run.namespace)) return box;
  const call = (verb, label, options = {}) => action(label, async () => {
    const answer = await post(`/workflow-runs/${run.id}/${verb}`);
    if (verb === 'rerun' && answer && answer.id !== run.id) go(`/workflow-runs/${answer.id}`);
    else refresh();
  }, line, options);
  if (['RUNNING', 'ACTION_PENDING'].includes(run.status)) box.append(call('pause', 'Pause'));
  if (run.status === 'PAUSED') box.append(call('resume', 'Resume', {kind: 'primary'}));
  if (!ENDED.includes(run.status) && run.status !== 'CANCELLING') {
    box.append(call('cancel', 'Cancel', {kind: 'danger',
      confirmText: `Cancel workflow run #${run.id}?`}));
  }
  if (ENDED.includes(run.status)) box.append(call('rerun', 'Rerun'));
  return box;
}

function stepControls(run, node, line, refresh) {
  if (!can('run', run.namespace) || ENDED.includes(run.status)) return '';
  const step = (verb, label, kind = '') => action(label, async () => {
    await post(`/workflow-runs/${run.id}/steps/${encodeURIComponent(node.id)}/${verb}`);
    refresh();
  }, line, {kind, done: `${label}: ${node.id}`});
  const box = h('span', {class: 'actions inline'});
  if (node.kind === 'approval' && node.status === 'ACTION_PENDING') {
    box.append(step('approve', 'Approve', 'primary'), step('reject', 'Reject', 'danger'));
  }
  if (!node.ended && !STEP_ENDED.includes(node.status)) box.append(step('skip', 'Skip'));
  if (node.ended && node.status !== 'SUCCESS' && node.status !== 'SKIPPED') {
    box.append(step('retry', 'Retry'));
  }
  return box;
}

function steps(run, graph, line, refresh) {
  return table(['step', 'kind', 'status', 'runs', ''], graph.nodes.map((node) => {
    const link = target(node);
    return [
      link ? h('a', {href: link}, node.id) : node.id,
      node.kind + (node.section === 'on_failure' ? ' (on failure)' : ''),
      h('span', {}, badge(node.status), node.message ? h('span', {class: 'muted block'},
        node.message) : null),
      h('span', {}, (node.runs || []).map((r) => h('a', {href: `#/runs/${r.id}`, class: 'chip'},
        // Only a foreach step's runs are told apart by their item.
        `#${r.id}${Object.keys(node.items || {}).length && r.item !== null &&
          r.item !== undefined ? ` item ${r.item}` : ''}`))),
      stepControls(run, node, line, refresh),
    ];
  }), {cls: 'steps'});
}

/** The nested workflows of a graph, each collapsible, drawn when opened. */
function nested(graph, open, signal) {
  const children = graph.nodes.filter((node) => node.child);
  return children.map((node) => {
    const body = h('div', {});
    const box = h('details', {class: 'nested', open: open.has(node.child)},
      h('summary', {}, `Nested workflow of step ${node.id}: run #${node.child}`), body);
    const fill = async () => {
      const child = await get(`/workflow-runs/${node.child}/graph`, {}, {signal});
      replace(body, draw(child, {label: `nested workflow of step ${node.id}`}),
        nested(child, open, signal));
    };
    box.addEventListener('toggle', () => {
      if (box.open) {
        open.add(node.child);
        fill().catch(() => replace(body, h('p', {class: 'muted'}, 'not available')));
      } else open.delete(node.child);
    });
    if (box.open) fill().catch(() => null);
    return box;
  });
}

export async function render(view, {args, signal}) {
  const id = Number(args.id);
  const line = statusLine();
  const head = h('div', {});
  const controls = h('div', {});
  const picture = h('div', {});
  const list = h('div', {});
  const open = new Set();
  replace(view, head, controls, line.el, section('Graph', picture), section('Steps', list));
  let ended = false;
  const refresh = async () => {
    const [run, graph] = await Promise.all([get(`/workflow-runs/${id}`, {}, {signal}),
      get(`/workflow-runs/${id}/graph`, {}, {signal})]);
    replace(head, h('h1', {}, `Workflow run #${run.id} `, badge(run.status)),
      h('p', {class: 'muted'},
        h('a', {href: `#/workflows/${refPath(run.workflow)}`}, run.workflow),
        ` · ${run.trigger || ''} · by ${run.submitter || '—'} · started `, time(run.created_at),
        run.finished_at ? h('span', {}, ' · ended ', time(run.finished_at)) : null,
        run.parent_run_id ? h('span', {}, ' · inside ',
          h('a', {href: `#/workflow-runs/${run.parent_run_id}`}, `#${run.parent_run_id}`)) : null,
        ' · ', h('a', {href: href('/runs', {workflow_run: String(run.id)})}, 'its step runs')),
      run.reason ? h('p', {}, run.reason) : null);
    replace(controls, runControls(run, line, refresh));
    replace(picture, draw(graph, {label: `graph of workflow run ${run.id}`}),
      nested(graph, open, signal));
    replace(list, steps(run, graph, line, refresh));
    ended = ENDED.includes(run.status);
  };
  await poll(2000, async () => {
    if (!ended) await refresh();
  }, signal);
}
