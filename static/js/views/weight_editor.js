/**
 * Reading and editing the network's weights and biases: hovering a link or a bias square shows
 * its value in a tooltip; a click (or Enter on the focused one) opens a small form to set it.
 */

/** @typedef {import('../types.js').Frame} Frame */
/** @typedef {import('./network.js').WeightEdit} WeightEdit */

/**
 * @typedef {object} ParameterInfo  the weight or bias an element of the diagram stands for
 * @property {Omit<WeightEdit, 'value'>} edit
 * @property {number} value
 * @property {string} label
 */

export class WeightEditor {
  /**
   * @param {HTMLElement} container the diagram, whose links and bias squares carry data-* indices
   * @param {HTMLElement} tooltip
   * @param {HTMLFormElement} form one label and one number input
   * @param {() => Frame | null} currentFrame the frame whose weights the diagram shows
   * @param {(edit: WeightEdit) => void} edited called when the user sets a value
   */
  constructor(container, tooltip, form, currentFrame, edited) {
    this.container = container;
    this.tooltip = tooltip;
    this.form = form;
    this.currentFrame = currentFrame;
    /** @type {WeightEdit | null} the weight under the editor */
    this.editing = null;
    this.bindPointer();
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      const input = /** @type {HTMLInputElement} */ (this.form.querySelector('input'));
      const value = Number(input.value);
      if (this.editing && input.value !== '' && Number.isFinite(value)) {
        edited({ ...this.editing, value });
      }
      this.close();
    });
    this.form.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') this.close();
    });
  }

  /**
   * The weight or bias a link or bias square stands for, with its value in the current frame.
   * @param {HTMLElement} target
   * @returns {ParameterInfo | null}
   */
  describe(target) {
    const frame = this.currentFrame();
    const layers = frame?.header.layers;
    if (!layers) return null;
    const l = Number(target.dataset.layer);
    if (target.classList.contains('link-hit')) {
      const i = Number(target.dataset.i);
      const j = Number(target.dataset.j);
      const value = layers[l]?.kernel[i]?.[j];
      if (value === undefined) return null;
      const source = l === 0 ? (frame?.header.inputs[i] ?? `x${i}`) : `L${l} n${i + 1}`;
      const label = `Weight ${source} → ${l === layers.length - 1 ? 'output' : `L${l + 1}`} n${j + 1}`;
      return { edit: { layer: l, param: 'kernel', index: [i, j] }, value, label };
    }
    if (target.classList.contains('bias')) {
      const j = Number(target.dataset.j);
      const value = layers[l]?.bias[j];
      if (value === undefined) return null;
      const where = l === layers.length - 1 ? 'output' : `L${l + 1}`;
      return { edit: { layer: l, param: 'bias', index: [j] }, value, label: `Bias ${where} n${j + 1}` };
    }
    return null;
  }

  /**
   * Put a floating box next to the pointer (or the point given), inside its positioned parent.
   * @param {HTMLElement} box
   * @param {{clientX: number, clientY: number}} at
   */
  place(box, at) {
    const parent = /** @type {HTMLElement} */ (box.offsetParent ?? this.container);
    const rect = parent.getBoundingClientRect();
    box.style.left = `${at.clientX - rect.left + 12}px`;
    box.style.top = `${at.clientY - rect.top + 12}px`;
  }

  /**
   * Open the form on the weight or bias under `target`, if it stands for one.
   * @param {HTMLElement} target
   * @param {{clientX: number, clientY: number}} at
   */
  open(target, at) {
    const info = this.describe(target);
    if (!info) return;
    this.editing = { ...info.edit, value: info.value };
    const label = /** @type {HTMLElement} */ (this.form.querySelector('label'));
    const input = /** @type {HTMLInputElement} */ (this.form.querySelector('input'));
    label.textContent = info.label;
    input.value = info.value.toPrecision(4);
    this.form.hidden = false;
    this.tooltip.hidden = true;
    this.place(this.form, at);
    input.focus();
    input.select();
  }

  /** Hover shows a weight's or bias's value; click, Enter or space opens the form on it. */
  bindPointer() {
    this.container.addEventListener('mousemove', (event) => {
      const info = this.describe(/** @type {HTMLElement} */ (event.target));
      if (!info) {
        this.tooltip.hidden = true;
        return;
      }
      this.tooltip.textContent = `${info.label} = ${info.value.toFixed(3)} (click to edit)`;
      this.tooltip.hidden = false;
      this.place(this.tooltip, event);
    });
    this.container.addEventListener('mouseleave', () => {
      this.tooltip.hidden = true;
    });
    this.container.addEventListener('click', (event) => this.open(/** @type {HTMLElement} */ (event.target), event));
    this.container.addEventListener('keydown', (event) => {
      const target = /** @type {HTMLElement} */ (event.target);
      if (event.key !== 'Enter' && event.key !== ' ') return;
      if (!target.classList?.contains('link-hit') && !target.classList?.contains('bias')) return;
      event.preventDefault();
      const rect = target.getBoundingClientRect();
      this.open(target, { clientX: rect.left + rect.width / 2, clientY: rect.top + rect.height / 2 });
    });
  }

  /** Hide the form. */
  close() {
    this.form.hidden = true;
    this.editing = null;
  }
}
