// Admin: namespaces, tokens (a new token's secret is shown once), locks with their holders and
// waiters, and the audit trail. A tab the signed-in token may not use is not offered.

import {del, get, post} from '../api.js';
import {code, empty, h, replace, table} from '../dom.js';
import {time} from '../format.js';
import {go, href} from '../router.js';
import {can, everywhere, isOpen, me} from '../session.js';
import {action, filters, pager, queryOf, section, statusLine} from '../ui.js';

function tabs() {
  const all = [['namespaces', 'Namespaces', true], ['tokens', 'Tokens', can('admin') && !isOpen()],
    ['locks', 'Locks', true], ['audit', 'Audit trail', can('admin')]];
  return all.filter(([, , shown]) => shown);
}

async function namespaces(view, {signal}) {
  const line = statusLine();
  const page = await get('/namespaces', {limit: 200}, {signal});
  const rows = page.items.map((ns) => [ns.name, time(ns.created_at),
    ns.retention ? JSON.stringify(ns.retention) : h('span', {class: 'muted'}, 'server default'),
    everywhere('admin') && ns.name !== 'default' ? action('Delete', async () => {
      await del(`/namespaces/${encodeURIComponent(ns.name)}`);
      go('/admin/namespaces', {}, {replace: true});
    }, line, {kind: 'danger', confirmText: `Delete namespace ${ns.name}? (refused while it ` +
      'holds anything)'}) : '']);
  let create = null;
  if (everywhere('admin')) {
    const input = h('input', {id: 'ns-name', name: 'name', required: true, autocomplete: 'off'});
    create = h('form', {class: 'inline-form'}, h('label', {for: 'ns-name'}, 'New namespace'),
      input, h('button', {type: 'submit', class: 'primary'}, 'Create'));
    create.addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        await post('/namespaces', {name: input.value.trim()});
        go('/admin/namespaces', {}, {replace: true});
      } catch (error) {
        line.fail(error);
      }
    });
  }
  replace(view, line.el, create, table(['name', 'created', 'retention', ''], rows));
}

async function tokens(view, {params, signal}) {
  const line = statusLine();
  const secret = h('div', {'aria-live': 'polite'});
  const page = await get('/tokens', queryOf(params, ['cursor']), {signal});
  const name = h('input', {id: 'tk-name', required: true, autocomplete: 'off'});
  const namespace = h('input', {id: 'tk-ns', required: true,
    value: me.value.namespace || 'default', autocomplete: 'off'});
  const role = h('select', {id: 'tk-role'}, ['viewer', 'operator', 'editor', 'admin']
    .map((r) => h('option', {value: r}, r)));
  const expires = h('input', {id: 'tk-exp', placeholder: '30d (empty: never)',
    autocomplete: 'off'});
  const form = h('form', {class: 'filters'},
    h('div', {class: 'field'}, h('label', {for: 'tk-name'}, 'Name'), name),
    h('div', {class: 'field'}, h('label', {for: 'tk-ns'}, 'Namespace (* for all)'), namespace),
    h('div', {class: 'field'}, h('label', {for: 'tk-role'}, 'Role'), role),
    h('div', {class: 'field'}, h('label', {for: 'tk-exp'}, 'Expires in'), expires),
    h('div', {class: 'filter-buttons'}, h('button', {type: 'submit', class: 'primary'},
      'Create token')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const made = await post('/tokens', {name: name.value.trim(),
        namespace: namespace.value.trim(), role: role.value,
        expires_in: expires.value.trim() || null});
      const value = h('input', {readonly: true, value: made.token, class: 'secret',
        'aria-label': 'the new token', id: 'new-token'});
      const copy = h('button', {type: 'button'}, 'Copy');
      copy.addEventListener('click', async () => {
        value.select();
        await navigator.clipboard?.writeText(made.token).catch(() => null);
      });
      replace(secret, h('div', {class: 'card once'},
        h('p', {}, h('strong', {}, `Token ${made.id} (${made.name}) made. `),
          'Copy it now: it is shown this once and cannot be read again.'), value, copy));
      value.select();
    } catch (error) {
      line.fail(error);
    }
  });
  const rows = page.items.map((token) => [String(token.id), token.name, token.namespace,
    token.role, time(token.created_at), token.created_by, time(token.expires_at),
    time(token.last_used_at),
    token.revoked_at ? h('span', {class: 'badge off'}, 'revoked') : action('Revoke', async () => {
      await del(`/tokens/${token.id}`);
      go('/admin/tokens', {}, {replace: true});
    }, line, {kind: 'danger', confirmText: `Revoke token ${token.id} (${token.name})? Its ` +
      'sessions end too.'})]);
  replace(view, line.el, section('New token', form, secret),
    rows.length ? table(['id', 'name', 'namespace', 'role', 'created', 'by', 'expires',
      'last used', ''], rows) : empty('No tokens.'), pager('/admin/tokens', params,
      page.next_cursor));
}

