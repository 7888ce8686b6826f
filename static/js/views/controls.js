/**
 * Controls view: the transport (play/pause, step, reset, epoch counter), every `[data-key]`
 * input on the page, menus built from the server's registry, the optimizer's parameters and
 * model export/import.
 */
import { PROPERTIES } from '../state.js';

/** @typedef {import('../types.js').Registry} Registry */
/** @typedef {import('../types.js').PageState} PageState */
/** @typedef {import('../state.js').PropertyRow} PropertyRow */

/** TFP's learning-rate steps; the registry's limits filter them and a URL may add its own. */
const LEARNING_RATES = [0.00001, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10];
/** TFP's regularization-rate steps. */
const REGULARIZATION_RATES = [0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10];
/** Pace presets in epochs per second; "max" (null) trains as fast as the server goes. */
const SPEEDS = [1, 3, 10, 30, 60, 120, 300, 1000];

const ROWS = new Map(PROPERTIES.map((row) => [row.key, row]));

/**
 * Human-readable menu text for a registry name ("binary_crossentropy" -> "binary crossentropy").
 * @param {string} name
 */
function labelOf(name) {
  return name.replace(/_/g, ' ');
}

/**
 * Fill a select with options (value "null" stands for null).
 * @param {HTMLSelectElement} select
 * @param {[string, string][]} options value, text
 */
function fill(select, options) {
  select.replaceChildren(
    ...options.map(([value, text]) => Object.assign(document.createElement('option'), { value, textContent: text })),
  );
}

/**
 * Read an input's value as its property row says.
 * @param {HTMLInputElement | HTMLSelectElement} input
 * @param {PropertyRow} row
 * @returns {{ok: boolean, value: unknown}}
 */
function readInput(input, row) {
  if (input instanceof HTMLInputElement && input.type === 'checkbox') return { ok: true, value: input.checked };
  const text = input.value.trim();
  if (text === '' || text === 'null') return { ok: !!row.nullable, value: null };
  if (row.kind === 'number' || row.kind === 'int') {
    const n = Number(text);
    const ok = Number.isFinite(n) && (row.kind === 'number' || Number.isInteger(n));
    return { ok, value: n };
  }
  if (row.kind === 'bool') return { ok: true, value: text === 'true' };
  return { ok: true, value: text };
}

export class ControlsView {
  /** @param {Document} doc */
  constructor(doc) {
    this.doc = doc;
    const byId = (/** @type {string} */ id) => /** @type {HTMLElement} */ (doc.getElementById(id));
    this.play = /** @type {HTMLButtonElement} */ (byId('play-button'));
    this.step = /** @type {HTMLButtonElement} */ (byId('step-button'));
    this.reset = /** @type {HTMLButtonElement} */ (byId('reset-button'));
    this.restart = /** @type {HTMLButtonElement | null} */ (doc.getElementById('restart-button'));
    this.epoch = byId('epoch-counter');
    this.optimizerParams = byId('optimizer-params');
    this.exportButton = /** @type {HTMLButtonElement} */ (byId('export-model'));
    this.importInput = /** @type {HTMLInputElement} */ (byId('import-model'));
    /** @type {Registry | null} */
    this.registry = null;
    /** @type {(key: string, value: unknown) => void} */
    this.onChange = () => {};
    this.lastEpoch = -1;
    /** the problem the loss menu was built for */
    this.lossProblem = '';
  }

  /** Every input bound to a state key. */
  inputs() {
    return /** @type {(HTMLInputElement | HTMLSelectElement)[]} */ ([
      ...this.doc.querySelectorAll('[data-key]'),
    ]);
  }

