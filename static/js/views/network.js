/**
 * Network view: feature nodes, hidden layers with their controls, the output units, weights as
 * curves (width = magnitude, colour = sign), biases as small squares, a live heatmap per neuron.
 *
 * `render(structure)` rebuilds the DOM when the architecture changes; `update(frame)` only sets
 * colours, widths and pixels, so a frame costs no layout.
 */
import { divergingCss, CLASS_COLORS } from '../colors.js';
import { drawScalarField } from '../heatmap.js';
import { NODE } from './features.js';

/** @typedef {import('../types.js').LayerSpec} LayerSpec */
/** @typedef {import('../types.js').Frame} Frame */

/** @typedef {import('./features.js').FeatureNode} FeatureNode */

/**
 * @typedef {object} NetworkStructure
 * @property {FeatureNode[]} features   every feature the registry offers, in menu order
 * @property {LayerSpec[]} layers        hidden layers
 * @property {number} outputUnits        1, or k for multi-class
 * @property {string[]} activations      hidden-layer activations the server accepts
 * @property {number} maxLayers
 * @property {number} maxUnits
 */

/**
 * @typedef {object} WeightEdit
 * @property {number} layer   index among Dense layers (0 = first hidden, last = output)
 * @property {'kernel' | 'bias'} param
 * @property {number[]} index [i, j] for a kernel entry, [j] for a bias
 * @property {number} value
 */

const SVG_NS = 'http://www.w3.org/2000/svg';
const HEAD = 118;
const ROW = 50;
const LEFT = 64;
/**
 * Link width in px from |w|: 0.8 px at 0 up to 5 px at |w| ≥ 3 (TFP's 1–10 px over [0, 5]
 * turns a 6×8 net into a solid block).
 * @param {number} w
 */
function linkWidth(w) {
  return Number.isFinite(w) ? 0.8 + (4.2 * Math.min(Math.abs(w), 3)) / 3 : 0.8;
}

/**
 * An element with attributes.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, string>} [attributes]
 * @param {string} [text]
 * @returns {HTMLElementTagNameMap[K]}
 */
