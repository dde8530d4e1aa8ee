// Sign in with an API token: the server answers a session cookie (HttpOnly) and the CSRF value
// (a readable cookie), and the token itself is forgotten by the page.

import {post} from '../api.js';
import {h, notice, replace} from '../dom.js';
import {isOpen, load, me} from '../session.js';
import {describe} from '../ui.js';

export async function render(view, {params}) {
  const next = params.get('next') || '/';
  await load().catch(() => null);
  if (me.value) {
    location.replace('#' + (next.startsWith('/') ? next : '/'));
    return;
  }
  const message = h('div', {'aria-live': 'polite'});
  const input = h('input', {id: 'token', name: 'token', type: 'password', required: true,
    autocomplete: 'current-password', spellcheck: 'false', placeholder: 'herder_…'});
  const form = h('form', {class: 'card signin'},
    h('h1', {}, 'Sign in to herder'),
    h('p', {class: 'muted'}, 'Paste an API token. An admin makes one with ',
      h('code', {}, 'herder token create NAME --namespace NS --role viewer'), '.'),
    h('label', {for: 'token'}, 'API token'), input,
    h('button', {type: 'submit', class: 'primary'}, 'Sign in'), message);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    replace(message);
    try {
      await post('/session', {token: input.value.trim()});
      input.value = '';
      await load();
      location.replace('#' + (next.startsWith('/') ? next : '/'));
    } catch (error) {
      replace(message, notice(describe(error)));
      input.select();
    }
  });
  replace(view, form);
  input.focus();
  if (isOpen()) replace(message, notice('This server runs open: no sign-in needed.', 'ok'));
}