  /**
   * Build the menus and input limits from the registry.
   * @param {Registry} registry
   */
  build(registry) {
    this.registry = registry;
    const byId = (/** @type {string} */ id) => /** @type {HTMLSelectElement} */ (this.doc.getElementById(id));
    const lrSpec = this.paramSpec('sgd', 'learning_rate');
    const lrMin = typeof lrSpec?.min === 'number' ? lrSpec.min : 0;
    const lrMax = typeof lrSpec?.max === 'number' ? lrSpec.max : Infinity;
    fill(byId('learning-rate'), LEARNING_RATES.filter((lr) => lr > lrMin && lr <= lrMax).map((lr) => [String(lr), String(lr)]));
    fill(byId('optimizer'), Object.keys(registry.optimizers).map((name) => [name, labelOf(name)]));
    this.lossProblem = '';
    const regularizers = Object.keys(registry.regularizers ?? {});
    fill(byId('regularization'), [['none', 'none'], ...regularizers.filter((r) => r !== 'none').map((name) => /** @type {[string, string]} */ ([name, labelOf(name).toUpperCase()]))]);
    fill(byId('regularization-rate'), REGULARIZATION_RATES.map((r) => [String(r), String(r)]));
    fill(byId('problem'), [['null', 'auto (by dataset)'], ...(registry.problems ?? []).map((name) => /** @type {[string, string]} */ ([name, labelOf(name)]))]);
    fill(byId('initializer'), Object.keys(registry.initializers).map((name) => [name, labelOf(name)]));
    const limits = registry.limits ?? {};
    const maxSpeed = limits.max_speed ?? Infinity;
    fill(byId('speed'), [
      ...SPEEDS.filter((v) => v <= maxSpeed).map((v) => /** @type {[string, string]} */ ([String(v), String(v)])),
      ['null', 'max'],
    ]);

    const setMax = (/** @type {string} */ id, /** @type {number | undefined} */ max) => {
      if (max !== undefined) byId(id).setAttribute('max', String(max));
    };
    setMax('batch-size', limits.max_batch_size);
    setMax('frame-rate', limits.max_frame_rate);
    setMax('epoch-budget', limits.max_epoch_budget);
  }

  /**
   * One parameter of an optimizer in the registry.
   * @param {string} optimizer
   * @param {string} name
   */
  paramSpec(optimizer, name) {
    return this.registry?.optimizers[optimizer]?.params?.find((p) => p.name === name);
  }

  /**
   * Call `handler(key, value)` whenever an input bound to a state key changes.
   * @param {(key: string, value: unknown) => void} handler
   */
  bindChange(handler) {
    this.onChange = handler;
    this.doc.addEventListener('change', (event) => {
      const input = /** @type {HTMLInputElement} */ (event.target);
      const key = input?.dataset?.key;
      const row = key ? ROWS.get(key) : undefined;
      if (!key || !row) return;
      const { ok, value } = readInput(input, row);
      if (ok) handler(key, value);
      else input.setCustomValidity(`${key}: "${input.value}" is not a valid value`);
    });
    // Range sliders show their value while dragging.
    this.doc.addEventListener('input', (event) => {
      const input = /** @type {HTMLInputElement} */ (event.target);
      if (input.type === 'range') this.showRangeValue(input);
      if (input.dataset?.key) input.setCustomValidity('');
    });
  }

  /** @param {HTMLInputElement} input */
  showRangeValue(input) {
    const out = this.doc.getElementById(`${input.id}-value`);
    if (!out) return;
    out.textContent = input.id === 'train-ratio'
      ? `${Math.round(Number(input.value) * 100)}%`
      : input.id === 'noise' ? `${Math.round(Number(input.value) * 100)}` : input.value;
  }

  /**
   * @param {{play: () => void, step: () => void, reset: () => void, restart?: () => void,
   *   exportModel: () => void, importModel: (file: File) => void}} handlers
   */
  bindTransport(handlers) {
    this.play.addEventListener('click', handlers.play);
    this.step.addEventListener('click', handlers.step);
    this.reset.addEventListener('click', handlers.reset);
    const restart = handlers.restart;
    if (restart) this.restart?.addEventListener('click', restart);
    // "S" steps one epoch (its title says so) unless the user is typing somewhere.
    this.doc.addEventListener('keydown', (event) => {
      const target = /** @type {HTMLElement} */ (event.target);
      const typing = target.closest?.('input, select, textarea, [contenteditable]');
      if (event.key.toLowerCase() === 's' && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
        event.preventDefault();
        handlers.step();
      }
    });
    this.exportButton.addEventListener('click', handlers.exportModel);
    this.importInput.addEventListener('change', () => {
      const file = this.importInput.files?.[0];
      if (file) handlers.importModel(file);
      this.importInput.value = '';
    });
  }

