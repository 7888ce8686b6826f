/**
 * The network's links: one SVG curve per weight, drawn under a wider transparent twin that takes
 * the pointer and the keyboard; `paintLinks` sets each curve's colour (sign) and width (magnitude).
 */
import { divergingCss } from '../colors.js';
import { svgEl } from '../dom.js';
import { linkPath } from './network_layout.js';

/** @typedef {import('./network.js').NetworkStructure} NetworkStructure */
/** @typedef {import('./network_layout.js').NetworkLayout} NetworkLayout */
/** @typedef {import('../types.js').FrameLayer} FrameLayer */

/**
 * Link width in px from |w|: 0.8 px at 0 up to 5 px at |w| ≥ 3 (TFP's 1–10 px over [0, 5]
 * turns a 6×8 net into a solid block).
 * @param {number} w
 */
function linkWidth(w) {
  return Number.isFinite(w) ? 0.8 + (4.2 * Math.min(Math.abs(w), 3)) / 3 : 0.8;
}

/**
 * Draw every link of an architecture into a new SVG layer of `container`.
 * @param {HTMLElement} container
 * @param {NetworkStructure} structure
 * @param {NetworkLayout} layout
 * @returns {SVGPathElement[][][]} links[layer][i][j], i over the layer's inputs
 */
export function renderLinks(container, structure, layout) {
  const svg = svgEl('svg', { class: 'links', width: String(layout.width), height: String(layout.height) });
  container.append(svg);
  const enabled = structure.features.filter((f) => f.enabled);
  const lastLayer = structure.layers.length;
  /** @type {SVGPathElement[][][]} */
  const links = [];
  const hits = document.createDocumentFragment();
  const visible = document.createDocumentFragment();
  for (let l = 0; l < lastLayer + 1; l++) {
    const from = layout.positions[l];
    const to = layout.positions[l + 1];
    links.push(layout.inputRows[l].map((row, i) => to.map((target, j) => {
      const d = linkPath(from[row], target);
      const path = svgEl('path', { class: 'link', d, stroke: '#ccc', 'stroke-width': '1' });
      visible.append(path);
      const source = l === 0 ? (enabled[i]?.label ?? `input ${i + 1}`) : `layer ${l} neuron ${i + 1}`;
      const sink = l === lastLayer ? `output ${j + 1}` : `layer ${l + 1} neuron ${j + 1}`;
      hits.append(svgEl('path', {
        class: 'link-hit',
        d,
        'data-layer': String(l),
        'data-i': String(i),
        'data-j': String(j),
        // Focusable, so a weight can be edited from the keyboard (Enter opens the editor).
        tabindex: '0',
        role: 'button',
        'aria-label': `Weight from ${source} to ${sink}`,
      }));
      return path;
    })));
  }
  svg.append(visible, hits);
  return links;
}

/**
 * Colour and size one Dense layer's links from its kernel.
 * @param {SVGPathElement[][]} layerLinks layerLinks[i][j]
 * @param {number[][]} kernel kernel[i][j]
 */
function paintLayerLinks(layerLinks, kernel) {
  for (let i = 0; i < layerLinks.length; i++) {
    const row = kernel[i];
    if (!row) continue;
    for (let j = 0; j < layerLinks[i].length; j++) {
      const w = row[j];
      const path = /** @type {SVGPathElement & {_look?: string}} */ (layerLinks[i][j]);
      // Only touch the DOM when the drawn look changes: fewer style and paint invalidations.
      const stroke = divergingCss(w);
      const width = (Math.round(linkWidth(w) * 4) / 4).toFixed(2);
      const look = stroke + width;
      if (path._look === look) continue;
      path._look = look;
      path.setAttribute('stroke', stroke);
      path.setAttribute('stroke-width', width);
    }
  }
}

/**
 * Colour and size every link from the frame's weights.
 * @param {SVGPathElement[][][]} links links[layer][i][j]
 * @param {FrameLayer[]} layers the frame's Dense layers, as many as `links`
 */
export function paintLinks(links, layers) {
  layers.forEach((layer, l) => paintLayerLinks(links[l], layer.kernel));
}
