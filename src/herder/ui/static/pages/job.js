// One job: its schedule and next fire times, "why didn't it run" (the recent slots and their
// fate), enable/disable, run now with param overrides, its last runs, and its spec as YAML.

import {get, post} from '../api.js';
import {code, empty, h, replace, table} from '../dom.js';
import {badge, inZone, relative, scheduleWords, time, took, yaml} from '../format.js';
import {go, href, refPath} from '../router.js';
import {can} from '../session.js';
import {action, section, statusLine} from '../ui.js';
import {strip} from './jobs.js';

function runNow(job, line) {
  const names = Object.keys(job.params || {});
  const form = h('form', {class: 'run-now'});
  const inputs = names.map((name) => {
    const id = `param-${name}`;
    const input = h('input', {id, name, value: String(job.params[name]), autocomplete: 'off'});
    form.append(h('div', {class: 'field'}, h('label', {for: id}, name), input));
    return input;
  });
  const manual = h('input', {type: 'checkbox', id: 'manual-start', name: 'manual_start'});
  form.append(h('label', {for: 'manual-start', class: 'check'}, manual,
    ' wait for approval before starting'));
  form.append(h('button', {type: 'submit', class: 'primary'}, 'Run now'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const params = {};
    inputs.forEach((input) => {
      if (input.value !== String(job.params[input.name])) params[input.name] = input.value;
    });
    try {
      const run = await post(`/jobs/${refPath(job.ref)}/runs`,
        {params, manual_start: manual.checked});
      go(`/runs/${run.id}`);
    } catch (error) {
      line.fail(error);
    }
  });
  return form;
}

function slots(report) {
  const zone = report.schedule && report.schedule.timezone;
  const recent = report.recent.length
    ? table(['slot', 'fate', 'run', 'why'], report.recent.map((slot) => [
      inZone(slot.slot, zone), h('span', {}, slot.fate, ' ', badge(slot.status)),
      h('a', {href: `#/runs/${slot.run_id}`}, `#${slot.run_id}`),
      [slot.reason, slot.dst].filter(Boolean).join('; ')]))
    : empty('No slot has come yet.');
  return h('div', {},
    h('p', {}, `${report.skipped_total} slot(s) skipped by the misfire policy in all.`),
    report.unlisted ? h('p', {class: 'muted'}, `Older skipped slots, through `,
      report.unlisted.through, report.unlisted.reason ? `: ${report.unlisted.reason}` : '') : null,
    recent,
    report.notes.length ? h('ul', {class: 'notes'}, report.notes.map((n) => h('li', {}, n)))
      : null);
}

export async function render(view, {args, signal}) {
  const ref = args.ref;
  const line = statusLine();
  const job = await get(`/jobs/${refPath(ref)}`, {}, {signal});
  const [report, runs] = await Promise.all([
    job.schedule ? get(`/jobs/${refPath(ref)}/schedule`, {recent: 20, upcoming: 5}, {signal})
      : null,
    get('/runs', {job: String(job.id), limit: 20}, {signal}),
  ]);
  const zone = job.schedule && job.schedule.timezone;
  const controls = h('div', {class: 'actions'});
  if (can('edit', job.namespace)) {
    controls.append(action(job.enabled ? 'Disable' : 'Enable', async () => {
      await post(`/jobs/${refPath(job.ref)}/${job.enabled ? 'disable' : 'enable'}`);
      go(`/jobs/${job.ref}`, {}, {replace: true});
    }, line));
  }
  replace(view,
    h('h1', {}, job.ref, ' ', job.enabled ? null : h('span', {class: 'badge off'}, 'disabled')),
    job.description ? h('p', {}, job.description) : null,
    controls, line.el,
    h('div', {class: 'grid'},
      section('Schedule',
        h('p', {}, scheduleWords(job.schedule)),
        report && report.upcoming.length ? h('ol', {class: 'upcoming'},
          report.upcoming.map((slot) => h('li', {}, inZone(slot.slot, zone), ' ',
            h('span', {class: 'muted'}, relative(slot.slot)), slot.dst ? ` (${slot.dst})` : '')))
          : h('p', {class: 'muted'}, job.schedule ? 'No fire time ahead.' :
            'Runs only when asked.'),
        h('p', {}, 'Concurrency: ', job.concurrency, job.concurrency !== 'allow'
          ? ` (at most ${job.max_active} active)` : '')),
      can('run', job.namespace) ? section('Run now', runNow(job, line)) : null),
    job.schedule ? section("Why didn't it run?", slots(report)) : null,
    section('Last runs', runs.items.length ? h('div', {}, strip(runs.items),
      table(['run', 'status', 'trigger', 'created', 'took', 'exit'], runs.items.map((run) => [
        h('a', {href: `#/runs/${run.id}`}, `#${run.id}`), badge(run.status), run.trigger,
        time(run.created_at), took(run), run.exit_code ?? ''])),
      h('p', {}, h('a', {href: href('/runs', {job: job.ref})}, 'All runs of this job')))
      : empty('No runs yet.', h('span', {}, 'Run it with the form above or ',
        code(`herder run ${job.ref}`), '.'))),
    section('Spec', h('pre', {class: 'yaml'}, yaml(specOf(job)).trimStart())));
}

function specOf(job) {
  const {id, ref, name, namespace, labels, annotations, created_at, updated_at, run_count,
    next_run_at, ...spec} = job;
  void id; void ref; void created_at; void updated_at; void run_count; void next_run_at;
  return {apiVersion: 'herder/v1', kind: 'Job', metadata: {name, namespace, labels, annotations},
    spec};
}
