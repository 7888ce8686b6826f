/**
 * Layout maths of the network diagram: where each column, node and link goes, in CSS px.
 * Pure functions of the structure and the container's width; nothing here touches the DOM.
 */
import { NODE } from './features.js';

/** @typedef {import('./network.js').NetworkStructure} NetworkStructure */

/** Height of the column heads (layer controls) above the first row of nodes, unless the page's
 * CSS says otherwise (--layer-head-height: taller on touch screens, where the controls stack). */
const HEAD = 118;
/** Distance between two rows of nodes. */
export const ROW = 50;
/** Left edge of the features column (room for the feature labels). */
const LEFT = 64;
/** The diagram never lays out narrower than this, however small its container. */
const MIN_WIDTH = 360;

/** @typedef {{x: number, y: number}} Point */

/**
 * @typedef {object} NetworkLayout
 * @property {number} width        of the diagram
 * @property {number} height       of the diagram
 * @property {number} columns      features, each hidden layer, output
 * @property {number} headWidth    of a column head
 * @property {Point[][]} positions positions[column][row]: top-left corner of each node
 * @property {number[][]} inputRows inputRows[l][i]: the row, in column l, of Dense layer l's input i
 */

/**
 * The diagram's width for a container.
 * @param {HTMLElement} container
 */
export function diagramWidth(container) {
  return Math.max(container.clientWidth, MIN_WIDTH);
}

/**
 * The column heads' height for a container (its --layer-head-height, else HEAD).
 * @param {HTMLElement} container
 */
export function headHeight(container) {
  const css = parseFloat(getComputedStyle(container).getPropertyValue('--layer-head-height'));
  return Number.isFinite(css) && css > 0 ? css : HEAD;
}

/**
 * The diagram's height: the column heads, then as many rows as the tallest column.
 * @param {NetworkStructure} structure
 * @param {number} [head] the column heads' height
 */
export function diagramHeight(structure, head = HEAD) {
  const rows = Math.max(structure.features.length, structure.outputUnits, ...structure.layers.map((l) => l.units));
  return head + rows * ROW;
}

/**
 * Column x (left edge of its nodes) for column c of `count` columns.
 * @param {number} c
 * @param {number} count
 * @param {number} width
 */
export function columnX(c, count, width) {
  return LEFT + (c * (width - LEFT - NODE - 8)) / Math.max(count - 1, 1);
}

/**
 * Where every node of an architecture goes, and which nodes feed each Dense layer.
 * @param {NetworkStructure} structure
 * @param {number} width
 * @param {number} [head] the column heads' height
 * @returns {NetworkLayout}
 */
export function layoutNetwork(structure, width, head = HEAD) {
  const hidden = structure.layers;
  const columns = hidden.length + 2;
  const column = (/** @type {number} */ c, /** @type {number} */ length) =>
    Array.from({ length }, (_, r) => ({ x: columnX(c, columns, width), y: head + r * ROW }));
  const positions = [
    column(0, structure.features.length),
    ...hidden.map((layer, c) => column(c + 1, layer.units)),
    column(columns - 1, structure.outputUnits),
  ];
  // The first Dense layer reads only the enabled features, at their rows in the features column.
  const featureRow = new Map(structure.features.map((f, r) => [f.name, r]));
  const enabledRows = structure.features.filter((f) => f.enabled).map((f) => /** @type {number} */ (featureRow.get(f.name)));
  const inputRows = [enabledRows, ...hidden.map((layer) => Array.from({ length: layer.units }, (_, r) => r))];
  return {
    width,
    height: diagramHeight(structure, head),
    columns,
    headWidth: Math.min(96, (width - LEFT - NODE) / Math.max(columns - 1, 1) - 4),
    positions,
    inputRows,
  };
}

/**
 * The SVG path of the link from a node's right edge to another node's left edge (an S curve).
 * @param {Point} from
 * @param {Point} to
 */
export function linkPath(from, to) {
  // A tenth of a pixel is finer than the eye and keeps the drawn buckets' path strings short.
  const r = (/** @type {number} */ v) => Math.round(v * 10) / 10;
  const x1 = r(from.x + NODE);
  const y1 = r(from.y + NODE / 2);
  const x2 = r(to.x);
  const y2 = r(to.y + NODE / 2);
  const mid = r((x1 + x2) / 2);
  return `M${x1},${y1}C${mid},${y1} ${mid},${y2} ${x2},${y2}`;
}

/**
 * Left edge of a column head, centred over the column's nodes.
 * @param {NetworkLayout} layout
 * @param {number} c
 */
export function headX(layout, c) {
  return columnX(c, layout.columns, layout.width) + NODE / 2 - layout.headWidth / 2;
}
