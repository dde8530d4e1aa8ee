// Workflows: the definitions, one workflow's spec and the history of its runs, start a run.

import {get, post} from '../api.js';
import {code, empty, h, replace, table} from '../dom.js';
import {badge, inZone, relative, scheduleWords, time, yaml} from '../format.js';
import {go, refPath} from '../router.js';
import {can} from '../session.js';
import {action, describe, pager, section, statusLine} from '../ui.js';

export function workflowRunsTable(items) {
  return table(['run', 'workflow', 'status', 'trigger', 'submitter', 'created', 'finished'],
    items.map((run) => [h('a', {href: `#/workflow-runs/${run.id}`}, `#${run.id}`),
      h('a', {href: `#/workflows/${refPath(run.workflow)}`}, run.workflow), badge(run.status),
      run.trigger || '', run.submitter || '—', time(run.created_at), time(run.finished_at)]));
}

/** The history of workflow runs, or a plain note where this server has no such route yet. */
async function history(query, params, path, signal) {
  try {
    const page = await get('/workflow-runs', {...query, limit: 25}, {signal});
    if (!page.items.length) return empty('No workflow runs yet.');
    return h('div', {}, workflowRunsTable(page.items), pager(path, params, page.next_cursor));
  } catch (error) {
    if (error.status === 404) return empty('This server does not keep workflow runs yet.');
    return h('p', {class: 'notice error'}, describe(error));
  }
}

export async function render(view, {params, signal}) {
  const page = await get('/workflows', {limit: 100}, {signal});
  const runs = h('div', {}, h('p', {class: 'muted'}, 'Loading…'));
  replace(view, h('h1', {}, 'Workflows'),
    section('Definitions', page.items.length
      ? table(['workflow', 'steps', 'schedule', 'next run'], page.items.map((wf) => [
        h('a', {href: `#/workflows/${refPath(wf.ref)}`}, wf.ref),
        String(wf.steps.length), scheduleWords(wf.schedule),
        wf.next_run_at ? h('span', {}, inZone(wf.next_run_at, wf.schedule?.timezone), ' ',
          h('span', {class: 'muted'}, relative(wf.next_run_at))) : '—']))
      : empty('No workflows yet.', h('span', {}, 'Define one in a manifest and ',
        code('herder apply -f workflow.yaml'), '.'))),
    section('Recent workflow runs', runs));
  replace(runs, await history({cursor: params.get('cursor')}, params, '/workflows', signal));
}

export async function renderOne(view, {args, params, signal}) {
  const wf = await get(`/workflows/${refPath(args.ref)}`, {}, {signal});
  const line = statusLine();
  const controls = h('div', {class: 'actions'});
  if (can('run', wf.namespace)) {
    controls.append(action('Start a run', async () => {
      const run = await post(`/workflows/${refPath(wf.ref)}/runs`, {params: {}});
      go(`/workflow-runs/${run.id}`);
    }, line, {kind: 'primary'}));
  }
  const runs = h('div', {}, h('p', {class: 'muted'}, 'Loading…'));
  const {id, ref, created_at, updated_at, next_run_at, name, namespace, labels, annotations,
    ...spec} = wf;
  void id; void ref; void created_at; void updated_at; void next_run_at;
  replace(view, h('h1', {}, wf.ref), wf.description ? h('p', {}, wf.description) : null,
    controls, line.el,
    section('Runs', runs),
    section('Spec', h('pre', {class: 'yaml'}, yaml({apiVersion: 'herder/v1', kind: 'Workflow',
      metadata: {name, namespace, labels, annotations}, spec}).trimStart())));
  replace(runs, await history({workflow: wf.ref, cursor: params.get('cursor')}, params,
    `/workflows/${wf.ref}`, signal));
}
