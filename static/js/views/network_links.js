/**
 * The network's links: an S curve per weight, its colour the weight's sign and size, its width the
 * weight's magnitude (TFP's encoding), and under each a wider transparent twin that takes the
 * pointer and the keyboard (hover shows the weight, click or Enter edits it).
 *
 * What a frame costs is what changes on screen, so a curve's look is quantized: weights that
 * round to the same 1/16 look the same (TFP quantizes its colours to ~30 shades), and a curve is
 * touched only when its weight crosses into another bucket. The visible curves sit in composited
 * layers of their own, one per band between two columns, so a change elsewhere in the diagram (a
 * bias, a neuron's map) never re-rasters them: rasterizing up to 1,920 wide antialiased curves
 * (8 hidden layers of 16) costs tens of ms in software (docs/benchmarks.md, "Drawing the largest
 * net"). Merging them into one path per look was measured and rejected: a path spanning the
 * diagram is re-rastered whole in every tile it crosses.
 */
import { divergingCss } from '../colors.js';
import { svgEl } from '../dom.js';
import { NODE } from './features.js';
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
 * Width levels per unit of weight: coarser than the colours (a quarter of a weight is 0.35 px),
 * because a new stroke width makes the browser lay out the curve again (its stroked bounds) and
 * a new colour only repaints it. Most bucket changes of a training run then cost no layout.
 */
const WIDTH_STEPS = 4;
/** Half the widest stroke, and a pixel: a band's room beyond its columns. */
const LINK_MARGIN = 4;

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

/**
 * The visible curves between two columns, x1 to x2: an SVG layer of their own, sized to their
 * band, with the diagram's coordinates (viewBox). Its own compositing layer, so a bias or a map
 * that changes never re-rasters it; one per Dense layer, so restyling some curves repaints and
 * re-rasters only their band (up to 256 curves at 8×16) rather than all of them.
 * @param {number} x1
 * @param {number} x2
 * @param {number} height
 */
function band(x1, x2, height) {
  // Room for the widest stroke where a curve leaves and enters a node.
  const left = Math.floor(x1 - LINK_MARGIN);
  const width = Math.ceil(x2 + LINK_MARGIN) - left;
  const svg = svgEl('svg', {
    class: 'links', width: String(width), height: String(height), viewBox: `${left} 0 ${width} ${height}`, 'aria-hidden': 'true',
  });
  svg.style.left = `${left}px`;
  svg.style.willChange = 'transform';
  return svg;
}

/** Hit twins made per task: a small net's all at once, the largest net's over a few tasks. */
const TWINS_PER_TASK = 480;

/**
 * Make the hit twins into elements of `hits`, TWINS_PER_TASK now and the rest in later tasks:
 * building the 3,840 paths of an 8×16 net's diagram in one task took longer than a frame should
 * (a rebuild is a click away: + neuron). Stops when the diagram was replaced meanwhile.
 * @param {SVGSVGElement} hits
 * @param {Record<string, string>[]} twins
 * @param {number} [from]
 */
function addTwins(hits, twins, from = 0) {
  const fragment = document.createDocumentFragment();
  const end = Math.min(from + TWINS_PER_TASK, twins.length);
  for (let k = from; k < end; k++) fragment.append(svgEl('path', twins[k]));
  hits.append(fragment);
  if (end < twins.length) setTimeout(() => hits.isConnected && addTwins(hits, twins, end), 0);
}

/** Each bucket's stroke colour, and each width level's width, as the attribute strings they are set as. */
const STROKES = Array.from({ length: 2 * ZERO + 1 }, (_, b) => divergingCss(bucketWeight(b)));
const WIDTHS = Array.from({ length: LIMIT * WIDTH_STEPS + 1 }, (_, level) => linkWidth(level / WIDTH_STEPS).toFixed(2));

/**
 * The width level of a bucket.
 * @param {number} bucket
 */
