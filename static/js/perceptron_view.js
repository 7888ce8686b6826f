/**
 * Perceptron view: its own controls (table, learning rate, passes, Run), the truth table, the
 * rule's line moving instance by instance, and the errors per pass.
 */
import { NEGATIVE, POSITIVE } from './colors.js';
import { el } from './dom.js';

/** Plot size in CSS px and the plane shown: [-0.5, 1.5]² around the four table points. */
const SIZE = 220;
const LOW = -0.5;
const HIGH = 1.5;
/** Milliseconds per instance shown, and the longest a whole replay may take. */
const TICK_MS = 120;
const REPLAY_MS = 5000;
/** The truth tables the rule can learn: [dataset, label]. */
const TABLES = [['and-table', 'AND'], ['or-table', 'OR'], ['xor-table', 'XOR']];
/** What the tab runs when opened on its own (the lesson's first step). */
const DEFAULT_PARAMS = { dataset: 'and-table', learning_rate: 1, epochs: 20, shuffle: false };

export class PerceptronView {
  /** @param {HTMLElement} container */
  constructor(container) {
    this.container = container;
    const intro = el('p', { class: 'instrument-intro' },
      'One threshold unit learns a truth table with the perceptron rule, one example at a time. Choose a table and press "Run".');
    const bar = el('div', { class: 'perceptron-bar' });
    this.table = /** @type {HTMLSelectElement} */ (el('select', { id: 'perceptron-table' }));
    for (const [value, label] of TABLES) this.table.append(el('option', { value }, label));
    this.rate = /** @type {HTMLInputElement} */ (el('input', { type: 'number', id: 'perceptron-lr', min: '0.1', max: '10', step: '0.1' }));
    this.passes = /** @type {HTMLInputElement} */ (el('input', { type: 'number', id: 'perceptron-epochs', min: '1', max: '1000', step: '1' }));
    this.runButton = el('button', { type: 'button', id: 'perceptron-run' }, 'Run');
    bar.append(
      el('label', { for: 'perceptron-table' }, 'Table'), this.table,
      el('label', { for: 'perceptron-lr' }, 'Learning rate'), this.rate,
      el('label', { for: 'perceptron-epochs' }, 'Passes'), this.passes,
      this.runButton,
    );
    container.append(intro, bar);
    this.setParams(DEFAULT_PARAMS);
    this.canvas = /** @type {HTMLCanvasElement} */ (el('canvas', { class: 'perceptron-plot', 'aria-label': 'Truth table and the perceptron line' }));
    const ratio = window.devicePixelRatio || 1;
    this.canvas.width = SIZE * ratio;
    this.canvas.height = SIZE * ratio;
    this.readout = el('div', { class: 'perceptron-readout', role: 'status' });
    this.errors = el('div', { class: 'perceptron-errors' });
    container.append(this.canvas, this.readout, this.errors);
    this.timer = 0;
    /** @type {any} */
    this.run = null;
  }

  /** @param {(params: Record<string, unknown>) => void} handler called by "Run" with the controls' parameters */
  bind(handler) {
    this.runButton.addEventListener('click', () => handler(this.params()));
  }

  /**
   * Put a run's parameters in the controls (a lesson step's, or the defaults).
   * @param {Record<string, any>} params
   */
  setParams(params) {
    const merged = { ...DEFAULT_PARAMS, ...params };
    this.table.value = merged.dataset;
    this.rate.value = String(merged.learning_rate);
    this.passes.value = String(merged.epochs);
    this.shuffle = Boolean(merged.shuffle);
  }

  /** @returns {Record<string, unknown>} the run the controls describe */
  params() {
    const rate = Number(this.rate.value);
    const passes = Math.floor(Number(this.passes.value));
    return {
      dataset: this.table.value,
      learning_rate: rate > 0 ? rate : DEFAULT_PARAMS.learning_rate,
      epochs: passes >= 1 ? passes : DEFAULT_PARAMS.epochs,
      shuffle: this.shuffle ?? false,
    };
  }

  /** @param {string} message */
  showError(message) {
    clearInterval(this.timer);
    this.readout.textContent = message;
    this.readout.classList.add('instrument-error');
  }

