// Building the page: every piece of data goes in as a text node or an attribute value, never
// as HTML, so a job named <img src=x onerror=alert(1)> shows as those characters.

const SVG = 'http://www.w3.org/2000/svg';

function fill(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.setAttribute('class', value);
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else el.setAttribute(key, value === true ? '' : String(value));
  }
  add(el, children);
  return el;
}

/** Append children: nodes as they are, anything else as text. */
export function add(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element: h('a', {href: '#/runs'}, 'Runs'). */
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG, tag), attrs, children);
}

/** Replace an element's content. */
export function replace(el, ...children) {
  el.replaceChildren();
  return add(el, children);
}

/** A table with a header row; rows are arrays of cells (nodes or text). */
export function table(headers, rows, {caption, cls} = {}) {
  return h('div', {class: 'table-wrap'},
    h('table', {class: cls || null},
      caption ? h('caption', {}, caption) : null,
      h('thead', {}, h('tr', {}, headers.map((name) => h('th', {scope: 'col'}, name)))),
      h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((c) => h('td', {}, c)))))));
}

/** A clear empty state: what is missing and how to make some. */
export function empty(what, hint) {
  return h('div', {class: 'empty'}, h('p', {}, what),
    hint ? h('p', {class: 'muted'}, hint) : null);
}

/** A code snippet a person can copy. */
export function code(text) {
  return h('code', {}, text);
}

/** A message in a live region, so that screen readers hear it too. */
export function notice(text, kind = 'error') {
  return h('p', {class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status'}, text);
}
