/**
 * The heads above the network's columns: a title for the features and the output, and for each
 * hidden layer its controls (neurons ±, activation, dropout, batch norm).
 */
import { el } from '../dom.js';
import { headX } from './network_layout.js';

/** @typedef {import('../types.js').LayerSpec} LayerSpec */
/** @typedef {import('./network.js').NetworkStructure} NetworkStructure */
/** @typedef {import('./network_layout.js').NetworkLayout} NetworkLayout */

/**
 * An empty head placed over column c.
 * @param {NetworkLayout} layout
 * @param {number} c
 * @param {Record<string, string>} [attributes]
 */
function columnHead(layout, c, attributes = {}) {
  const head = el('div', { class: 'layer-head', ...attributes });
  head.style.left = `${headX(layout, c)}px`;
  head.style.width = `${layout.headWidth}px`;
  return head;
}

/**
 * A head with only a title, over column c.
 * @param {HTMLElement} container
 * @param {NetworkLayout} layout
 * @param {number} c
 * @param {string} text
 */
export function renderColumnTitle(container, layout, c, text) {
  const head = columnHead(layout, c);
  head.append(el('span', {}, text));
  container.append(head);
}

/**
 * The controls above hidden layer `index`: neurons ±, activation, dropout, batch norm.
 * @param {HTMLElement} container
 * @param {NetworkStructure} structure
 * @param {NetworkLayout} layout
 * @param {number} index
 * @param {(patch: Partial<LayerSpec>) => void} change called with the layer's change
 */
export function renderLayerHead(container, structure, layout, index, change) {
  const layer = structure.layers[index];
  const n = index + 1;
  const head = columnHead(layout, index + 1, { 'data-layer': String(index) });

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
  bnRow.append(bn, el('label', { for: bnId, title: 'Batch normalization' }, layout.headWidth < 90 ? 'BN' : 'Batch norm'));

  head.append(activation, dropoutRow, bnRow);
  container.append(head);
}