function el(tag, attributes = {}, text = '') {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

export class NetworkView {
  /**
   * @param {HTMLElement} container  the #network element
   * @param {HTMLElement} tooltip
   * @param {HTMLFormElement} editor
   * @param {import('./features.js').FeaturesView} features draws the first column
   */
  constructor(container, tooltip, editor, features) {
    this.container = container;
    this.features = features;
    this.tooltip = tooltip;
    this.editor = editor;
    /** @type {(index: number, patch: Partial<LayerSpec>) => void} */
    this.onLayer = () => {};
    /** @type {(edit: WeightEdit) => void} */
    this.onEdit = () => {};
    /** @type {(neuron: number | null) => void} */
    this.onHoverNeuron = () => {};
    /** @type {NetworkStructure | null} */
    this.structure = null;
    /** @type {SVGPathElement[][][]} links[layer][i][j], i over the layer's inputs */
    this.links = [];
    /** @type {HTMLElement[][]} biases[layer][j] */
    this.biases = [];
    /** @type {HTMLCanvasElement[][]} canvases[layer][j] of hidden and output units */
    this.canvases = [];
    /** @type {Frame | null} */
    this.frame = null;
    /** @type {WeightEdit | null} the weight under the editor */
    this.editing = null;
    this.bindPointer();
    this.editor.addEventListener('submit', (event) => {
      event.preventDefault();
      const input = /** @type {HTMLInputElement} */ (this.editor.querySelector('input'));
      const value = Number(input.value);
      if (this.editing && input.value !== '' && Number.isFinite(value)) {
        this.onEdit({ ...this.editing, value });
      }
      this.closeEditor();
    });
    this.editor.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') this.closeEditor();
    });
  }

  /** @param {(index: number, patch: Partial<LayerSpec>) => void} handler a hidden layer's change */
  bindLayer(handler) {
    this.onLayer = handler;
  }

  /**
   * @param {(neuron: number | null) => void} handler called with the hovered hidden neuron's
   *   index in the frame's `neurons` section, or null when the pointer leaves it
   */
  bindHoverNeuron(handler) {
    this.onHoverNeuron = handler;
  }

  /** @param {(edit: WeightEdit) => void} handler called when the user sets a weight or bias */
  bindEdit(handler) {
    this.onEdit = handler;
  }

  /**
   * Column x (left edge of its nodes) for column c of `count` columns.
   * @param {number} c
   * @param {number} count
   */
  columnX(c, count) {
    const width = Math.max(this.container.clientWidth, 360);
    return LEFT + (c * (width - LEFT - NODE - 8)) / Math.max(count - 1, 1);
  }

  /**
   * Rebuild the diagram for an architecture.
   * @param {NetworkStructure} structure
   */
  render(structure) {
    this.structure = structure;
    this.closeEditor();
    const container = this.container;
    container.replaceChildren();
    const hidden = structure.layers;
    const columns = hidden.length + 2;
    const enabled = structure.features.filter((f) => f.enabled);
    const rows = Math.max(structure.features.length, structure.outputUnits, ...hidden.map((l) => l.units));
    const height = HEAD + rows * ROW;
    container.style.height = `${height}px`;
    const width = Math.max(container.clientWidth, 360);
    const headWidth = Math.min(96, (width - LEFT - NODE) / Math.max(columns - 1, 1) - 4);

    /** @type {{x: number, y: number}[][]} positions[column][row] */
    const positions = [];
    positions.push(structure.features.map((_, r) => ({ x: this.columnX(0, columns), y: HEAD + r * ROW })));
    hidden.forEach((layer, c) => {
      positions.push(Array.from({ length: layer.units }, (_, r) => ({ x: this.columnX(c + 1, columns), y: HEAD + r * ROW })));
    });
    positions.push(Array.from({ length: structure.outputUnits }, (_, r) => ({ x: this.columnX(columns - 1, columns), y: HEAD + r * ROW })));

    const svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('class', 'links');
    svg.setAttribute('width', String(width));
    svg.setAttribute('height', String(height));
    container.append(svg);

    // Inputs of each Dense layer, as column positions of the previous column's nodes.
    const featureRow = new Map(structure.features.map((f, r) => [f.name, r]));
    const inputRows = [enabled.map((f) => /** @type {number} */ (featureRow.get(f.name)))];
    hidden.forEach((layer) => inputRows.push(Array.from({ length: layer.units }, (_, r) => r)));

    this.links = [];
    const hits = document.createDocumentFragment();
    const visible = document.createDocumentFragment();
    for (let l = 0; l < hidden.length + 1; l++) {
      const from = positions[l];
      const to = positions[l + 1];
      /** @type {SVGPathElement[][]} */
      const layerLinks = [];
      inputRows[l].forEach((row, i) => {
        /** @type {SVGPathElement[]} */
        const rowLinks = [];
        to.forEach((target, j) => {
          const x1 = from[row].x + NODE;
          const y1 = from[row].y + NODE / 2;
          const x2 = target.x;
          const y2 = target.y + NODE / 2;
          const mid = (x1 + x2) / 2;
          const d = `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`;
          const path = document.createElementNS(SVG_NS, 'path');
          path.setAttribute('class', 'link');
          path.setAttribute('d', d);
          path.setAttribute('stroke', '#ccc');
          path.setAttribute('stroke-width', '1');
          visible.append(path);
          const hit = document.createElementNS(SVG_NS, 'path');
          hit.setAttribute('class', 'link-hit');
          hit.setAttribute('d', d);
          hit.dataset.layer = String(l);
          hit.dataset.i = String(i);
          hit.dataset.j = String(j);
          // Focusable, so a weight can be edited from the keyboard (Enter opens the editor).
          hit.setAttribute('tabindex', '0');
          hit.setAttribute('role', 'button');
          const source = l === 0 ? (enabled[i]?.label ?? `input ${i + 1}`) : `layer ${l} neuron ${i + 1}`;
          const sink = l === hidden.length ? `output ${j + 1}` : `layer ${l + 1} neuron ${j + 1}`;
          hit.setAttribute('aria-label', `Weight from ${source} to ${sink}`);
          hits.append(hit);
          rowLinks.push(path);
        });
        layerLinks.push(rowLinks);
      });
      this.links.push(layerLinks);
    }
    svg.append(visible, hits);

    // Feature nodes: their own view, placed in the first column.
    this.features.render(container, structure.features, positions[0]);

    // Hidden and output units: heatmap canvas plus a bias square.
    let neuronIndex = 0;
    this.canvases = [];
    this.biases = [];
    for (let l = 0; l < hidden.length + 1; l++) {
      /** @type {HTMLCanvasElement[]} */
      const layerCanvases = [];
      /** @type {HTMLElement[]} */
      const layerBiases = [];
      const isOutput = l === hidden.length;
      positions[l + 1].forEach(({ x, y }, j) => {
        const node = el('div', {
          class: `node${isOutput ? ' output-node' : ''}`,
          'data-layer': String(l),
          'data-unit': String(j),
          'data-neuron': isOutput ? '' : String(neuronIndex++),
          title: isOutput ? `Output unit ${j + 1}` : `Layer ${l + 1}, neuron ${j + 1}`,
        });
        node.style.left = `${x}px`;
        node.style.top = `${y}px`;
        const canvas = el('canvas');
        if (isOutput && structure.outputUnits > 1) {
          node.style.background = CLASS_COLORS[j % CLASS_COLORS.length];
        }
        node.append(canvas);
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
        layerCanvases.push(canvas);
        layerBiases.push(bias);
      });
      this.canvases.push(layerCanvases);
      this.biases.push(layerBiases);
    }

    // Column heads: per-layer controls for hidden layers, titles for the others.
    const title = (/** @type {number} */ c, /** @type {string} */ text) => {
      const head = el('div', { class: 'layer-head' });
      head.style.left = `${this.columnX(c, columns) + NODE / 2 - headWidth / 2}px`;
      head.style.width = `${headWidth}px`;
      head.append(el('span', {}, text));
      container.append(head);
    };
    title(0, 'Features');
    title(columns - 1, structure.outputUnits > 1 ? `Output (${structure.outputUnits})` : 'Output');
    hidden.forEach((layer, index) => this.renderLayerHead(layer, index, columns, headWidth));
  }

  /**
   * The controls above hidden layer `index`: neurons ±, activation, dropout, batch norm.
   * @param {LayerSpec} layer
   * @param {number} index
   * @param {number} columns
   * @param {number} headWidth
   */
  renderLayerHead(layer, index, columns, headWidth) {
    const structure = /** @type {NetworkStructure} */ (this.structure);
    const n = index + 1;
    const head = el('div', { class: 'layer-head', 'data-layer': String(index) });
    head.style.left = `${this.columnX(index + 1, columns) + NODE / 2 - headWidth / 2}px`;
    head.style.width = `${headWidth}px`;
    const change = (/** @type {Partial<LayerSpec>} */ patch) => this.onLayer(index, patch);

    const units = el('div', { class: 'units' });
    const plus = el('button', { type: 'button', 'aria-label': `Add a neuron to layer ${n}` }, '+');
    const minus = el('button', { type: 'button', 'aria-label': `Remove a neuron from layer ${n}` }, '−');
    plus.disabled = layer.units >= structure.maxUnits;
    minus.disabled = layer.units <= 1;
    plus.addEventListener('click', () => change({ units: layer.units + 1 }));
    minus.addEventListener('click', () => change({ units: layer.units - 1 }));
    units.append(plus, minus);
    head.append(units, el('span', { class: 'neuron-count' }, `${layer.units} neuron${layer.units === 1 ? '' : 's'}`));

    const activation = el('select', { 'aria-label': `Layer ${n} activation`, 'data-role': 'activation' });
    for (const name of structure.activations) {
      const option = el('option', { value: name }, name);
      option.selected = name === layer.activation;
      activation.append(option);
    }
    activation.addEventListener('change', () => change({ activation: activation.value }));

    const dropoutRow = el('div', { class: 'row' });
    const dropoutId = `dropout-${index}`;
    const dropout = el('input', {
      id: dropoutId, type: 'number', min: '0', max: '0.9', step: '0.1', value: String(layer.dropout),
    });
    dropout.addEventListener('change', () => {
      const rate = Number(dropout.value);
      if (Number.isFinite(rate) && rate >= 0 && rate < 1) change({ dropout: rate });
      else dropout.value = String(layer.dropout);
    });
    dropout.setAttribute('aria-label', `Layer ${n} dropout rate`);
    dropoutRow.append(el('label', { for: dropoutId, title: 'Dropout rate' }, 'Drop'), dropout);

    const bnRow = el('div', { class: 'row' });
    const bnId = `batch-norm-${index}`;
    const bn = el('input', { id: bnId, type: 'checkbox' });
    bn.checked = layer.batch_norm;
    bn.addEventListener('change', () => change({ batch_norm: bn.checked }));
    bn.setAttribute('aria-label', `Layer ${n} batch normalization`);
    bnRow.append(bn, el('label', { for: bnId, title: 'Batch normalization' }, headWidth < 90 ? 'BN' : 'Batch norm'));

    head.append(activation, dropoutRow, bnRow);
    this.container.append(head);
  }

  /**
   * Colour the links, biases and neuron maps from a frame.
   * @param {Frame} frame
   * @param {Float32Array | null} outputMap the output over the grid, for a single output unit
   * @param {(v: number) => number} outputToUnit maps the output into [-1, 1]
   */
  update(frame, outputMap, outputToUnit) {
    this.frame = frame;
    const layers = frame.header.layers ?? [];
    if (layers.length !== this.links.length) return; // a frame of the previous architecture
    layers.forEach((layer, l) => {
      const layerLinks = this.links[l];
      const kernel = layer.kernel;
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
      this.biases[l]?.forEach((square, j) => {
        const colour = divergingCss(layer.bias[j]);
        if (square.dataset.colour !== colour) {
          square.dataset.colour = colour;
          square.style.background = colour;
        }
      });
    });

    // Hidden neurons: the `neurons` section, in layer order then unit order.
    if (frame.neurons) {
      const g = frame.neuronResolution;
      const cells = g * g;
      const ranges = frame.header.sections.neurons?.ranges ?? [];
      let m = 0;
      for (let l = 0; l < this.canvases.length - 1; l++) {
        for (const canvas of this.canvases[l]) {
          if ((m + 1) * cells > frame.neurons.length) return;
          // Bounded units (tanh, sigmoid) show raw values; an unbounded one (ReLU, ELU) is
          // scaled by its largest magnitude so its shape stays visible instead of solid blue.
          const [lo, hi] = ranges[m] ?? [-1, 1];
          const scale = 1 / Math.max(1, Math.abs(lo), Math.abs(hi));
          drawScalarField(canvas, frame.neurons.subarray(m * cells, (m + 1) * cells), g, (v) => v * scale, false);
          m++;
        }
      }
    }
    const outputs = this.canvases[this.canvases.length - 1];
    if (outputMap && outputs?.length === 1) {
      drawScalarField(outputs[0], outputMap, frame.header.grid.resolution, outputToUnit, false);
    }
  }

  /** Hover shows a weight's or bias's value; click opens the editor on it. */
  bindPointer() {
    const describe = (/** @type {HTMLElement} */ target) => {
      const layers = this.frame?.header.layers;
      if (!layers) return null;
      const l = Number(target.dataset.layer);
      if (target.classList.contains('link-hit')) {
        const i = Number(target.dataset.i);
        const j = Number(target.dataset.j);
        const value = layers[l]?.kernel[i]?.[j];
        if (value === undefined) return null;
        const source = l === 0 ? (this.frame?.header.inputs[i] ?? `x${i}`) : `L${l} n${i + 1}`;
        const label = `Weight ${source} → ${l === layers.length - 1 ? 'output' : `L${l + 1}`} n${j + 1}`;
        return { edit: { layer: l, param: /** @type {const} */ ('kernel'), index: [i, j] }, value, label };
      }
      if (target.classList.contains('bias')) {
        const j = Number(target.dataset.j);
        const value = layers[l]?.bias[j];
        if (value === undefined) return null;
        const where = l === layers.length - 1 ? 'output' : `L${l + 1}`;
        return { edit: { layer: l, param: /** @type {const} */ ('bias'), index: [j] }, value, label: `Bias ${where} n${j + 1}` };
      }
      return null;
    };
    const place = (/** @type {HTMLElement} */ box, /** @type {MouseEvent} */ event) => {
      const parent = /** @type {HTMLElement} */ (box.offsetParent ?? this.container);
      const rect = parent.getBoundingClientRect();
      box.style.left = `${event.clientX - rect.left + 12}px`;
      box.style.top = `${event.clientY - rect.top + 12}px`;
    };
    this.container.addEventListener('mousemove', (event) => {
      const info = describe(/** @type {HTMLElement} */ (event.target));
      if (!info) {
        this.tooltip.hidden = true;
        return;
      }
      this.tooltip.textContent = `${info.label} = ${info.value.toFixed(3)} (click to edit)`;
      this.tooltip.hidden = false;
      place(this.tooltip, event);
    });
    this.container.addEventListener('mouseleave', () => {
      this.tooltip.hidden = true;
    });
    // Hovering a hidden neuron shows its map in the big output view (as TFP does).
    this.container.addEventListener('mouseover', (event) => {
      const node = /** @type {HTMLElement} */ (event.target).closest?.('[data-neuron]');
      const index = node instanceof HTMLElement && node.dataset.neuron ? Number(node.dataset.neuron) : null;
      this.onHoverNeuron(index);
    });
    const open = (/** @type {HTMLElement} */ target, /** @type {{clientX: number, clientY: number}} */ at) => {
      const info = describe(target);
      if (!info) return;
      this.editing = { ...info.edit, value: info.value };
      const label = /** @type {HTMLElement} */ (this.editor.querySelector('label'));
      const input = /** @type {HTMLInputElement} */ (this.editor.querySelector('input'));
      label.textContent = info.label;
      input.value = info.value.toPrecision(4);
      this.editor.hidden = false;
      this.tooltip.hidden = true;
      place(this.editor, /** @type {MouseEvent} */ (at));
      input.focus();
      input.select();
    };
    this.container.addEventListener('click', (event) => open(/** @type {HTMLElement} */ (event.target), event));
    this.container.addEventListener('keydown', (event) => {
      const target = /** @type {HTMLElement} */ (event.target);
      if (event.key !== 'Enter' && event.key !== ' ') return;
      if (!target.classList?.contains('link-hit') && !target.classList?.contains('bias')) return;
      event.preventDefault();
      const rect = target.getBoundingClientRect();
      open(target, { clientX: rect.left + rect.width / 2, clientY: rect.top + rect.height / 2 });
    });
  }

  /** Hide the weight editor. */
  closeEditor() {
    this.editor.hidden = true;
    this.editing = null;
  }
}
