// One run: its timeline, exit code, params, outputs, submitter and trigger, its live log, and
// the buttons that apply to its state (cancel, retry, approve; skip for a workflow's step).

import {get, post} from '../api.js';
import {h, replace, table} from '../dom.js';
import {badge, duration, json, time, took} from '../format.js';
import {go, href, refPath} from '../router.js';
import {can} from '../session.js';
import {action, poll, section, statusLine} from '../ui.js';
import {LogView} from '../log.js';

function timeline(run) {
  const steps = [['created', run.created_at], ['started', run.started_at],
    ['cancel asked', run.cancel_requested_at], [run.status.toLowerCase(), run.finished_at]];
  if (run.scheduled_for) steps.unshift(['slot', run.scheduled_for]);
  const shown = steps.filter(([, at]) => at);
  return h('ol', {class: 'timeline'}, shown.map(([label, at], i) => {
    const next = shown[i + 1];
    const gap = next ? duration((new Date(next[1]) - new Date(at)) / 1000) : '';
    return h('li', {class: i === shown.length - 1 && run.finished_at ? 'end' : null},
      h('strong', {}, label), ' ', time(at), gap ? h('span', {class: 'muted'}, ` +${gap}`) : null);
  }), run.finished_at ? null : h('li', {class: 'now'}, h('strong', {}, run.status.toLowerCase()),
    ' ', h('span', {class: 'muted'}, `for ${took(run) || '…'}`)));
}

function facts(run) {
  const rows = [
    ['status', badge(run.status)], ['exit code', run.exit_code ?? '—'],
    ['error', run.error], ['reason', run.reason],
    ['job', h('a', {href: `#/jobs/${refPath(run.job)}`}, run.job)],
    ['trigger', run.trigger], ['submitter', run.submitter || '—'], ['attempt', run.attempt],
    ['retry of', run.parent_id ? h('a', {href: `#/runs/${run.parent_id}`}, `#${run.parent_id}`)
      : null],
    ['workflow run', run.workflow_run ? h('a', {href: `#/workflow-runs/${run.workflow_run}`},
      `#${run.workflow_run}`, run.step ? ` step ${run.step}` : '') : null],
    ['backend', run.backend], ['node', run.node],
    ['labels', Object.entries(run.labels || {}).map(([k, v]) => h('span', {class: 'chip'},
      `${k}=${v}`))],
    ['locks', (run.locks || []).map((lock) => h('span', {class: 'chip'},
      `${lock.key} (${lock.state})`))],
  ].filter(([, value]) => value !== null && value !== undefined && value !== '' &&
    !(Array.isArray(value) && !value.length));
  return h('dl', {class: 'facts'}, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function buttons(run, line, refresh) {
  const box = h('div', {class: 'actions'});
  if (!can('run', run.namespace)) return box;
  const active = !['TIMEOUT', 'PROC_ERROR', 'APP_ERROR', 'ABORTED', 'SKIPPED', 'SUCCESS']
    .includes(run.status);
  if (active && !run.cancel_requested_at) {
    box.append(action('Cancel', async () => { await post(`/runs/${run.id}/cancel`); refresh(); },
      line, {kind: 'danger', confirmText: `Cancel run #${run.id}?`, done: 'Cancel requested.'}));
  }
  if (active && run.cancel_requested_at) {
    box.append(action('Kill now', async () => {
      await post(`/runs/${run.id}/cancel`, {force: true});
      refresh();
    }, line, {kind: 'danger', confirmText: `Kill run #${run.id} at once?`}));
  }
  if (run.status === 'ACTION_PENDING') {
    if (run.workflow_run && run.step) {
      box.append(stepButton(run, 'approve', line, refresh), stepButton(run, 'skip', line, refresh));
    } else {
      box.append(action('Approve', async () => {
        await post(`/runs/${run.id}/approve`);
        refresh();
      }, line, {kind: 'primary', done: 'Approved.'}));
    }
  }
  if (!active) {
    box.append(action('Retry', async () => {
      const again = await post(`/runs/${run.id}/retry`);
      go(`/runs/${again.id}`);
    }, line));
  }
  return box;
}

function stepButton(run, verb, line, refresh) {
  return action(verb[0].toUpperCase() + verb.slice(1), async () => {
    await post(`/workflow-runs/${run.workflow_run}/steps/${encodeURIComponent(run.step)}/${verb}`);
    refresh();
  }, line, {kind: verb === 'approve' ? 'primary' : ''});
}

export async function render(view, {args, signal}) {
  const id = Number(args.id);
  const line = statusLine();
  const head = h('div', {});
  const controls = h('div', {});
  const details = h('div', {class: 'grid'});
  const log = new LogView(id, signal);
  replace(view, head, controls, line.el, details, section('Log', log.el));
  let last = null;
  const refresh = async () => {
    const run = await get(`/runs/${id}`, {}, {signal});
    const outputs = Object.keys(run.outputs || {}).length ? run.outputs : null;
    replace(head, h('h1', {}, `Run #${run.id} `, badge(run.status)),
      h('p', {class: 'muted'}, h('a', {href: `#/jobs/${refPath(run.job)}`}, run.job), ' · ',
        h('a', {href: href('/runs', {job: run.job})}, 'other runs of this job')));
    replace(controls, buttons(run, line, refresh));
    replace(details, section('Timeline', timeline(run)), section('Details', facts(run)),
      section('Params', Object.keys(run.params).length
        ? table(['name', 'value'], Object.entries(run.params).map(([k, v]) => [k, String(v)]))
        : h('p', {class: 'muted'}, 'none')),
      section('Outputs', outputs ? h('pre', {}, json(outputs))
        : h('p', {class: 'muted'}, run.outputs_error || (run.finished_at ? 'none published'
          : 'published when it ends'))));
    if (!last) log.start(run);
    else log.update(run);
    last = run;
    return run;
  };
  await poll(2000, async () => {
    if (last && last.finished_at && log.done) return;
    await refresh();
  }, signal);
}
