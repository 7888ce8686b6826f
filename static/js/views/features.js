/** Features view: the input column, one toggle per feature with its map over the plane. */
import { drawScalarField } from '../heatmap.js';

/**
 * @typedef {object} FeatureNode
 * @property {string} name
 * @property {string} label
 * @property {boolean} enabled
 */

/** Node size in CSS px, shared with the network diagram. */
export const NODE = 38;
const FEATURE_GRID = 20;

/**
 * Formulas to draw each feature's thumbnail (the server computes the features themselves; a
 * feature the page has no formula for is drawn grey, still toggleable).
 * @type {Record<string, (x: number, y: number) => number>}
 */
const THUMBNAILS = {
  x1: (x) => x,
  x2: (_x, y) => y,
  x1_sq: (x) => x * x,
  x2_sq: (_x, y) => y * y,
  x1x2: (x, y) => x * y,
  sin_x1: (x) => Math.sin(x),
  sin_x2: (_x, y) => Math.sin(y),
};

/**
 * A feature's values over [-6, 6]², scaled to [-1, 1] by its largest magnitude there.
 * @param {string} name
 * @returns {Float32Array}
 */
export function featureField(name) {
  const f = THUMBNAILS[name] ?? (() => 0);
  const values = new Float32Array(FEATURE_GRID * FEATURE_GRID);
  let peak = 0;
  for (let row = 0; row < FEATURE_GRID; row++) {
    for (let col = 0; col < FEATURE_GRID; col++) {
      const x = -6 + ((col + 0.5) * 12) / FEATURE_GRID;
      const y = 6 - ((row + 0.5) * 12) / FEATURE_GRID;
      const v = f(x, y);
      values[row * FEATURE_GRID + col] = v;
      peak = Math.max(peak, Math.abs(v));
    }
  }
  if (peak > 0) for (let i = 0; i < values.length; i++) values[i] /= peak;
  return values;
}

export class FeaturesView {
  constructor() {
    /** @type {(name: string) => void} */
    this.onToggle = () => {};
    /** @type {Map<string, Float32Array>} thumbnails never change: computed once */
    this.fields = new Map();
  }

  /** @param {(name: string) => void} handler called with the feature to switch on or off */
  bindToggle(handler) {
    this.onToggle = handler;
  }

  /**
   * Add one button per feature to the diagram, at the given positions.
   * @param {HTMLElement} container
   * @param {FeatureNode[]} features
   * @param {{x: number, y: number}[]} positions top-left of each node
   */
  render(container, features, positions) {
    features.forEach((feature, r) => {
      const { x, y } = positions[r];
      // A button each, so the keyboard can toggle them.
      const node = document.createElement('button');
      node.type = 'button';
      node.className = `node feature${feature.enabled ? '' : ' off'}`;
      node.setAttribute('aria-pressed', String(feature.enabled));
      node.setAttribute('aria-label', `Feature ${feature.label}`);
      node.title = `${feature.label}: click to ${feature.enabled ? 'remove' : 'add'}`;
      node.dataset.feature = feature.name;
      node.style.left = `${x}px`;
      node.style.top = `${y}px`;
      node.style.padding = '0';
      const canvas = document.createElement('canvas');
      if (!this.fields.has(feature.name)) this.fields.set(feature.name, featureField(feature.name));
      drawScalarField(canvas, /** @type {Float32Array} */ (this.fields.get(feature.name)), FEATURE_GRID, (v) => v, false);
      const label = document.createElement('span');
      label.className = 'node-label';
      label.textContent = feature.label;
      node.append(canvas, label);
      node.addEventListener('click', () => this.onToggle(feature.name));
      container.append(node);
    });
  }
}
