/**
 * Network view: feature nodes, hidden layers with their controls, the output units, weights as
 * curves (width = magnitude, colour = sign), biases as small squares, a live heatmap per neuron.
 *
 * `render(structure)` rebuilds the DOM when the architecture changes; `update(frame)` only sets
 * colours, widths and pixels, so a frame costs no layout. The parts live in their own modules:
 * layout maths (network_layout.js), links (network_links.js), units and biases
 * (network_units.js), column heads (layer_heads.js), weight reading and editing (weight_editor.js).
 */
import { drawScalarField } from '../heatmap.js';
import { renderColumnTitle, renderLayerHead } from './layer_heads.js';
import { diagramHeight, diagramWidth, headHeight, layoutNetwork } from './network_layout.js';
import { LinkLayer } from './network_links.js';
import { paintBiases, renderUnits } from './network_units.js';
import { WeightEditor } from './weight_editor.js';

/**
 * Most links restyled in one frame: one band of the largest net (16×16), a few ms of style,
 * layout and paint; a weight change bigger than that (a new run, learning rate 10) is shown over
 * a few frames (network_links.js).
 */
const LINKS_PER_FRAME = 256;

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
    /** @type {(index: number, patch: Partial<LayerSpec>) => void} */
    this.onLayer = () => {};
    /** @type {(edit: WeightEdit) => void} */
    this.onEdit = () => {};
    /** @type {(neuron: number | null) => void} */
    this.onHoverNeuron = () => {};
    /** @type {NetworkStructure | null} */
    this.structure = null;
    /** @type {LinkLayer | null} the weights' curves */
    this.linkLayer = null;
    /** @type {HTMLElement[][]} biases[layer][j] */
    this.biases = [];
    /** @type {import('./network_units.js').NeuronMaps | null} the hidden units' maps */
    this.maps = null;
    /** @type {HTMLCanvasElement[]} one per output unit */
    this.outputs = [];
    /** @type {Frame | null} */
    this.frame = null;
    /** Some links still show older weights (their restyling is spread over frames). */
    this.weightsPending = false;
    this.weightEditor = new WeightEditor(container, tooltip, editor, () => this.frame, (edit) => this.onEdit(edit));
    // Hovering a hidden neuron shows its map in the big output view (as TFP does).
    container.addEventListener('mouseover', (event) => {
      const node = /** @type {HTMLElement} */ (event.target).closest?.('[data-neuron]');
      const index = node instanceof HTMLElement && node.dataset.neuron ? Number(node.dataset.neuron) : null;
      this.onHoverNeuron(index);
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

  /** @returns {WeightEdit | null} the weight or bias the editor is open on */
  get editing() {
    return this.weightEditor.editing;
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
    // The height first: it can bring the page's scrollbar, which changes the width to lay out in.
    const head = headHeight(container);
    container.style.height = `${diagramHeight(structure, head)}px`;
    const layout = layoutNetwork(structure, diagramWidth(container), head);
    this.linkLayer = new LinkLayer(container, structure, layout);
    this.weightsPending = false; // the next frame (redraw) starts on the new links
    // Feature nodes: their own view, placed in the first column.
    this.features.render(container, structure.features, layout.positions[0]);
    const units = renderUnits(container, structure, layout);
    this.maps = units.maps;
    this.outputs = units.outputs;
    this.biases = units.biases;
    renderColumnTitle(container, layout, 0, 'Features');
    renderColumnTitle(container, layout, layout.columns - 1, structure.outputUnits > 1 ? `Output (${structure.outputUnits})` : 'Output');
    structure.layers.forEach((_, index) => {
      renderLayerHead(container, structure, layout, index, (patch) => this.onLayer(index, patch));
    });
  }

  /**
   * Colour the links, biases and neuron maps from a frame.
   * @param {Frame} frame
   * @param {Float32Array | null} outputMap the output over the grid, for a single output unit
   * @param {(v: number) => number} outputToUnit maps the output into [-1, 1]
   * @param {boolean} [weights] repaint the links and biases too (the caller paces them: FrameDrawer)
   */
  update(frame, outputMap, outputToUnit, weights = true) {
    this.frame = frame;
    if (!this.matches(frame)) return; // a frame of the previous architecture
    if (weights) this.paintWeights(frame);
    if (!this.maps?.paint(frame)) return;
    if (outputMap && this.outputs.length === 1) {
      drawScalarField(this.outputs[0], outputMap, frame.header.grid.resolution, outputToUnit, false);
    }
  }

  /**
   * Colour the biases and (a bounded number of) the links from a frame's weights.
   * @param {Frame} frame
   */
  paintWeights(frame) {
    const layers = frame.header.layers ?? [];
    this.weightsPending = false;
    if (!this.linkLayer || !this.matches(frame)) return;
    this.weightsPending = !this.linkLayer.paint(layers, LINKS_PER_FRAME);
    paintBiases(this.biases, layers);
  }

  /**
   * Whether a frame is of the architecture drawn.
   * @param {Frame} frame
   */
  matches(frame) {
    return (frame.header.layers ?? []).length === this.linkLayer?.layerCount;
  }

  /** Hide the weight editor. */
  closeEditor() {
    this.weightEditor.close();
  }
}
