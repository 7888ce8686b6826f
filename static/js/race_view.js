/** Optimizer race view: racers to choose, overlaid loss curves, decision boundaries side by side. */
import uPlot from '../vendor/uplot/uPlot.esm.js';
import { drawClassField, drawScalarField } from './heatmap.js';
import { el } from './dom.js';
import { outputToUnit, pointColor } from './views/output.js';

/** Size of one racer's plot in CSS px. */
const PLOT = 120;

/** One colour per racer slot (colour-blind-safe Okabe-Ito). */
const COLORS = ['#000000', '#e69f00', '#56b4e9', '#009e73', '#d55e00', '#cc79a7', '#0072b2', '#f0e442'];

/** The five optimizers of the lecture, with the race's default learning rate. */
export const DEFAULT_RACERS = [
  { optimizer: 'sgd', learning_rate: 0.03, label: 'SGD' },
  { optimizer: 'momentum', learning_rate: 0.03, label: 'Momentum' },
  { optimizer: 'adagrad', learning_rate: 0.03, label: 'AdaGrad' },
  { optimizer: 'rmsprop', learning_rate: 0.03, label: 'RMSProp' },
  { optimizer: 'adam', learning_rate: 0.03, label: 'Adam' },
];

/**
 * Bytes of a base64 string.
 * @param {string} text
 */
