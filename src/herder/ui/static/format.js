// How values read on the page: times (local, in a schedule's zone, relative), durations,
// statuses, schedules in words.

import {h} from './dom.js';

export const ACTIVE = ['READY', 'WAITING', 'ACTION_PENDING', 'JOB_DEPLOYED', 'PENDING', 'RUNNING',
  'IN_DOUBT'];
export const FAILED = ['APP_ERROR', 'PROC_ERROR', 'TIMEOUT'];
export const STATUSES = [...ACTIVE, 'TIMEOUT', 'PROC_ERROR', 'APP_ERROR', 'ABORTED', 'SKIPPED',
  'SUCCESS'];
export const TRIGGERS = ['schedule', 'manual', 'api', 'retry', 'workflow', 'event', 'chain'];

/** The colour family of a status (run or workflow run). */
export function tone(status) {
  if (!status) return 'none';
  if (status === 'SUCCESS') return 'ok';
  if (['APP_ERROR', 'PROC_ERROR', 'TIMEOUT', 'FAILED', 'FAILING'].includes(status)) return 'bad';
  if (['ABORTED', 'SKIPPED', 'CANCELLING'].includes(status)) return 'off';
  if (['ACTION_PENDING', 'PAUSED', 'WAITING', 'IN_DOUBT'].includes(status)) return 'wait';
  return 'run';
}

export function badge(status) {
  return h('span', {class: `badge ${tone(status)}`}, status || 'not started');
}

const WHEN = new Intl.DateTimeFormat(undefined, {dateStyle: 'medium', timeStyle: 'medium'});

export function when(iso) {
  if (!iso) return '';
  return WHEN.format(new Date(iso));
}

/** A <time> with the local time shown and the exact UTC moment as its title. */
export function time(iso) {
  if (!iso) return h('span', {class: 'muted'}, '—');
  return h('time', {datetime: iso, title: iso}, when(iso));
}

/** A moment in a named time zone, e.g. a schedule's. */
export function inZone(iso, zone) {
  try {
    return new Intl.DateTimeFormat(undefined, {
      year: 'numeric', month: 'short', day: 'numeric', weekday: 'short', hour: '2-digit',
      minute: '2-digit', timeZone: zone || 'UTC', timeZoneName: 'short',
    }).format(new Date(iso));
  } catch {
    return when(iso);
  }
}

export function relative(iso, now = Date.now()) {
  if (!iso) return '';
  const seconds = Math.round((new Date(iso).getTime() - now) / 1000);
  const text = duration(Math.abs(seconds));
  return seconds >= 0 ? `in ${text}` : `${text} ago`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

export function took(run) {
  if (!run.started_at) return '';
  const end = run.finished_at ? new Date(run.finished_at) : new Date();
  return duration((end - new Date(run.started_at)) / 1000);
}

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

function pad(n) {
  return String(n).padStart(2, '0');
}

/** A cron expression in words where it is a common shape; the expression itself otherwise. */
export function cronWords(expression) {
  const fields = expression.trim().split(/\s+/);
  const [min, hour, dom, mon, dow] = fields.length === 6 ? fields.slice(1) : fields;
  if (fields.length === 6 && fields[0] !== '0') return `cron ${expression}`;
  const number = /^\d+$/;
  if (fields.length < 5) return `cron ${expression}`;
  if (min === '*' && hour === '*' && dom === '*' && mon === '*' && dow === '*') {
    return 'every minute';
  }
  const step = /^\*\/(\d+)$/.exec(min);
  if (step && hour === '*' && dom === '*' && mon === '*' && dow === '*') {
    return `every ${step[1]} minutes`;
  }
  if (number.test(min) && hour === '*' && dom === '*' && mon === '*' && dow === '*') {
    return `every hour at minute ${min}`;
  }
  if (number.test(min) && number.test(hour) && mon === '*') {
    const at = `at ${pad(hour)}:${pad(min)}`;
    if (dom === '*' && dow === '*') return `every day ${at}`;
    if (dom === '*' && /^\d$/.test(dow)) return `every ${DAYS[Number(dow) % 7]} ${at}`;
    if (dom === '*' && (dow === '1-5' || dow === 'MON-FRI')) return `every weekday ${at}`;
    if (number.test(dom) && dow === '*') return `on day ${dom} of every month ${at}`;
  }
  return `cron ${expression}`;
}

/** A schedule in words, with its time zone: 'every day at 03:00 (Europe/Rome)'. */
export function scheduleWords(schedule) {
  if (!schedule) return 'no schedule (runs when asked)';
  const zone = schedule.timezone || 'UTC';
  let words;
  if (schedule.cron) words = `${cronWords(schedule.cron)} (${zone})`;
  else if (schedule.every) words = `every ${schedule.every}`;
  else words = `once, at ${inZone(schedule.at, zone)}`;
  if (schedule.jitter) words += `, up to ${schedule.jitter} late`;
  return words;
}

/** Plain values as YAML, for reading a spec (not a full YAML writer: enough for JSON data). */
export function yaml(value, indent = '') {
  const scalar = (v) => {
    if (v === null || v === undefined) return 'null';
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    const text = String(v);
    return /^[\w./@:-][\w ./@:,+-]*$/.test(text) && !/^(true|false|null|yes|no|~|\d.*)$/i
      .test(text) && !text.endsWith(' ') ? text : JSON.stringify(text);
  };
  if (Array.isArray(value)) {
    if (!value.length) return '[]';
    return value.map((item) => {
      const inner = yaml(item, indent + '  ');
      return `\n${indent}- ${typeof item === 'object' && item !== null ? inner.trimStart() : inner}`;
    }).join('');
  }
  if (value && typeof value === 'object') {
    const keys = Object.keys(value).filter((key) => value[key] !== null);
    if (!keys.length) return '{}';
    return keys.map((key) => {
      const item = value[key];
      const nested = item && typeof item === 'object' &&
        (Array.isArray(item) ? item.length : Object.keys(item).length);
      const inner = yaml(item, indent + '  ');
      return `\n${indent}${scalar(key)}:${nested ? inner : ' ' + inner}`;
    }).join('');
  }
  return scalar(value);
}

export function json(value) {
  return JSON.stringify(value, null, 2);
}