  /**
   * Replay a run (POST /api/instruments/perceptron) instance by instance.
   * @param {any} run
   */
  show(run) {
    clearInterval(this.timer);
    this.readout.classList.remove('instrument-error');
    this.run = run;
    this.container.dataset.dataset = run.dataset;
    this.container.dataset.stopped = run.stopped;
    this.container.dataset.done = 'false';
    const frames = run.epochs.flatMap((/** @type {any} */ e) => e.steps.map((/** @type {any} */ s) => ({ epoch: e.epoch, errors: e.errors, step: s })));
    let index = 0;
    this.renderErrors(run, 0);
    const tick = () => {
      if (index >= frames.length) {
        clearInterval(this.timer);
        this.container.dataset.done = 'true';
        this.readout.textContent = this.summary(run);
        return;
      }
      const frame = frames[index];
      this.draw(run, frame.step.weights, frame.step.x);
      this.readout.textContent = `pass ${frame.epoch}: x = (${frame.step.x.join(', ')}), target ${frame.step.target}, said ${frame.step.predicted}; w = (${frame.step.weights.map((/** @type {number} */ w) => w.toFixed(1)).join(', ')})`;
      this.container.dataset.epoch = String(frame.epoch);
      this.renderErrors(run, frame.epoch);
      index += 1;
    };
    this.draw(run, [0, 0, 0], null);
    this.timer = window.setInterval(tick, Math.min(TICK_MS, REPLAY_MS / Math.max(frames.length, 1)));
  }

  /** @param {any} run */
  summary(run) {
    const last = run.epochs[run.epochs.length - 1];
    if (run.converged) return `Converged after ${run.epochs.length} passes: weights (bias, w1, w2) = (${last.weights.join(', ')}).`;
    const cycle = run.cycle_start !== null ? ` The weights at the end of pass ${run.cycle_start + run.cycle_length} equal those after pass ${run.cycle_start}: it cycles forever.` : '';
    return `No convergence in ${run.epochs.length} passes: ${last.errors} errors in the last one.${cycle}`;
  }

  /**
   * Errors per pass, shown up to the current pass.
   * @param {any} run
   * @param {number} upTo
   */
  renderErrors(run, upTo) {
    const shown = run.epochs.filter((/** @type {any} */ e) => e.epoch <= upTo).map((/** @type {any} */ e) => e.errors);
    this.errors.textContent = `Errors per pass: ${shown.join(' ') || '–'}`;
  }

  /**
   * The four points and the line bias + w1 x1 + w2 x2 = 0 (class 1 on its non-negative side).
   * @param {any} run
   * @param {number[]} weights [bias, w1, w2]
   * @param {number[] | null} current the instance just shown
   */
  draw(run, weights, current) {
    const ctx = /** @type {CanvasRenderingContext2D} */ (this.canvas.getContext('2d'));
    const ratio = this.canvas.width / SIZE;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, SIZE, SIZE);
    const px = (/** @type {number} */ x) => ((x - LOW) / (HIGH - LOW)) * SIZE;
    const py = (/** @type {number} */ y) => ((HIGH - y) / (HIGH - LOW)) * SIZE;
    const [b, w1, w2] = weights;
    // Shade the side the unit fires on, cell by cell (coarse is enough at this size).
    const cells = 44;
    for (let i = 0; i < cells; i++) {
      for (let j = 0; j < cells; j++) {
        const x1 = LOW + ((i + 0.5) / cells) * (HIGH - LOW);
        const x2 = HIGH - ((j + 0.5) / cells) * (HIGH - LOW);
        ctx.fillStyle = b + w1 * x1 + w2 * x2 >= 0 ? 'rgba(8,119,189,0.18)' : 'rgba(245,147,34,0.18)';
        ctx.fillRect((i * SIZE) / cells, (j * SIZE) / cells, SIZE / cells + 1, SIZE / cells + 1);
      }
    }
    if (w2 !== 0 || w1 !== 0) {
      ctx.strokeStyle = '#333';
      ctx.lineWidth = 2;
      ctx.beginPath();
      if (Math.abs(w2) > Math.abs(w1)) {
        ctx.moveTo(px(LOW), py(-(b + w1 * LOW) / w2));
        ctx.lineTo(px(HIGH), py(-(b + w1 * HIGH) / w2));
      } else {
        ctx.moveTo(px(-(b + w2 * LOW) / w1), py(LOW));
        ctx.lineTo(px(-(b + w2 * HIGH) / w1), py(HIGH));
      }
      ctx.stroke();
    }
    run.targets.forEach((/** @type {number} */ target, /** @type {number} */ i) => {
      const x = [[0, 0], [0, 1], [1, 0], [1, 1]][i];
      ctx.beginPath();
      ctx.arc(px(x[0]), py(x[1]), 9, 0, 2 * Math.PI);
      ctx.fillStyle = target ? POSITIVE : NEGATIVE;
      ctx.fill();
      const isCurrent = current && current[0] === x[0] && current[1] === x[1];
      ctx.lineWidth = isCurrent ? 3 : 1;
      ctx.strokeStyle = isCurrent ? '#000' : '#fff';
      ctx.stroke();
    });
  }
}
