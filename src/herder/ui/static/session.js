// Who is signed in, and what the page may offer them: buttons for what the token may not do
// are not shown (the server refuses such requests anyway). Mirrors herder.api.auth.

import {ApiError, del, get} from './api.js';

const RANK = {viewer: 1, operator: 2, editor: 3, admin: 4};
const NEEDS = {read: 1, run: 2, edit: 3, admin: 4};

export const me = {value: null};

export async function load() {
  try {
    me.value = await get('/whoami');
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) me.value = null;
    else throw error;
  }
  return me.value;
}

export function isOpen() {
  return me.value && me.value.authentication === 'off';
}

/** May the signed-in caller do `permission` in `namespace` (any namespace when omitted)? */
export function can(permission, namespace) {
  const who = me.value;
  if (!who) return false;
  if (who.authentication === 'off') return true;
  if (!who.role) return false;
  if (namespace !== undefined && who.namespace !== '*' && who.namespace !== namespace) {
    return false;
  }
  return RANK[who.role] >= NEEDS[permission];
}

/** May the caller do `permission` in every namespace? */
export function everywhere(permission) {
  return isOpen() || (can(permission) && me.value.namespace === '*');
}

export async function signOut() {
  await del('/session');
  me.value = null;
}
