// Hash routing: #/runs?status=APP_ERROR&job=x. The whole view lives in the URL, so a view can
// be shared; the server only ever serves index.html.

const routes = [];

export function route(pattern, render) {
  const names = [];
  const source = pattern.replace(/:(\w+)(\*)?/g, (_, name, rest) => {
    names.push(name);
    return rest ? '(.+)' : '([^/]+)';
  });
  routes.push({regex: new RegExp(`^${source}$`), names, render});
}

export function current() {
  const raw = location.hash.startsWith('#/') ? location.hash.slice(1) : '/';
  const [path, query] = raw.split('?', 2);
  return {path, params: new URLSearchParams(query || '')};
}

export function match(path) {
  for (const {regex, names, render} of routes) {
    const found = regex.exec(path);
    if (found) {
      const args = {};
      names.forEach((name, i) => { args[name] = decodeURIComponent(found[i + 1]); });
      return {render, args};
    }
  }
  return null;
}

/** '#/path?k=v' with empty values left out; arrays repeat the key. */
export function href(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    for (const one of [value].flat()) {
      if (one !== null && one !== undefined && one !== '') query.append(key, one);
    }
  }
  const text = query.toString();
  return '#' + path + (text ? '?' + text : '');
}

export function go(path, params, {replace = false} = {}) {
  const target = href(path, params);
  if (replace) history.replaceState(null, '', target);
  else history.pushState(null, '', target);
  window.dispatchEvent(new HashChangeEvent('hashchange'));
}

/** A path segment for a ref like ns/name: each part encoded, the slash kept. */
export function refPath(ref) {
  return String(ref).split('/').map(encodeURIComponent).join('/');
}
