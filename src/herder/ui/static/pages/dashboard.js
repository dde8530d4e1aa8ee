// The dashboard: what runs now, what failed lately, what is due next, which locks are held,
// and how many runs of each status the last day saw. Refreshed every few seconds.

import {get} from '../api.js';
import {code, empty, h, replace, table} from '../dom.js';
import {ACTIVE, FAILED, STATUSES, badge, relative, scheduleWords, time, tone, took}
  from '../format.js';
import {href, refPath} from '../router.js';
import {poll, section} from '../ui.js';

export function runRow(run) {
  return [h('a', {href: `#/runs/${run.id}`}, `#${run.id}`),
    h('a', {href: `#/jobs/${refPath(run.job)}`}, run.job), badge(run.status),
    time(run.created_at), took(run)];
}

function counts(summary) {
  const since = summary.since;
  if (!summary.total) {
    return empty('No runs in the last day.', h('span', {}, 'Run a job with ',
      code('herder run JOB'), ' or from its page.'));
  }
  const bar = h('div', {class: 'stack', role: 'img',
    'aria-label': Object.entries(summary.counts).map(([s, n]) => `${s} ${n}`).join(', ')});
  const legend = h('ul', {class: 'legend'});
  for (const status of STATUSES) {
    const n = summary.counts[status];
    if (!n) continue;
    const part = h('span', {class: `seg ${tone(status)}`, title: `${status}: ${n}`});
    part.style.flexGrow = String(n);
    bar.append(part);
    legend.append(h('li', {}, h('a', {href: href('/runs', {status, since})},
      badge(status), ' ', String(n))));
  }
  return h('div', {}, h('p', {class: 'big'}, String(summary.total), ' runs'), bar, legend);
}

export async function render(view, {signal}) {
  const loading = () => h('div', {}, h('p', {class: 'muted'}, 'Loading…'));
  const parts = {counts: loading(), running: loading(), failures: loading(), due: loading(),
    locks: loading()};
  replace(view, h('h1', {}, 'Dashboard'),
    h('div', {class: 'grid'},
      section('Last 24 hours', parts.counts),
      section('Running now', parts.running),
      section('Recent failures', parts.failures),
      section('Due next', parts.due),
      section('Locks held', parts.locks)));
  await poll(3000, async () => {
    const [summary, running, failures, due, locks] = await Promise.all([
      get('/overview/runs', {}, {signal}),
      get('/runs', {status: ACTIVE.join(','), limit: 20}, {signal}),
      get('/runs', {status: FAILED.join(','), limit: 10}, {signal}),
      get('/overview/due', {limit: 8}, {signal}),
      get('/locks', {limit: 200}, {signal}),
    ]);
    replace(parts.counts, counts(summary));
    replace(parts.running, running.items.length
      ? table(['run', 'job', 'status', 'created', 'for'], running.items.map(runRow))
      : empty('Nothing is running.', h('span', {}, 'Start one from ',
        h('a', {href: '#/jobs'}, 'a job'), ' or with ', code('herder run JOB'), '.')));
    replace(parts.failures, failures.items.length
      ? table(['run', 'job', 'status', 'created', 'took'], failures.items.map(runRow))
      : empty('No failures. All good.'));
    replace(parts.due, due.items.length
      ? table(['job', 'schedule', 'next'], due.items.map((job) => [
        h('a', {href: `#/jobs/${refPath(job.ref)}`}, job.ref), scheduleWords(job.schedule),
        h('span', {}, time(job.next_run_at), ' ',
          h('span', {class: 'muted'}, relative(job.next_run_at)))]))
      : empty('No scheduled job is due.', h('span', {}, 'Give a job a schedule: ',
        code('herder job create nightly --cron "0 3 * * *" -- echo hi'))));
    const held = locks.items.filter((lock) => lock.holders.length);
    replace(parts.locks, held.length
      ? table(['lock', 'held by', 'waiting'], held.map((lock) => [
        lock.ref,
        h('span', {}, lock.holders.map((holder) =>
          h('a', {href: `#/runs/${holder.run}`, class: 'chip'}, `#${holder.run}`))),
        String(lock.waiters.length)]))
      : empty('No lock is held.'));
  }, signal);
}
