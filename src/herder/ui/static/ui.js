// Pieces several pages share: polling while a page is shown, buttons that call the API and
// say what happened, filter forms kept in the URL, pagination by cursor.

import {ApiError} from './api.js';
import {h, notice, replace} from './dom.js';
import {go} from './router.js';

/** Call `fn` now and every `ms` until the page is left; skipped while the tab is hidden. */
export function poll(ms, fn, signal) {
  let timer = null;
  const tick = async () => {
    if (signal.aborted) return;
    if (!document.hidden) {
      try {
        await fn();
      } catch (error) {
        if (error.name === 'AbortError') return;
        console.warn('refresh failed', error);
      }
    }
    if (!signal.aborted) timer = setTimeout(tick, ms);
  };
  signal.addEventListener('abort', () => clearTimeout(timer));
  return tick();
}

/** A status line for a page: say(text) / fail(error). */
export function statusLine() {
  const el = h('div', {class: 'status-line', 'aria-live': 'polite'});
  return {
    el,
    say(text) { replace(el, notice(text, 'ok')); },
    fail(error) { replace(el, notice(describe(error))); },
    clear() { replace(el); },
  };
}

export function describe(error) {
  if (error instanceof ApiError) return error.message;
  return `Could not reach the server: ${error.message || error}`;
}

/** A button that runs `action`, disabled while it runs; errors go to `line`. */
export function action(label, fn, line, {kind = '', confirmText = null, done = null} = {}) {
  const button = h('button', {type: 'button', class: kind || null});
  button.textContent = label;
  button.addEventListener('click', async () => {
    if (confirmText && !window.confirm(confirmText)) return;
    button.disabled = true;
    try {
      const result = await fn();
      if (done) line.say(typeof done === 'function' ? done(result) : done);
    } catch (error) {
      line.fail(error);
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

/**
 * A filter form whose fields are the page's URL parameters: submitting it changes the URL
 * (so the view can be shared), and the page renders from the URL.
 * fields: [{name, label, type: 'text'|'select'|'multi'|'datetime', options, placeholder}]
 */
export function filters(path, params, fields) {
  const form = h('form', {class: 'filters', role: 'search'});
  for (const field of fields) {
    const id = `f-${field.name}`;
    let input;
    if (field.type === 'select') {
      input = h('select', {id, name: field.name},
        field.options.map(([value, text]) => h('option', {value,
          selected: (params.get(field.name) || '') === value}, text)));
    } else if (field.type === 'multi') {
      const chosen = params.getAll(field.name).flatMap((v) => v.split(','));
      input = h('select', {id, name: field.name, multiple: true, size: 4},
        field.options.map((value) => h('option', {value, selected: chosen.includes(value)},
          value)));
    } else if (field.type === 'datetime') {
      const value = params.get(field.name);
      input = h('input', {id, name: field.name, type: 'datetime-local', step: 1,
        value: value ? toLocalInput(value) : null});
    } else {
      input = h('input', {id, name: field.name, type: 'search', value: params.get(field.name),
        placeholder: field.placeholder || null, autocomplete: 'off'});
    }
    form.append(h('div', {class: 'field'}, h('label', {for: id}, field.label), input));
  }
  form.append(h('div', {class: 'filter-buttons'},
    h('button', {type: 'submit', class: 'primary'}, 'Apply'),
    h('a', {href: '#' + path, class: 'button'}, 'Clear')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const next = {};
    for (const field of fields) {
      const el = form.elements[field.name];
      if (field.type === 'multi') {
        next[field.name] = [...el.selectedOptions].map((o) => o.value);
      } else if (field.type === 'datetime') {
        next[field.name] = el.value ? new Date(el.value).toISOString() : '';
      } else next[field.name] = el.value.trim();
    }
    go(path, next);
  });
  return form;
}

function toLocalInput(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return local.toISOString().slice(0, 19);
}

/** "Newer" goes back in history, "Older" follows next_cursor; the cursor is in the URL. */
export function pager(path, params, nextCursor) {
  const older = nextCursor ? (() => {
    const next = Object.fromEntries([...new Set(params.keys())].map((k) => [k, params.getAll(k)]));
    next.cursor = nextCursor;
    return h('button', {type: 'button', onclick: () => go(path, next)}, 'Older →');
  })() : null;
  const newer = params.get('cursor')
    ? h('button', {type: 'button', onclick: () => history.back()}, '← Newer') : null;
  if (!older && !newer) return null;
  return h('nav', {class: 'pager', 'aria-label': 'pages'}, newer, older);
}

/** The query of a list from the URL's parameters (repeatable ones as arrays). */
export function queryOf(params, names) {
  const query = {};
  for (const name of names) {
    const values = params.getAll(name).filter(Boolean);
    if (values.length) query[name] = values.length > 1 ? values : values[0];
  }
  return query;
}

export function section(title, ...children) {
  return h('section', {class: 'card'}, h('h2', {}, title), ...children);
}
