// A workflow run drawn as SVG: steps as boxes coloured by their live status, in columns by
// dependency depth (left to right), edges labelled with their condition. A box links to the
// step's latest run, or to its child workflow run for a nested workflow.

import {h, s} from './dom.js';
import {tone} from './format.js';

const W = 192;
const H = 54;
const GX = 70;
const GY = 22;
const PAD = 16;

/** Column of each node: 0 for a node nothing leads to, else one more than its deepest input. */
export function depths(nodes, edges) {
  const depth = new Map(nodes.map((n) => [n.id, 0]));
  for (let pass = 0; pass < nodes.length; pass += 1) {
    let moved = false;
    for (const edge of edges) {
      const want = (depth.get(edge.from) ?? 0) + 1;
      if (depth.has(edge.to) && want > depth.get(edge.to)) {
        depth.set(edge.to, want);
        moved = true;
      }
    }
    if (!moved) break;
  }
  // Failure handlers stand after every step, so the normal path reads first.
  const last = Math.max(0, ...nodes.filter((n) => n.section !== 'on_failure')
    .map((n) => depth.get(n.id)));
  for (const node of nodes) {
    if (node.section === 'on_failure') depth.set(node.id, last + 1 + depth.get(node.id));
  }
  return depth;
}

export function layout(nodes, edges) {
  const depth = depths(nodes, edges);
  const columns = new Map();
  for (const node of nodes) {
    const column = depth.get(node.id);
    if (!columns.has(column)) columns.set(column, []);
    columns.get(column).push(node);
  }
  const place = new Map();
  let rows = 0;
  for (const [column, members] of columns) {
    members.forEach((node, row) => {
      place.set(node.id, {x: PAD + column * (W + GX), y: PAD + row * (H + GY)});
    });
    rows = Math.max(rows, members.length);
  }
  const width = PAD * 2 + Math.max(1, columns.size) * (W + GX) - GX;
  const height = PAD * 2 + Math.max(1, rows) * (H + GY) - GY;
  return {place, width, height};
}

function short(text, most) {
  return text.length > most ? text.slice(0, most - 1) + '…' : text;
}

function subtitle(node) {
  const parts = [node.kind, node.status ? node.status.toLowerCase() : 'not started'];
  if (node.attempt > 1) parts.push(`attempt ${node.attempt}`);
  const items = Object.entries(node.items || {});
  if (items.length) parts.push(items.map(([status, n]) => `${n} ${status.toLowerCase()}`)
    .join(', '));
  return parts.join(' · ');
}

export function target(node) {
  if (node.child) return `#/workflow-runs/${node.child}`;
  const runs = node.runs || [];
  return runs.length ? `#/runs/${runs[runs.length - 1].id}` : null;
}

/** The SVG of a graph ({nodes, edges}). */
export function draw(graph, {label = 'workflow graph'} = {}) {
  const {nodes, edges} = graph;
  const {place, width, height} = layout(nodes, edges);
  const svg = s('svg', {class: 'graph', viewBox: `0 0 ${width} ${height}`, width, height,
    role: 'group', 'aria-label': label});
  svg.append(s('defs', {}, s('marker', {id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse'},
  s('path', {d: 'M0,0 L10,5 L0,10 z', class: 'arrowhead'}))));
  for (const edge of edges) {
    const a = place.get(edge.from);
    const b = place.get(edge.to);
    if (!a || !b) continue;
    const x1 = a.x + W;
    const y1 = a.y + H / 2;
    const x2 = b.x;
    const y2 = b.y + H / 2;
    const bend = Math.max(24, (x2 - x1) / 2);
    svg.append(s('g', {class: `edge on-${edge.on}`},
      s('path', {d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`,
        'marker-end': 'url(#arrow)'}),
      s('text', {x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 4, 'text-anchor': 'middle'}, edge.on)));
  }
  for (const node of nodes) {
    const at = place.get(node.id);
    const box = s('g', {class: `node ${tone(node.status)}`, 'data-step': node.id,
      'data-status': node.status || ''},
    s('title', {}, `${node.id}: ${subtitle(node)}${node.message ? ` — ${node.message}` : ''}`),
    s('rect', {x: at.x, y: at.y, width: W, height: H, rx: 8}),
    s('text', {x: at.x + 10, y: at.y + 22, class: 'name'}, short(node.id, 22)),
    s('text', {x: at.x + 10, y: at.y + 41, class: 'sub'}, short(subtitle(node), 30)));
    const link = target(node);
    svg.append(link ? s('a', {href: link, 'aria-label': `${node.id}, ${subtitle(node)}`}, box)
      : box);
  }
  return h('div', {class: 'graph-wrap'}, svg);
}
