// Runs: every filter the API has, kept in the URL, newest first, paged on the server.

import {get} from '../api.js';
import {code, empty, h, replace, table} from '../dom.js';
import {STATUSES, TRIGGERS, badge, time, took} from '../format.js';
import {refPath} from '../router.js';
import {filters, pager, poll, queryOf} from '../ui.js';

const NAMES = ['job', 'namespace', 'status', 'trigger', 'submitter', 'label', 'since', 'until',
  'q', 'workflow_run', 'cursor'];
const PAGE = 50;

export async function render(view, {params, signal}) {
  const query = queryOf(params, NAMES);
  const list = h('div', {class: 'runs-list'}, h('p', {class: 'muted'}, 'Loading…'));
  replace(view, h('h1', {}, 'Runs'), filters('/runs', params, [
    {name: 'q', label: 'Text', placeholder: 'job name or description'},
    {name: 'job', label: 'Job', placeholder: 'ns/name or id'},
    {name: 'namespace', label: 'Namespace', placeholder: 'any'},
    {name: 'status', label: 'Status', type: 'multi', options: STATUSES},
    {name: 'trigger', label: 'Trigger', type: 'select',
      options: [['', 'any'], ...TRIGGERS.map((t) => [t, t])]},
    {name: 'submitter', label: 'Submitter', placeholder: 'token name'},
    {name: 'label', label: 'Label', placeholder: 'team=data'},
    {name: 'since', label: 'Since', type: 'datetime'},
    {name: 'until', label: 'Until', type: 'datetime'},
    {name: 'workflow_run', label: 'Workflow run', placeholder: 'id'},
  ]), list);
  // The first page follows new runs as they come; older pages stay as they were asked for.
  const refresh = async () => {
    const page = await get('/runs', {...query, limit: PAGE}, {signal});
    if (!page.items.length) {
      const filtered = Object.keys(query).length;
      replace(list, filtered
        ? empty('No run matches these filters.', h('a', {href: '#/runs'}, 'Show every run'))
        : empty('No runs yet.', h('span', {}, 'Run one with ', code('herder run hello'),
          ' or the Run now button of ', h('a', {href: '#/jobs'}, 'a job'), '.')));
      return;
    }
    replace(list, table(['run', 'job', 'status', 'trigger', 'submitter', 'created', 'took',
      'exit'], page.items.map((run) => [
      h('a', {href: `#/runs/${run.id}`}, `#${run.id}`),
      h('a', {href: `#/jobs/${refPath(run.job)}`}, run.job), badge(run.status), run.trigger,
      run.submitter || h('span', {class: 'muted'}, '—'), time(run.created_at), took(run),
      run.exit_code ?? '']), {cls: 'runs'}), pager('/runs', params, page.next_cursor));
  };
  if (query.cursor) await refresh();
  else await poll(3000, refresh, signal);
}
