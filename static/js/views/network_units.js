/**
 * The network's hidden and output units: a node per unit with a live heatmap of its output over
 * the plane, and a small square whose colour is the unit's bias.
 *
 * The hidden units' maps are drawn into one canvas per layer (a column under its nodes), not one
 * canvas per unit: the browser composites every canvas as a layer of its own, and 128 of them (8
 * hidden layers of 16) cost more per frame to layerize and commit than drawing them all
 * (docs/benchmarks.md, "Drawing the largest net").
 */
import { CLASS_COLORS, divergingCss } from '../colors.js';
import { el } from '../dom.js';
import { HALF_SHADES, PALETTE } from '../heatmap.js';
import { NODE } from './features.js';
import { ROW } from './network_layout.js';

/** @typedef {import('./network.js').NetworkStructure} NetworkStructure */
/** @typedef {import('./network_layout.js').NetworkLayout} NetworkLayout */
/** @typedef {import('../types.js').Frame} Frame */
/** @typedef {import('../types.js').FrameLayer} FrameLayer */

/** A node's border (CSS px); its map fills the box inside it. */
const BORDER = 1;
/** A map's size in CSS px. */
const MAP = NODE - 2 * BORDER;

/**
 * @typedef {object} UnitElements
 * @property {NeuronMaps} maps                 the hidden units' maps
 * @property {HTMLCanvasElement[]} outputs     one per output unit
 * @property {HTMLElement[][]} biases          biases[layer][j]
 */

/**
 * Add a node per hidden and output unit to `container`; hidden ones are numbered in `data-neuron`
 * in the order of the frame's `neurons` section (layer order, then unit order).
 * @param {HTMLElement} container
 * @param {NetworkStructure} structure
 * @param {NetworkLayout} layout
 * @returns {UnitElements}
 */
export function renderUnits(container, structure, layout) {
  const hidden = structure.layers;
  // Under the nodes (earlier in the DOM), which are transparent over their map.
  const maps = new NeuronMaps(container, layout);
  let neuronIndex = 0;
  /** @type {UnitElements} */
  const units = { maps, outputs: [], biases: [] };
  for (let l = 0; l < hidden.length + 1; l++) {
    /** @type {HTMLElement[]} */
    const layerBiases = [];
    const isOutput = l === hidden.length;
    layout.positions[l + 1].forEach(({ x, y }, j) => {
      const node = el('div', {
        class: `node${isOutput ? ' output-node' : ''}`,
        'data-layer': String(l),
        'data-unit': String(j),
        'data-neuron': isOutput ? '' : String(neuronIndex++),
        title: isOutput ? `Output unit ${j + 1}` : `Layer ${l + 1}, neuron ${j + 1}`,
      });
      node.style.left = `${x}px`;
      node.style.top = `${y}px`;
      // Layout containment (no clipping: the bias square sits outside the box) lets the browser
      // paint and layerize each node on its own: measured ~1.5 ms less paint per frame at 8×16.
      node.style.contain = 'layout style';
      if (isOutput) {
        const canvas = el('canvas');
        if (structure.outputUnits > 1) node.style.background = CLASS_COLORS[j % CLASS_COLORS.length];
        node.append(canvas);
        units.outputs.push(canvas);
      } else {
        node.style.background = 'transparent';
      }
      const bias = el('div', {
        class: 'bias',
        'data-layer': String(l),
        'data-j': String(j),
        role: 'button',
        tabindex: '0',
        'aria-label': `Bias of ${isOutput ? `output ${j + 1}` : `layer ${l + 1} neuron ${j + 1}`}`,
      });
      node.append(bias);
      container.append(node);
      layerBiases.push(bias);
    });
    units.biases.push(layerBiases);
  }
  return units;
}

/**
 * Colour every bias square from the frame's biases.
 * @param {HTMLElement[][]} biases biases[layer][j]
 * @param {FrameLayer[]} layers the frame's Dense layers
 */
export function paintBiases(biases, layers) {
  layers.forEach((layer, l) => {
    biases[l]?.forEach((square, j) => {
      const colour = divergingCss(layer.bias[j]);
      // Only touch the DOM when the colour changes, as for the links.
      if (square.dataset.colour !== colour) {
        square.dataset.colour = colour;
        square.style.background = colour;
      }
    });
  });
}

/**
 * The factor that brings hidden neuron m's map into [-1, 1]. Bounded units (tanh, sigmoid) keep
 * their raw values; an unbounded one (ReLU, ELU) is scaled by its largest magnitude so its shape
 * stays visible instead of solid blue.
 * @param {Frame} frame
 * @param {number} m the neuron's index in the `neurons` section
 */
export function neuronScale(frame, m) {
  const [lo, hi] = frame.header.sections.neurons?.ranges?.[m] ?? [-1, 1];
  return 1 / Math.max(1, Math.abs(lo), Math.abs(hi));
}

/**
 * Bilinear resampling of a g×g grid onto an n×n one (pixel centres aligned), as tables: output
 * pixel p reads source cells lo[p] and hi[p] with weight t[p] on hi, along each axis.
 * @param {number} g
 * @param {number} n
 */
function resampling(g, n) {
  const lo = new Int32Array(n);
  const hi = new Int32Array(n);
  const t = new Float32Array(n);
  for (let p = 0; p < n; p++) {
    const s = Math.min(Math.max(((p + 0.5) * g) / n - 0.5, 0), g - 1);
    lo[p] = Math.floor(s);
    hi[p] = Math.min(lo[p] + 1, g - 1);
    t[p] = s - lo[p];
  }
  return { lo, hi, t };
}