  /**
   * The loss menu offers the losses that fit the problem (the registry says which).
   * @param {string} problem
   */
  updateLosses(problem) {
    if (!this.registry || problem === this.lossProblem) return;
    this.lossProblem = problem;
    const fitting = Object.entries(this.registry.losses)
      .filter(([, spec]) => !spec.problems || spec.problems.includes(problem))
      .map(([name]) => /** @type {[string, string]} */ ([name, labelOf(name)]));
    fill(/** @type {HTMLSelectElement} */ (this.doc.getElementById('loss')), [['null', 'auto (by problem)'], ...fitting]);
  }

  /**
   * Show a state in every bound input (adds an option for a URL value not in a menu).
   * @param {PageState} state
   * @param {string} problem the problem the state resolves to
   */
  update(state, problem) {
    this.updateLosses(problem);
    const record = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (state));
    for (const input of this.inputs()) {
      const key = /** @type {string} */ (input.dataset.key);
      const value = record[key];
      if (input instanceof HTMLInputElement && input.type === 'checkbox') {
        input.checked = !!value;
        continue;
      }
      const text = value === null || value === undefined ? (input instanceof HTMLSelectElement ? 'null' : '') : String(value);
      if (input instanceof HTMLSelectElement && ![...input.options].some((o) => o.value === text)) {
        input.append(Object.assign(document.createElement('option'), { value: text, textContent: text }));
      }
      if (this.doc.activeElement !== input || input instanceof HTMLSelectElement) input.value = text;
      if (input instanceof HTMLInputElement && input.type === 'range') this.showRangeValue(input);
    }
    this.updateOptimizerParams(state);
  }

  /**
   * Inputs for the chosen optimizer's parameters (all but the learning rate), from the registry.
   * @param {PageState} state
   */
  updateOptimizerParams(state) {
    const record = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (state));
    const params = (this.registry?.optimizers[state.optimizer]?.params ?? []).filter(
      (p) => p.name !== 'learning_rate' && ROWS.has(p.name),
    );
    const names = params.map((p) => p.name).join(',');
    if (this.optimizerParams.dataset.names !== names) {
      this.optimizerParams.dataset.names = names;
      this.optimizerParams.replaceChildren(
        ...params.map((p) => {
          const wrap = document.createElement('div');
          const row = /** @type {PropertyRow} */ (ROWS.get(p.name));
          const id = `optimizer-${p.name}`;
          const input = document.createElement('input');
          input.id = id;
          input.dataset.key = p.name;
          if (row.kind === 'bool') {
            wrap.className = 'control checkbox';
            input.type = 'checkbox';
          } else {
            if (row.nullable) input.placeholder = `default ${p.default ?? ''}`.trim();
            wrap.className = 'control';
            input.type = 'number';
            input.step = 'any';
            if (typeof p.min === 'number') input.min = String(p.min);
            if (typeof p.max === 'number') input.max = String(p.max);
          }
          const label = Object.assign(document.createElement('label'), { htmlFor: id, textContent: labelOf(p.name) });
          if (row.kind === 'bool') wrap.append(input, label);
          else wrap.append(label, input);
          return wrap;
        }),
      );
    }
    for (const p of params) {
      const input = /** @type {HTMLInputElement} */ (this.doc.getElementById(`optimizer-${p.name}`));
      if (input.type === 'checkbox') input.checked = !!record[p.name];
      else if (this.doc.activeElement !== input) input.value = record[p.name] === null ? '' : String(record[p.name]);
    }
  }

  /**
   * Show the session's status on the play button.
   * @param {string} status
   */
  updateStatus(status) {
    const running = status === 'running';
    this.play.setAttribute('aria-pressed', String(running));
    this.play.setAttribute('aria-label', running ? 'Pause' : 'Play');
    this.play.dataset.status = status;
  }

  /**
   * The 6-digit epoch counter, TFP-style (000,042).
   * @param {number} epoch
   */
  updateEpoch(epoch) {
    if (epoch === this.lastEpoch) return;
    this.lastEpoch = epoch;
    const padded = String(epoch).padStart(6, '0');
    this.epoch.textContent = padded.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  }
}
