// Jobs: filtered by namespace, label, enabled and text (all in the URL), each with its schedule
// in words and in its zone, its next fire time and a strip of its last runs.

import {get} from '../api.js';
import {code, empty, h, replace, table} from '../dom.js';
import {inZone, relative, scheduleWords, tone} from '../format.js';
import {refPath} from '../router.js';
import {filters, pager, queryOf} from '../ui.js';

const PAGE = 25;

/** The last runs of a job as small coloured squares, oldest on the left, each a link. */
export function strip(runs) {
  if (!runs.length) return h('span', {class: 'muted'}, 'no runs yet');
  return h('span', {class: 'strip', role: 'list', 'aria-label': 'last runs'},
    [...runs].reverse().map((run) => h('a', {href: `#/runs/${run.id}`, role: 'listitem',
      class: `tick ${tone(run.status)}`, title: `#${run.id} ${run.status}`,
      'aria-label': `run ${run.id} ${run.status}`})));
}

export async function render(view, {params, signal}) {
  const query = queryOf(params, ['namespace', 'label', 'enabled', 'q', 'cursor']);
  const list = h('div', {}, h('p', {class: 'muted'}, 'Loading…'));
  replace(view, h('h1', {}, 'Jobs'),
    filters('/jobs', params, [
      {name: 'q', label: 'Text', placeholder: 'name or description'},
      {name: 'namespace', label: 'Namespace', placeholder: 'any'},
      {name: 'label', label: 'Label', placeholder: 'team=data'},
      {name: 'enabled', label: 'Enabled', type: 'select',
        options: [['', 'any'], ['true', 'enabled'], ['false', 'disabled']]},
    ]), list);
  const page = await get('/jobs', {...query, limit: PAGE}, {signal});
  if (!page.items.length) {
    replace(list, Object.keys(query).length
      ? empty('No job matches these filters.', h('a', {href: '#/jobs'}, 'Show every job'))
      : empty('No jobs yet.', h('span', {}, 'Create one with ',
        code('herder job create hello -- echo "hello from herder"'), ' or ',
        code('POST /api/v1/jobs'), '.')));
    return;
  }
  const strips = new Map(page.items.map((job) => [job.id, h('span', {class: 'muted'}, '…')]));
  replace(list, table(['job', 'schedule', 'next run', 'last runs', ''], page.items.map((job) => [
    h('span', {}, h('a', {href: `#/jobs/${refPath(job.ref)}`}, job.ref),
      job.description ? h('span', {class: 'muted block'}, job.description) : null),
    scheduleWords(job.schedule),
    job.next_run_at && job.enabled ? h('span', {},
      inZone(job.next_run_at, job.schedule && job.schedule.timezone), ' ',
      h('span', {class: 'muted'}, relative(job.next_run_at))) : h('span', {class: 'muted'}, '—'),
    strips.get(job.id),
    job.enabled ? '' : h('span', {class: 'badge off'}, 'disabled'),
  ])), pager('/jobs', params, page.next_cursor));
  // The strips come after the table is shown: a slow one never holds up the list.
  await Promise.all(page.items.map(async (job) => {
    const runs = await get('/runs', {job: String(job.id), limit: 12}, {signal});
    replace(strips.get(job.id), strip(runs.items));
  }));
}
