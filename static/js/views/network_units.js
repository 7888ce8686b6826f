/**
 * The network's hidden and output units: a node with a live heatmap of the unit's output over the
 * plane, and a small square whose colour is the unit's bias.
 */
import { CLASS_COLORS, divergingCss } from '../colors.js';
import { el } from '../dom.js';
import { drawScalarField } from '../heatmap.js';

/** @typedef {import('./network.js').NetworkStructure} NetworkStructure */
/** @typedef {import('./network_layout.js').NetworkLayout} NetworkLayout */
/** @typedef {import('../types.js').Frame} Frame */
/** @typedef {import('../types.js').FrameLayer} FrameLayer */

/**
 * @typedef {object} UnitElements
 * @property {HTMLCanvasElement[][]} canvases canvases[layer][j] of hidden and output units
 * @property {HTMLElement[][]} biases         biases[layer][j]
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
  let neuronIndex = 0;
  /** @type {UnitElements} */
  const units = { canvases: [], biases: [] };
  for (let l = 0; l < hidden.length + 1; l++) {
    /** @type {HTMLCanvasElement[]} */
    const layerCanvases = [];
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
    units.canvases.push(layerCanvases);
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
 * Draw each hidden unit's map from the frame's `neurons` section (layer order, then unit order).
 * @param {HTMLCanvasElement[][]} canvases canvases[layer][j]; the last layer (output) is skipped
 * @param {Frame} frame
 * @returns {boolean} false when the section holds fewer maps than the diagram has hidden units
 */
export function paintNeuronMaps(canvases, frame) {
  if (!frame.neurons) return true;
  const g = frame.neuronResolution;
  const cells = g * g;
  let m = 0;
  for (let l = 0; l < canvases.length - 1; l++) {
    for (const canvas of canvases[l]) {
      if ((m + 1) * cells > frame.neurons.length) return false;
      const scale = neuronScale(frame, m);
      drawScalarField(canvas, frame.neurons.subarray(m * cells, (m + 1) * cells), g, (v) => v * scale, false);
      m++;
    }
  }
  return true;
}