function widthLevel(bucket) {
  return Math.round((Math.abs(bucket - ZERO) * WIDTH_STEPS) / STEPS);
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
    /** @type {SVGPathElement[]} the visible curves, in kernel order (layer, input i, output j) */
    this.paths = [];
    /** @type {number[][]} shapes[l] = [inputs, outputs] of Dense layer l */
    this.shapes = [];
    const enabled = structure.features.filter((f) => f.enabled);
    const lastLayer = structure.layers.length;
    /** @type {SVGSVGElement[]} one layer of visible curves per Dense layer (see band()) */
    const bands = [];
    /** @type {Record<string, string>[]} each hit twin's attributes, made into elements by addTwins */
    const twins = [];
    for (let l = 0; l < lastLayer + 1; l++) {
      const from = layout.positions[l];
      const to = layout.positions[l + 1];
      const rows = layout.inputRows[l];
      const visible = band(from[0].x + NODE, to[0].x, layout.height);
      bands.push(visible);
      this.shapes.push([rows.length, to.length]);
      rows.forEach((row, i) => to.forEach((target, j) => {
        const d = linkPath(from[row], target);
        const path = svgEl('path', { class: 'link', d, stroke: STROKES[ZERO], 'stroke-width': WIDTHS[0] });
        this.paths.push(path);
        visible.append(path);
        const source = l === 0 ? (enabled[i]?.label ?? `input ${i + 1}`) : `layer ${l} neuron ${i + 1}`;
        const sink = l === lastLayer ? `output ${j + 1}` : `layer ${l + 1} neuron ${j + 1}`;
        twins.push({
          class: 'link-hit',
          d,
          'data-layer': String(l),
          'data-i': String(i),
          'data-j': String(j),
          // Focusable, so a weight can be edited from the keyboard (Enter opens the editor).
          tabindex: '0',
          role: 'button',
          'aria-label': `Weight from ${source} to ${sink}`,
        });
      }));
    }
    const hits = svgEl('svg', { class: 'links link-hits', width: String(layout.width), height: String(layout.height) });
    container.append(...bands, hits);
    addTwins(hits, twins);
    /** The bucket each curve is drawn in, and the one its weight asks for. */
    this.drawn = new Int16Array(this.paths.length).fill(ZERO);
    /** The width level each curve is drawn with. */
    this.drawnWidth = new Int8Array(this.paths.length);
    this.wanted = new Int16Array(this.paths.length);
    /** Where the next budgeted paint starts. */
    this.next = 0;
  }

  /** Dense layers drawn. */
  get layerCount() {
    return this.shapes.length;
  }

  /**
   * Give the curves their weights' looks, touching only the curves whose bucket changed, and at
   * most `budget` of them: the first frames of a run (or learning rate 10) move nearly every
   * weight across a bucket, and restyling all 1,920 curves of an 8×16 net in one frame took ~19 ms
   * of script before its style, layout and paint. The next call goes on where this one stopped.
   * @param {FrameLayer[]} layers the frame's Dense layers, as many as the layer's
   * @param {number} [budget] most curves restyled
   * @returns {boolean} whether every curve now shows its weight (false: call again)
   */
  paint(layers, budget = Infinity) {
    const { drawn, drawnWidth, paths, wanted } = this;
    let k = 0;
    for (let l = 0; l < this.shapes.length; l++) {
      const [inputs, outputs] = this.shapes[l];
      const kernel = layers[l]?.kernel ?? [];
      for (let i = 0; i < inputs; i++) {
        const row = kernel[i] ?? [];
        for (let j = 0; j < outputs; j++) wanted[k++] = bucketOf(row[j]);
      }
    }
    const count = paths.length;
    let left = budget;
    // Round-robin from where the last call stopped, so no part of the diagram waits behind another.
    for (let n = 0; n < count; n++) {
      const m = (this.next + n) % count;
      const b = wanted[m];
      if (b === drawn[m]) continue;
      if (left === 0) {
        this.next = m;
        return false;
      }
      drawn[m] = b;
      paths[m].setAttribute('stroke', STROKES[b]);
      const level = widthLevel(b);
      if (level !== drawnWidth[m]) {
        drawnWidth[m] = level;
        paths[m].setAttribute('stroke-width', WIDTHS[level]);
      }
      left--;
    }
    return true;
  }
}