function bytes(text) {
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

export class RaceView {
  /** @param {HTMLElement} container */
  constructor(container) {
    this.container = container;
    this.editor = el('div', { class: 'racer-editor', 'aria-label': 'Racers' });
    const bar = el('div', { class: 'race-bar' });
    this.epochsInput = /** @type {HTMLInputElement} */ (el('input', { type: 'number', id: 'race-epochs', min: '1', step: '10', value: '100', 'aria-label': 'Epochs to run' }));
    this.startButton = el('button', { type: 'button', id: 'race-start' }, 'Start race');
    this.runButton = el('button', { type: 'button', id: 'race-run', disabled: '' }, 'Run more');
    bar.append(this.startButton, el('span', {}, 'for'), this.epochsInput, el('span', {}, 'epochs'), this.runButton);
    const intro = el('p', { class: 'instrument-intro' },
      'Each checked optimizer trains its own copy of the playground\'s network on its data, from the same weights and the same batches, at the page\'s Speed.');
    this.status = el('p', { class: 'race-status', role: 'status', id: 'race-status' },
      'Press "Start race": the checked optimizers race for the epochs given; "Run more" goes on from there.');
    this.chart = el('div', { class: 'race-chart', 'aria-label': 'Training loss per epoch of every racer' });
    this.grids = el('div', { class: 'race-grids' });
    container.append(intro, this.editor, bar, this.status, this.chart, this.grids);
    /** @type {uPlot | null} */
    this.plot = null;
    /** @type {number[][]} [epochs, racer 1 losses, ...] */
    this.columns = [[]];
    /** @type {number[][]} training points [x1, x2, label] */
    this.points = [];
    /** @type {Record<string, any> | null} the registry's optimizers */
    this.optimizers = null;
    /** @type {Record<string, any>[]} the racers being edited */
    this.specs = [];
    this.setRacers(DEFAULT_RACERS);
  }

  /**
   * The optimizers' parameters (from /api/registry), so each racer shows all of its settings.
   * @param {Record<string, {params: {name: string, kind: string, default: any, min: number | null, max: number | null}[]}>} optimizers
   */
  setOptimizers(optimizers) {
    this.optimizers = optimizers;
    this.renderRacers();
  }

  /**
   * The racers to edit (each {optimizer, label, learning_rate, ...}), all switched on.
   * @param {Record<string, any>[]} racers
   */
  setRacers(racers) {
    this.specs = racers.map((r) => ({ ...r, on: true }));
    this.renderRacers();
  }

  /** One row per racer: on/off, its colour and label, then every parameter of its optimizer. */
  renderRacers() {
    this.editor.replaceChildren();
    this.specs.forEach((spec, i) => {
      const row = el('div', { class: 'racer', 'data-racer': String(i) });
      const on = /** @type {HTMLInputElement} */ (el('input', { type: 'checkbox', id: `racer-on-${i}` }));
      on.checked = spec.on;
      on.addEventListener('change', () => { spec.on = on.checked; });
      const label = el('label', { for: `racer-on-${i}` }, spec.label ?? spec.optimizer);
      label.style.borderLeft = `4px solid ${COLORS[i % COLORS.length]}`;
      row.append(on, label);
      const params = this.optimizers?.[spec.optimizer]?.params ?? [{ name: 'learning_rate', kind: 'float', default: 0.01, min: 0, max: 10 }];
      for (const param of params) {
        const value = spec[param.name] ?? param.default;
        const input = /** @type {HTMLInputElement} */ (el('input', {
          class: `racer-param racer-${param.name.replaceAll('_', '-')}`,
          'aria-label': `${spec.label ?? spec.optimizer} ${param.name}`,
          title: param.name,
          ...(param.kind === 'bool' ? { type: 'checkbox' } : { type: 'number', step: 'any', ...(param.min !== null ? { min: String(param.min) } : {}), ...(param.max !== null ? { max: String(param.max) } : {}) }),
        }));
        if (param.kind === 'bool') input.checked = Boolean(value);
        else input.value = String(value);
        input.addEventListener('change', () => {
          spec[param.name] = param.kind === 'bool' ? input.checked : Number(input.value);
        });
        // A name and its box stay together when the row wraps in a narrow panel.
        const field = el('span', { class: 'racer-field' });
        field.append(el('span', { class: 'racer-param-name' }, param.name === 'learning_rate' ? 'lr' : param.name), input);
        row.append(field);
      }
      this.editor.append(row);
    });
    const add = el('div', { class: 'racer-add' });
    const choice = /** @type {HTMLSelectElement} */ (el('select', { id: 'racer-add-optimizer', 'aria-label': 'Optimizer of a new racer' }));
    for (const name of Object.keys(this.optimizers ?? { sgd: 0, momentum: 0, adagrad: 0, rmsprop: 0, adam: 0 })) choice.append(el('option', { value: name }, name));
    const button = el('button', { type: 'button', id: 'racer-add' }, 'Add racer');
    button.addEventListener('click', () => {
      const count = this.specs.filter((s) => s.optimizer === choice.value).length;
      this.specs.push({ optimizer: choice.value, label: `${choice.value} ${count + 1}`, on: true });
      this.renderRacers();
    });
    add.append(choice, button);
    this.editor.append(add);
  }

  /** @returns {Record<string, unknown>[]} the racers switched on, with their settings */
  racers() {
    return this.specs.filter((s) => s.on).map(({ on: _on, ...spec }) => {
      const params = this.optimizers?.[spec.optimizer]?.params ?? [];
      /** @type {Record<string, unknown>} */
      const racer = { ...spec };
      for (const param of params) if (racer[param.name] === undefined) racer[param.name] = param.default;
      return racer;
    });
  }

  /** @param {{start: (epochs: number) => void, run: (epochs: number) => void}} handlers */
  bind(handlers) {
    this.startButton.addEventListener('click', () => handlers.start(this.epochs()));
    this.runButton.addEventListener('click', () => handlers.run(this.epochs()));
  }

  /** The epochs to run, from its input (at least 1). */
  epochs() {
    return Math.max(1, Math.floor(Number(this.epochsInput.value)) || 1);
  }

  /** @param {number} epochs put in the epochs input (a lesson step's) */
  setEpochs(epochs) {
    this.epochsInput.value = String(epochs);
  }

  /**
   * A new race: reset the chart to its racers and draw its starting boundaries.
   * @param {any} race RacePublic
   */
  showRace(race) {
    this.plot?.destroy();
    this.columns = [[], ...race.racers.map(() => [])];
    const width = Math.max(300, this.chart.clientWidth || 480);
    this.plot = new uPlot(
      {
        width,
        height: 180,
        scales: { x: { time: false } },
        legend: { show: true, live: false },
        axes: [{ label: 'epoch', size: 30 }, { label: 'train loss', size: 50 }],
        series: [
          { label: 'epoch' },
          ...race.racers.map((/** @type {any} */ r, /** @type {number} */ i) => ({ label: r.label, stroke: COLORS[i % COLORS.length], width: 1.5, points: { show: false } })),
        ],
      },
      /** @type {uPlot.AlignedData} */ (/** @type {unknown} */ (this.columns)),
      this.chart,
    );
    this.runButton.removeAttribute('disabled');
    this.append(race);
  }

  /**
   * Add the epochs of a step to the curves and redraw the boundaries.
   * @param {any} race RacePublic of a step (curves since first_epoch)
   */
  append(race) {
    const [first] = race.racers;
    const count = first ? first.train_loss.length : 0;
    for (let k = 0; k < count; k++) {
      this.columns[0].push(race.first_epoch + k);
      race.racers.forEach((/** @type {any} */ r, /** @type {number} */ i) => this.columns[i + 1].push(r.train_loss[k] ?? NaN));
    }
    this.plot?.setData(/** @type {uPlot.AlignedData} */ (/** @type {unknown} */ (this.columns)));
    this.container.dataset.epoch = String(race.epoch);
    this.status.textContent = `Epoch ${race.epoch}: ` + race.racers.map((/** @type {any} */ r) => {
      const losses = this.columns[race.racers.indexOf(r) + 1];
      const last = losses[losses.length - 1];
      return `${r.label} ${r.status === 'diverged' ? 'diverged' : Number.isFinite(last) ? last.toFixed(3) : '–'}`;
    }).join(' · ');
    if (race.grids) this.drawGrids(race);
  }

  /** @param {any} race */
  drawGrids(race) {
    const problem = this.problem ?? 'binary';
    this.grids.replaceChildren();
    race.grids.forEach((/** @type {any} */ grid, /** @type {number} */ i) => {
      const figure = el('figure', { class: 'race-grid' });
      const canvas = /** @type {HTMLCanvasElement} */ (el('canvas', { 'aria-label': `${grid.label} decision boundary` }));
      const codes = bytes(grid.output);
      const values = Float32Array.from(codes, (q) => grid.min + (q / 255) * (grid.max - grid.min));
      if (grid.output_class) {
        drawClassField(canvas, bytes(grid.output_class), values, grid.resolution, this.nClasses ?? 3, false);
      } else {
        drawScalarField(canvas, values, grid.resolution, outputToUnit(problem), false);
      }
      const caption = el('figcaption', {}, grid.label);
      caption.style.color = COLORS[i % COLORS.length];
      const plot = el('div', { class: 'race-plot' });
      plot.append(canvas, this.pointsCanvas(grid.extent));
      figure.append(plot, caption);
      this.grids.append(figure);
    });
  }

  /**
   * The training points over a racer's boundary (the same points for every racer).
   * @param {number[]} extent [xmin, xmax, ymin, ymax]
   */
  pointsCanvas(extent) {
    const canvas = /** @type {HTMLCanvasElement} */ (el('canvas', { class: 'race-points', 'aria-hidden': 'true' }));
    const ratio = window.devicePixelRatio || 1;
    canvas.width = PLOT * ratio;
    canvas.height = PLOT * ratio;
    const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    const [xmin, xmax, ymin, ymax] = extent;
    ctx.strokeStyle = '#fff';
    ctx.lineWidth = 0.5;
    for (const [x1, x2, label] of this.points) {
      ctx.beginPath();
      ctx.arc(((x1 - xmin) / (xmax - xmin)) * PLOT, ((ymax - x2) / (ymax - ymin)) * PLOT, 1.8, 0, 2 * Math.PI);
      ctx.fillStyle = pointColor(this.problem ?? 'binary', label);
      ctx.fill();
      ctx.stroke();
    }
    return canvas;
  }

  /**
   * The training points to draw over every boundary.
   * @param {number[][]} points [[x1, x2, label], ...]
   */
  setPoints(points) {
    this.points = points;
  }

  /**
   * What the grids encode (binary probability, regression value, classes).
   * @param {string} problem
   * @param {number} nClasses
   */
  setProblem(problem, nClasses) {
    this.problem = problem;
    this.nClasses = nClasses;
  }

  /** @param {string} message */
  showError(message) {
    this.status.textContent = message;
    this.status.dataset.error = 'true';
  }
}