/**
 * One map's values, from `base` on in `neurons`, times `scale` and clamped to [-1, 1] (NaN: 0),
 * into `unit`.
 * @param {Float32Array} neurons
 * @param {number} base
 * @param {number} scale
 * @param {Float32Array} unit
 */
function scaleMap(neurons, base, scale, unit) {
  for (let c = 0; c < unit.length; c++) {
    const v = neurons[base + c] * scale;
    unit[c] = v < -1 ? -1 : v > 1 ? 1 : v === v ? v : 0;
  }
}

/**
 * Resample one map (g×g values in [-1, 1]) bilinearly onto n×n pixels of `words`, each one palette
 * word, from `pixel` on in rows of `width`. Functions of their own, called once per unit: V8
 * optimizes small functions that run 128 times a frame during the page's first frame, where
 * the same loop inside paint() ran unoptimized (10-28 ms a frame) for the first second of play.
 * @param {Float32Array} unit
 * @param {number} g
 * @param {Uint32Array} words
 * @param {number} pixel
 * @param {number} width
 * @param {number} n
 * @param {ReturnType<typeof resampling>} table
 */
function resampleMap(unit, g, words, pixel, width, n, table) {
  const { lo, hi, t } = table;
  for (let py = 0; py < n; py++, pixel += width - n) {
    const r0 = lo[py] * g;
    const r1 = hi[py] * g;
    const ty = t[py];
    for (let px = 0; px < n; px++, pixel++) {
      const c0 = lo[px];
      const c1 = hi[px];
      const tx = t[px];
      const upper = unit[r0 + c0] + (unit[r0 + c1] - unit[r0 + c0]) * tx;
      const lower = unit[r1 + c0] + (unit[r1 + c1] - unit[r1 + c0]) * tx;
      words[pixel] = PALETTE[((upper + (lower - upper) * ty + 1) * HALF_SHADES + 0.5) | 0];
    }
  }
}

/** The hidden units' maps: one canvas per hidden layer, each map drawn where its node sits. */
export class NeuronMaps {
  /**
   * @param {HTMLElement} container
   * @param {NetworkLayout} layout
   */
  constructor(container, layout) {
    /** @type {{canvas: HTMLCanvasElement, units: number, image: ImageData | null, words: Uint32Array}[]} */
    this.columns = [];
    /** Backing pixels per map side, for the current grid size (0: not sized yet). */
    this.size = 0;
    this.grid = 0;
    this.ratio = 1;
    /** @type {ReturnType<typeof resampling> | null} */
    this.table = null;
    /** Scratch: one map's values, scaled and clamped to [-1, 1]. */
    this.unit = new Float32Array(0);
    // Hidden layers are columns 1 .. n of the layout (0 holds the features, the last the output).
    for (let c = 1; c < layout.positions.length - 1; c++) {
      const nodes = layout.positions[c];
      const { x, y } = nodes[0];
      const canvas = el('canvas', { class: 'neuron-maps', 'aria-hidden': 'true' });
      canvas.style.position = 'absolute';
      canvas.style.left = `${x + BORDER}px`;
      canvas.style.top = `${y + BORDER}px`;
      canvas.style.width = `${MAP}px`;
      canvas.style.height = `${nodes[nodes.length - 1].y - y + MAP}px`;
      container.append(canvas);
      this.columns.push({ canvas, units: nodes.length, image: null, words: new Uint32Array(0) });
    }
  }

  /**
   * Size the canvases for a grid of g×g: a map gets 2 CSS px per backing pixel (18 pixels for
   * the default 16×16 grid; CSS smooths the rest), or 1 when the grid is finer than that.
   * @param {number} g
   */
  fit(g) {
    if (g === this.grid) return;
    this.grid = g;
    this.ratio = g <= MAP / 2 ? 2 : 1;
    this.size = MAP / this.ratio;
    this.table = resampling(g, this.size);
    for (const column of this.columns) {
      const { canvas, units } = column;
      canvas.width = this.size;
      canvas.height = Math.round(((units - 1) * ROW + MAP) / this.ratio);
      const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
      // Transparent between the maps; each map is overwritten whole every frame.
      column.image = ctx.createImageData(canvas.width, canvas.height);
      column.words = new Uint32Array(column.image.data.buffer);
    }
  }

  /**
   * Draw each hidden unit's map from the frame's `neurons` section (layer order, then unit order).
   *
   * A map's values are scaled and clamped to [-1, 1] once per cell, then resampled bilinearly
   * onto its pixels, each one palette word: this runs for every unit on every frame (~41,000
   * pixels at 8×16), so it stays a tight loop over typed arrays.
   * @param {Frame} frame
   * @returns {boolean} false when the section holds fewer maps than the diagram has hidden units
   */
  paint(frame) {
    const neurons = frame.neurons;
    if (!neurons) return true;
    const g = frame.neuronResolution;
    const cells = g * g;
    const needed = this.columns.reduce((sum, c) => sum + c.units, 0);
    if (needed * cells > neurons.length) return false;
    this.fit(g);
    const n = this.size;
    const stride = ROW / this.ratio;
    if (this.unit.length !== cells) this.unit = new Float32Array(cells);
    const unit = this.unit;
    const table = /** @type {ReturnType<typeof resampling>} */ (this.table);
    let m = 0;
    for (const { canvas, units, image, words } of this.columns) {
      if (!image) continue;
      for (let j = 0; j < units; j++, m++) {
        scaleMap(neurons, m * cells, neuronScale(frame, m), unit);
        resampleMap(unit, g, words, Math.round(j * stride) * image.width, image.width, n, table);
      }
      /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d')).putImageData(image, 0, 0);
    }
    return true;
  }
}
