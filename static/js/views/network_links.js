/**
 * The network's links: an S curve per weight, its colour the weight's sign and size, its width the
 * weight's magnitude (TFP's encoding), and under each a wider transparent twin that takes the
 * pointer and the keyboard (hover shows the weight, click or Enter edits it).
 *
 * What a frame costs is what changes on screen, so a curve's look is quantized: weights that
 * round to the same 1/16 look the same (TFP quantizes its colours to ~30 shades), and a curve is
 * touched only when its weight crosses into another bucket. The visible curves sit in a
 * composited layer of their own, so a change elsewhere in the diagram (a bias, a neuron's map)
 * never re-rasters them: rasterizing up to 1,920 wide antialiased curves (8 hidden layers of 16)
 * costs tens of ms in software (docs/benchmarks.md, "Drawing the largest net"). Merging them into
 * one path per look was measured and rejected: a path spanning the diagram is re-rastered whole
 * in every tile it crosses.
 */
import { divergingCss } from '../colors.js';
import { svgEl } from '../dom.js';
import { linkPath } from './network_layout.js';

/** @typedef {import('./network.js').NetworkStructure} NetworkStructure */
/** @typedef {import('./network_layout.js').NetworkLayout} NetworkLayout */
/** @typedef {import('../types.js').FrameLayer} FrameLayer */

/** Buckets per unit of weight: 1/16 steps give ~33 shades over [-1, 1] (TFP quantizes to ~30). */
const STEPS = 16;
/** Weights beyond ±LIMIT share the widest, most saturated look. */
const LIMIT = 3;
/** Bucket b stands for the weight (b - ZERO) / STEPS. */
const ZERO = LIMIT * STEPS;

/**
 * Link width in px from |w|: 0.8 px at 0 up to 5 px at |w| ≥ 3 (TFP's 1–10 px over [0, 5]
 * turns a 6×8 net into a solid block).
 * @param {number} w
 */
export function linkWidth(w) {
  return Number.isFinite(w) ? 0.8 + (4.2 * Math.min(Math.abs(w), LIMIT)) / LIMIT : 0.8;
}

/**
 * The bucket of a weight (a non-finite one is drawn as a zero: thin and grey).
 * @param {number | undefined} w
 */
export function bucketOf(w) {
  if (w === undefined || !Number.isFinite(w)) return ZERO;
  const clamped = w < -LIMIT ? -LIMIT : w > LIMIT ? LIMIT : w;
  return Math.round(clamped * STEPS) + ZERO;
}

/**
 * The weight a bucket is drawn as.
 * @param {number} bucket
 */
export function bucketWeight(bucket) {
  return (bucket - ZERO) / STEPS;
}

export class LinkLayer {
  /**
   * Draw the links of an architecture into two new SVG layers of `container`: the visible
   * curves, then their hit twins above them (both under the nodes, which come later in the DOM).
   * @param {HTMLElement} container
   * @param {NetworkStructure} structure
   * @param {NetworkLayout} layout
   */
  constructor(container, structure, layout) {
    const size = { width: String(layout.width), height: String(layout.height) };
    const visible = svgEl('svg', { class: 'links', ...size, 'aria-hidden': 'true' });
    // Its own compositing layer: raster only when a curve changes (see the module comment).
    visible.style.willChange = 'transform';
    const hits = svgEl('svg', { class: 'links link-hits', ...size });
    container.append(visible, hits);
    /** @type {SVGPathElement[]} the visible curves, in kernel order (layer, input i, output j) */
    this.paths = [];
    /** @type {number[][]} shapes[l] = [inputs, outputs] of Dense layer l */
    this.shapes = [];
    const enabled = structure.features.filter((f) => f.enabled);
    const lastLayer = structure.layers.length;
    const curves = document.createDocumentFragment();
    const twins = document.createDocumentFragment();
    const zero = bucketWeight(ZERO);
    for (let l = 0; l < lastLayer + 1; l++) {
      const from = layout.positions[l];
      const to = layout.positions[l + 1];
      const rows = layout.inputRows[l];
      this.shapes.push([rows.length, to.length]);
      rows.forEach((row, i) => to.forEach((target, j) => {
        const d = linkPath(from[row], target);
        const path = svgEl('path', { class: 'link', d, stroke: divergingCss(zero), 'stroke-width': linkWidth(zero).toFixed(2) });
        this.paths.push(path);
        curves.append(path);
        const source = l === 0 ? (enabled[i]?.label ?? `input ${i + 1}`) : `layer ${l} neuron ${i + 1}`;
        const sink = l === lastLayer ? `output ${j + 1}` : `layer ${l + 1} neuron ${j + 1}`;
        twins.append(svgEl('path', {
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
      }));
    }
    visible.append(curves);
    hits.append(twins);
    /** The bucket each curve is drawn in. */
    this.drawn = new Int16Array(this.paths.length).fill(ZERO);
  }

  /** Dense layers drawn. */
  get layerCount() {
    return this.shapes.length;
  }

  /**
   * Give every curve its weight's look, touching only the curves whose bucket changed.
   * @param {FrameLayer[]} layers the frame's Dense layers, as many as the layer's
   * @returns {number} curves changed
   */
  paint(layers) {
    const { drawn, paths } = this;
    let changed = 0;
    let k = 0;
    for (let l = 0; l < this.shapes.length; l++) {
      const [inputs, outputs] = this.shapes[l];
      const kernel = layers[l]?.kernel ?? [];
      for (let i = 0; i < inputs; i++) {
        const row = kernel[i] ?? [];
        for (let j = 0; j < outputs; j++, k++) {
          const b = bucketOf(row[j]);
          if (b === drawn[k]) continue;
          drawn[k] = b;
          const w = bucketWeight(b);
          paths[k].setAttribute('stroke', divergingCss(w));
          paths[k].setAttribute('stroke-width', linkWidth(w).toFixed(2));
          changed++;
        }
      }
    }
    return changed;
  }
}