async function locks(view, {signal}) {
  const line = statusLine();
  const page = await get('/locks', {limit: 200}, {signal});
  if (!page.items.length) {
    replace(view, empty('No locks yet.', h('span', {}, 'A job declares one with ',
      code('locks: [db-maintenance]'), '.')));
    return;
  }
  const claim = (lock, c, held) => h('span', {class: 'chip'},
    h('a', {href: `#/runs/${c.run}`}, `#${c.run}`), ` ${c.job} since `, time(c.since),
    held && can('admin', lock.namespace) ? action('Release', async () => {
      await del(`/locks/${lock.ref}/holders/${c.run}`);
      go('/admin/locks', {}, {replace: true});
    }, line, {kind: 'danger small', confirmText: `Take ${lock.ref} from run #${c.run}?`}) : null);
  replace(view, line.el, table(['lock', 'slots', 'holders', 'waiters', 'jobs'],
    page.items.map((lock) => [lock.ref, String(lock.slots),
      lock.holders.length ? lock.holders.map((c) => claim(lock, c, true))
        : h('span', {class: 'muted'}, 'free'),
      lock.waiters.length ? lock.waiters.map((c) => claim(lock, c, false)) : '—',
      lock.jobs.join(', ')])));
}

async function audit(view, {params, signal}) {
  const query = queryOf(params, ['actor', 'action', 'namespace', 'since', 'until', 'cursor']);
  const page = await get('/audit', {...query, limit: 50}, {signal});
  replace(view, filters('/admin/audit', params, [
    {name: 'actor', label: 'Actor', placeholder: 'token name'},
    {name: 'action', label: 'Action', placeholder: 'job.* or run.cancel'},
    {name: 'namespace', label: 'Namespace'},
    {name: 'since', label: 'Since', type: 'datetime'},
    {name: 'until', label: 'Until', type: 'datetime'},
  ]), page.items.length ? table(['at', 'actor', 'action', 'namespace', 'object', 'status',
    'client'], page.items.map((e) => [time(e.at), e.actor, e.action, e.namespace || '—',
    e.object || '—', String(e.status), e.client || ''])) : empty('No entries match.'),
  pager('/admin/audit', params, page.next_cursor));
}

const TABS = {namespaces, tokens, locks, audit};

export async function render(view, context) {
  const shown = tabs();
  const tab = context.args.tab || 'namespaces';
  const body = h('div', {});
  replace(view, h('h1', {}, 'Admin'),
    h('nav', {class: 'tabs', 'aria-label': 'admin'}, shown.map(([key, label]) => h('a', {
      href: href(`/admin/${key}`), 'aria-current': key === tab ? 'page' : null}, label))),
    body);
  if (!shown.some(([key]) => key === tab)) {
    replace(body, empty('This token may not use this page.',
      'Tokens and the audit trail need the admin role.'));
    return;
  }
  await TABS[tab](body, context);
}
